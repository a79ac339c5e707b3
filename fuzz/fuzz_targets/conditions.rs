//! Fuzzes the condition language: parsing arbitrary text must never panic, and whatever parses
//! must print a normalized form that parses back to the same condition with the same result.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use slipway_pipelines::conditions::{StaticVariables, parse};

fn vars() -> &'static StaticVariables {
    static VARS: OnceLock<StaticVariables> = OnceLock::new();
    VARS.get_or_init(|| {
        StaticVariables::default()
            .with_var("type", "push")
            .with_var("branch", "master")
            .with_var("repo", "octo/slipway")
            .with_var("fork", "false")
            .with_var("commit_message", "Fix [skip deploy]\nmore")
            .with_env("FOO", "foo")
            .with_env("EMPTY", "")
            .with_env("PATTERN", "^ma(s|t)")
            .with_env("BAD", "[z-a")
    })
}

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    match parse(&src) {
        Ok(cond) => {
            let result = cond.evaluate(vars());
            let shown = cond.to_string();
            let again = parse(&shown)
                .unwrap_or_else(|e| panic!("normalized form {shown:?} of {src:?} does not parse: {e}"));
            assert_eq!(again, cond, "{src:?} normalizes to {shown:?}, which reads differently");
            assert_eq!(again.evaluate(vars()), result);
        }
        Err(err) => {
            let len = src.chars().count();
            assert!(
                (1..=len + 1).contains(&err.column),
                "column {} outside {src:?}",
                err.column
            );
        }
    }
});
