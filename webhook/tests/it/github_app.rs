//! GitHub App authentication against the stand-in for GitHub's API, which checks requests as
//! GitHub does: the JWT (RS256, verified with the App's public key, `iss`, `iat`, `exp`), the
//! installation lookup and token exchange, statuses sent with `Authorization: token …`, a
//! token replaced before it expires and after GitHub stops accepting it, and git fetching a
//! private repository with the installation token. The key pair comes from `openssl`.

use crate::util::*;
use base64::Engine as _;
use slipway_webhook::config::AppId;
use slipway_webhook::testing::FakeApp;
use slipway_webhook::testing::ScriptedJobRunner;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const APP_ID: u64 = 4242;
const INSTALLATION: u64 = 42;

/// An RSA key pair made by openssl: the private key as GitHub hands it out (PKCS#1 PEM), and the
/// public key as PKCS#1 DER. `None` (with a message) without openssl outside CI.
fn key_pair(dir: &Path) -> Option<(PathBuf, Vec<u8>)> {
    let made = app_key_pair(dir);
    if let Err(why) = &made {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is needed to make the App's key (scripts/install-test-deps.sh): {why}"
        );
        eprintln!("skipped: openssl is missing: {why}");
    }
    let (pem, public) = made.ok()?;
    assert!(
        std::fs::read_to_string(&pem)
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    Some((pem, public))
}

fn build_id(answer: (u16, String)) -> i64 {
    assert_eq!(answer.0, 202, "{}", answer.1);
    serde_json::from_str::<serde_json::Value>(&answer.1).unwrap()["build"]
        .as_i64()
        .unwrap()
}

#[test]
fn statuses_and_fetches_use_installation_tokens_minted_from_the_apps_key() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((pem, public_key_der)) = key_pair(tmp.path()) else {
        return;
    };
    let origin = Origin::new(tmp.path(), "script:\n  - echo hello\n");
    let github = FakeGitHub::default();
    // The first token is issued with four minutes left, inside the five-minute margin, so the
    // next request must replace it; later ones last the usual hour.
    github.app(FakeApp {
        iss: serde_json::json!(APP_ID),
        public_key_der,
        installation_id: INSTALLATION,
        lifetimes: vec![240, 3600],
        ..FakeApp::default()
    });
    let gh_rt = Box::leak(Box::new(tokio::runtime::Runtime::new().unwrap()));
    let api = github.start(gh_rt);

    let mut c = config(Some(&api));
    c.github.token = None;
    c.github.app_id = Some(AppId::Number(APP_ID));
    c.github.private_key_path = Some(pem);
    c.repos = slipway_webhook::Config::parse(&format!(
        "[[repos]]\nname = \"acme/app\"\nclone_url = \"{}\"\n[[repos]]\nname = \"acme/private\"\nclone_url = \"{api}/acme/private.git\"\n",
        origin.url()
    ))
    .unwrap()
    .repos;
    // The stand-in serves git on loopback, which fetches are refused unless allowed.
    c.git.allow = vec!["127.0.0.1".parse().unwrap()];
    let h = Harness::start(&tmp.path().join("data"), c, Arc::new(ScriptedJobRunner));

    // Two pushes, each reported pending then success.
    let mut shas = Vec::new();
    for n in 0..2 {
        let sha = origin.push_master("f.txt", &format!("{n}\n"));
        let id = build_id(h.deliver(
            "push",
            &format!("app-push-{n}"),
            &push_payload("acme/app", &origin.url(), "refs/heads/master", &sha),
        ));
        assert_eq!(h.wait_final(id, 30)["build"]["state"], "passed");
        wait_for("the success status", 20, || {
            github
                .statuses()
                .iter()
                .any(|s| s.0 == sha && s.1 == "success")
        });
        shas.push(sha);
    }

    // A private repository: git asks for credentials and gets the installation token.
    let sha = "d".repeat(40);
    let private = build_id(h.deliver(
        "push",
        "app-private",
        &push_payload(
            "acme/private",
            "https://example.invalid/acme/private.git",
            "refs/heads/master",
            &sha,
        ),
    ));
    assert_eq!(h.wait_final(private, 30)["build"]["state"], "errored");
    wait_for("the error status", 20, || {
        github
            .statuses()
            .iter()
            .any(|s| s.0 == sha && s.1 == "error")
    });

    let app = github.app_state().unwrap();
    assert!(app.problems.is_empty(), "{:?}", app.problems);
    let requests = github.requests.lock().unwrap().clone();
    let count = |method: &str, path: &str| {
        requests
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    };
    // Each repository's installation is looked up once; the token is kept per installation,
    // replaced once (the first one was about to expire), and then reused.
    assert_eq!(count("GET", "/repos/acme/app/installation"), 1);
    assert_eq!(count("GET", "/repos/acme/private/installation"), 1);
    let exchange = format!("/app/installations/{INSTALLATION}/access_tokens");
    assert_eq!(count("POST", &exchange), 2, "{requests:#?}");
    let issued: Vec<&str> = app.issued.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(issued, ["ghs_fake1", "ghs_fake2"]);

    // Every JWT: RS256, the App's id, dated a minute back, expiring within ten minutes.
    assert_eq!(app.jwts.len(), 4, "two lookups and two exchanges");
    for (header, claims) in &app.jwts {
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(claims["iss"], APP_ID);
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert!(exp > iat && exp - iat <= 600 + 60, "{claims}");
    }

    // Statuses carry `token <installation token>`; the short-lived first token serves at most
    // the one request it was minted for.
    let statuses: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("/statuses/"))
        .collect();
    assert!(statuses.len() >= 6, "{statuses:#?}");
    for r in &statuses {
        assert_eq!(r.answered, 201, "{r:?}");
        let auth = r.authorization.as_deref().unwrap_or_default();
        assert!(
            auth == "token ghs_fake1" || auth == "token ghs_fake2",
            "{r:?}"
        );
    }
    let first_token_uses = requests
        .iter()
        .filter(|r| r.authorization.as_deref() == Some("token ghs_fake1"))
        .count();
    assert!(first_token_uses <= 1, "{requests:#?}");
    assert_eq!(
        statuses.last().unwrap().authorization.as_deref(),
        Some("token ghs_fake2")
    );

    // git sent the token as x-access-token's password.
    let fetch = requests
        .iter()
        .find(|r| r.path.ends_with("/info/refs") && r.authorization.is_some())
        .unwrap_or_else(|| panic!("git sent no credentials: {requests:#?}"));
    assert_eq!(fetch.path, "/acme/private.git/info/refs");
    let basic = fetch
        .authorization
        .as_deref()
        .unwrap()
        .strip_prefix("Basic ")
        .unwrap();
    let basic = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(basic)
            .unwrap(),
    )
    .unwrap();
    assert!(
        basic == "x-access-token:ghs_fake1" || basic == "x-access-token:ghs_fake2",
        "{basic}"
    );
    drop(requests);

    // GitHub stops accepting the token the server still holds: the refused status is retried
    // with a new token.
    github.expire_tokens();
    let sha = origin.push_master("f.txt", "after expiry\n");
    let id = build_id(h.deliver(
        "push",
        "app-push-expired",
        &push_payload("acme/app", &origin.url(), "refs/heads/master", &sha),
    ));
    assert_eq!(h.wait_final(id, 30)["build"]["state"], "passed");
    wait_for("the success status after expiry", 30, || {
        github
            .statuses()
            .iter()
            .any(|s| s.0 == sha && s.1 == "success")
    });
    let app = github.app_state().unwrap();
    assert_eq!(app.issued.last().unwrap().0, "ghs_fake3");
    let requests = github.requests.lock().unwrap().clone();
    let refused = requests
        .iter()
        .filter(|r| r.answered == 401 && r.path.contains("/statuses/"))
        .count();
    assert!(refused >= 1, "the expired token was never refused");
    let last = requests
        .iter()
        .rfind(|r| r.path.contains("/statuses/"))
        .unwrap();
    assert_eq!(last.authorization.as_deref(), Some("token ghs_fake3"));
    assert_eq!(last.answered, 201);
    h.stop();
}
