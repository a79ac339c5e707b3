//! Where package registries and hosting platforms live: a deploy's own option (dpl's `server`,
//! `registry`, `host`), else the machine's configured endpoint; with neither the deploy fails
//! before sending anything and its dry run says the same, naming the option and the key to set.

use serde_json::json;
use slipway_providers::{Endpoints, MemorySink, Outcome, dry_run_deploy, run_deploy};

use crate::npm::packed;
use crate::util::*;

/// Each provider with options complete but for the address, and the error it must give.
fn unaddressed() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    vec![
        (
            "pypi",
            json!({"password": "pw"}),
            "pypi: no upload server is configured: set the deploy option `server`, or `pypi` under [endpoints] in the server's configuration (SLIPWAY_PYPI_ENDPOINT for slipway run and plan)",
        ),
        (
            "rubygems",
            json!({"api_key": "k", "gem": "faraday"}),
            "rubygems: no gem host is configured: set the deploy option `host`, or `rubygems` under [endpoints] in the server's configuration (SLIPWAY_RUBYGEMS_ENDPOINT for slipway run and plan)",
        ),
        (
            "heroku",
            json!({"api_key": "k", "app": "shop"}),
            "heroku: no Platform API is configured: set `heroku` under [endpoints] in the server's configuration (SLIPWAY_HEROKU_ENDPOINT for slipway run and plan)",
        ),
        (
            "packagecloud",
            json!({"username": "acme", "repository": "tools", "token": "t"}),
            "packagecloud: no API is configured: set `packagecloud` under [endpoints] in the server's configuration (SLIPWAY_PACKAGECLOUD_ENDPOINT for slipway run and plan)",
        ),
    ]
}

#[test]
fn without_an_option_or_a_configured_endpoint_each_deploy_fails_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (provider, options, message) in unaddressed() {
        let d = deploy(provider, options);
        let dry = dry_run_deploy(&d, &context(dir.path()));
        assert_eq!(dry.error.as_deref(), Some(message), "{provider}: {dry:?}");
        assert!(dry.calls.is_empty(), "{provider}: {:?}", dry.calls);

        let log = MemorySink::default();
        let out = rt.block_on(run_deploy(&d, &context(dir.path()), &log));
        assert!(matches!(out, Outcome::Failed(_)), "{provider}: {out:?}");
        assert_eq!(
            log.lines().last().map(String::as_str),
            Some(format!("Deploy failed: {message}").as_str()),
            "{provider}"
        );
    }
}

#[test]
fn npm_without_a_registry_anywhere_fails_after_reading_the_package_and_says_so_in_its_dry_run() {
    let message = "npm: no registry is configured: set the deploy option `registry`, or `npm` under [endpoints] in the server's configuration (SLIPWAY_NPM_ENDPOINT for slipway run and plan)";
    let dir = packed(json!({"name": "widget", "version": "1.0.0"}));
    let d = deploy("npm", json!({"api_token": "t"}));
    let dry = dry_run_deploy(&d, &context(dir.path()));
    let publish = dry.calls.last().unwrap();
    assert_eq!(publish.action, "PUT {publishConfig.registry}{name}");
    assert!(
        publish.note.as_deref().unwrap().ends_with(&format!(
            "only if the package's publishConfig.registry names one, else {message}"
        )),
        "{publish:?}"
    );

    let log = MemorySink::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(run_deploy(&d, &context(dir.path()), &log));
    assert!(matches!(out, Outcome::Failed(_)), "{out:?}");
    assert_eq!(
        log.lines().last().unwrap(),
        &format!("Deploy failed: {message}")
    );
}

#[test]
fn the_deploys_option_wins_over_the_configured_endpoint_which_fills_in_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = context(dir.path());
    ctx.endpoints = Endpoints {
        pypi: Some("http://pypi.invalid/configured/".into()),
        npm: Some("http://npm.invalid/configured/".into()),
        rubygems: Some("http://gems.invalid".into()),
        heroku: Some("http://heroku.invalid/".into()),
        packagecloud: Some("http://packagecloud.invalid".into()),
        ..Endpoints::default()
    };
    let action = |provider: &str, options: serde_json::Value, at: usize| {
        let dry = dry_run_deploy(&deploy(provider, options), &ctx);
        assert_eq!(dry.error, None, "{provider}");
        dry.calls[at].action.clone()
    };
    let pypi = json!({"password": "pw"});
    assert_eq!(
        action("pypi", pypi.clone(), 1),
        "POST http://pypi.invalid/configured/"
    );
    let mut own = pypi;
    own["server"] = json!("http://index.invalid/legacy/");
    assert_eq!(action("pypi", own, 1), "POST http://index.invalid/legacy/");
    assert_eq!(
        action("npm", json!({"api_token": "t"}), 1),
        "PUT http://npm.invalid/configured/{name}"
    );
    assert_eq!(
        action(
            "npm",
            json!({"api_token": "t", "registry": "http://own.invalid"}),
            1
        ),
        "PUT http://own.invalid/{name}"
    );
    assert!(
        action("rubygems", json!({"api_key": "k", "gem": "faraday"}), 1)
            .starts_with("POST http://gems.invalid/api/v1/gems")
    );
    assert_eq!(
        action("heroku", json!({"api_key": "k", "app": "shop"}), 0),
        "GET http://heroku.invalid/account"
    );
}
