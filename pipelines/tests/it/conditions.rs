//! Travis conditions, as a table: condition in, normalized form and result (or error column) out.
//!
//! Every row is evaluated against the same build: a push to `master` of `octo/slipway` on linux,
//! without a tag, with the environment in [`build`].

use proptest::prelude::*;
use slipway_pipelines::conditions::{StaticVariables, parse};

fn build() -> StaticVariables {
    StaticVariables::default()
        .with_var("type", "push")
        .with_var("repo", "octo/slipway")
        .with_var("branch", "master")
        .with_var("os", "linux")
        .with_var("dist", "xenial")
        .with_var("group", "stable")
        .with_var("sudo", "false")
        .with_var("language", "node_js")
        .with_var("sender", "deploy bot")
        .with_var("fork", "false")
        .with_var(
            "commit_message",
            "Fix parser [skip deploy]\n\nDetails follow",
        )
        .with_env("FOO", "foo")
        .with_env("BAR", "false")
        .with_env("EMPTY", "")
        .with_env("QUOTED", "\"quoted\"")
        .with_env("NAME", "FOO")
        .with_env("SLUG", "octo/slipway")
        .with_env("PATTERN", "^mas")
        .with_env("BAD_PATTERN", "[z-a")
        .with_env("PRIOR_VERSION", "1.0.0")
        .with_env("RELEASE_VERSION", "1.1.0")
        .with_env("baz", "baz-1")
}

/// `(condition, normalized form, result)`.
const EVALUATES: &[(&str, &str, bool)] = &[
    // Examples from Travis's documentation of conditional builds, stages and jobs.
    ("branch = master", "branch = master", true),
    ("tag =~ ^v1", "tag =~ ^v1", false),
    ("tag =~ /^(v1|v2)/", "tag =~ /^(v1|v2)/", false),
    (
        "type IN (push, pull_request)",
        "type IN (push, pull_request)",
        true,
    ),
    (
        "branch NOT IN (master, dev)",
        "branch NOT IN (master, dev)",
        false,
    ),
    ("sender == my_account", "sender = my_account", false),
    (
        "sender != \"deploy bot\"",
        "sender != \"deploy bot\"",
        false,
    ),
    ("fork == false", "fork = false", true),
    (
        "commit_message !~ /no-deploy/",
        "commit_message !~ /no-deploy/",
        true,
    ),
    ("os == linux", "os = linux", true),
    (
        "branch IN (foo, bar) AND env(baz) =~ ^baz- OR tag IS present",
        "branch IN (foo, bar) AND env(baz) =~ ^baz- OR tag IS present",
        false,
    ),
    ("env(FOO) = env(BAR)", "env(FOO) = env(BAR)", false),
    ("env(FOO) = type", "env(FOO) = type", false),
    ("env(env(NAME))", "env(env(NAME))", true),
    (
        "repo IN (env(ONE), env(SLUG))",
        "repo IN (env(ONE), env(SLUG))",
        true,
    ),
    (
        "(tag =~ ^v) AND (branch = master)",
        "tag =~ ^v AND branch = master",
        false,
    ),
    ("true", "true", true),
    ("false", "false", false),
    ("1 = 1", "1 = 1", true),
    ("true != false", "true != false", true),
    ("\"foo\" = env(\"FOO\")", "foo = env(FOO)", true),
    ("branch =~ ^master$", "branch =~ ^master$", true),
    ("branch =~ /(master|foo)/", "branch =~ /(master|foo)/", true),
    ("branch =~ master|foo", "branch =~ master|foo", true),
    (
        "env(FOO) IN (\"bar baz\", \"foo\")",
        "env(FOO) IN (\"bar baz\", foo)",
        true,
    ),
    (
        "NOT branch IN (master, dev)",
        "NOT branch IN (master, dev)",
        false,
    ),
    (
        "env(MISSING) IS NOT present",
        "env(MISSING) IS NOT present",
        true,
    ),
    ("NOT env(FOO) IS present", "NOT env(FOO) IS present", false),
    (
        "env(PRIOR_VERSION) IS present AND \\\n    env(PRIOR_VERSION) != env(RELEASE_VERSION) AND \\\n    branch = master AND \\\n    type = push",
        "env(PRIOR_VERSION) IS present AND env(PRIOR_VERSION) != env(RELEASE_VERSION) AND branch = master AND type = push",
        true,
    ),
    // Precedence: NOT binds tightest, then AND, then OR; parentheses regroup.
    (
        "type = push OR branch = dev AND tag IS present",
        "type = push OR branch = dev AND tag IS present",
        true,
    ),
    (
        "NOT type = push OR type = push",
        "NOT type = push OR type = push",
        true,
    ),
    (
        "NOT (type = push OR type = api)",
        "NOT (type = push OR type = api)",
        false,
    ),
    (
        "(type = push OR branch = dev) AND tag IS present",
        "(type = push OR branch = dev) AND tag IS present",
        false,
    ),
    (
        "type = api AND branch = master OR os = linux",
        "type = api AND branch = master OR os = linux",
        true,
    ),
    (
        "NOT (NOT type = api AND NOT (branch = dev OR os = osx))",
        "NOT (NOT type = api AND NOT (branch = dev OR os = osx))",
        false,
    ),
    (
        "type = push AND (branch = dev OR (os = linux))",
        "type = push AND (branch = dev OR os = linux)",
        true,
    ),
    // Aliases.
    (
        "! branch = dev && type = push || tag IS present",
        "NOT branch = dev AND type = push OR tag IS present",
        true,
    ),
    ("!(type = push)", "NOT type = push", false),
    ("branch ~= ^mas", "branch =~ ^mas", true),
    ("branch == master", "branch = master", true),
    // Case-insensitive keywords, variables, functions and predicates.
    (
        "BRANCH = master and TYPE = push",
        "branch = master AND type = push",
        true,
    ),
    ("ENV(FOO) = foo", "env(FOO) = foo", true),
    ("branch Is Not Blank", "branch IS NOT blank", true),
    (
        "Branch in (MASTER, master)",
        "branch IN (MASTER, master)",
        true,
    ),
    (
        "tag is PRESENT or Not fork",
        "tag IS present OR NOT fork",
        true,
    ),
    // Quoting.
    ("sender = 'deploy bot'", "sender = \"deploy bot\"", true),
    ("'say \"hi\"' = x", "'say \"hi\"' = x", false),
    ("branch = \"$HOME\"", "branch = \"$HOME\"", false),
    ("\"\" = ''", "\"\" = \"\"", true),
    ("\"branch\" = branch", "\"branch\" = branch", false),
    // Regular expressions: bare, slashed, escapes, special characters, Ruby semantics.
    ("branch =~ ^m\\w+r$", "branch =~ ^m\\w+r$", true),
    (
        "commit_message =~ /\\[skip deploy\\]/",
        "commit_message =~ /\\[skip deploy\\]/",
        true,
    ),
    (
        "commit_message =~ ^Details",
        "commit_message =~ ^Details",
        true,
    ),
    ("repo =~ ^octo/", "repo =~ ^octo", true),
    ("repo =~ /^octo\\/slip/", "repo =~ /^octo\\/slip/", true),
    (
        "commit_message =~ /Fix parser",
        "commit_message =~ /Fix parser/",
        true,
    ),
    ("(branch =~ ^ma(st)?er$)", "branch =~ ^ma(st)?er$", true),
    ("branch =~ ^[a-z]{6}$", "branch =~ ^[a-z]{6}$", true),
    ("branch =~ ^\\d+$", "branch =~ ^\\d+$", false),
    ("tag !~ ^v", "tag !~ ^v", true),
    ("branch =~ ^(?!dev).*$", "branch =~ ^(?!dev).*$", true),
    ("branch =~ /^ma(?=ster)/", "branch =~ /^ma(?=ster)/", true),
    ("branch =~ ^(.)\\1", "branch =~ ^(.)\\1", false),
    ("branch =~ env(PATTERN)", "branch =~ env(PATTERN)", true),
    ("branch =~ env(MISSING)", "branch =~ env(MISSING)", false),
    ("branch !~ env(MISSING)", "branch !~ env(MISSING)", true),
    (
        "branch =~ env(BAD_PATTERN)",
        "branch =~ env(BAD_PATTERN)",
        false,
    ),
    (
        "branch !~ env(BAD_PATTERN)",
        "branch !~ env(BAD_PATTERN)",
        false,
    ),
    (
        "env(FOO) =~ concat(\"^\", env(FOO), \"$\")",
        "env(FOO) =~ concat(^, env(FOO), \"$\")",
        true,
    ),
    // concat() and env().
    (
        "concat(foo, -, bar) = foo-bar",
        "concat(foo, -, bar) = foo-bar",
        true,
    ),
    (
        "concat(branch, -, env(FOO), -, env(BAR)) = master-foo-false",
        "concat(branch, -, env(FOO), -, env(BAR)) = master-foo-false",
        true,
    ),
    ("concat() IS blank", "concat() IS blank", true),
    ("env(QUOTED) = quoted", "env(QUOTED) = quoted", true),
    ("env() = branch", "env() = branch", false),
    // IS with every predicate; values spelled true/false are booleans.
    ("branch IS present", "branch IS present", true),
    ("branch IS blank", "branch IS blank", false),
    ("env(EMPTY) IS blank", "env(EMPTY) IS blank", true),
    ("fork IS false", "fork IS false", true),
    ("fork IS present", "fork IS present", false),
    ("env(BAR) IS true", "env(BAR) IS true", false),
    ("branch IS true", "branch IS true", true),
    ("branch = true", "branch = true", false),
    ("env(BAR) = FALSE", "env(BAR) = FALSE", true),
    // A lone operand is true unless missing or false, so empty strings and 0 are true.
    ("env(EMPTY)", "env(EMPTY)", true),
    ("env(BAR)", "env(BAR)", false),
    ("env(MISSING)", "env(MISSING)", false),
    ("0", "0", true),
    ("\"\"", "\"\"", true),
    // IN lists.
    ("type IN (push,)", "type IN (push)", true),
    (
        "type IN ( api ,cron,push )",
        "type IN (api, cron, push)",
        true,
    ),
    (
        "env(MISSING) IN (env(ALSO_MISSING))",
        "env(MISSING) IN (env(ALSO_MISSING))",
        true,
    ),
    ("NOT type IN (api, cron)", "NOT type IN (api, cron)", true),
    // Travis quirks kept for compatibility.
    (
        "branch = master ORtag IS present",
        "branch = master OR tag IS present",
        true,
    ),
    ("nothing", "NOT hing", false),
    ("branch = environment", "branch = ironment", false),
    ("branch!=master", "\"branch\" != master", true),
    (
        "TRAVIS_PULL_REQUEST = false",
        "TRAVIS_PULL_REQUEST = false",
        false,
    ),
    ("branch IS = master", "branch = master", true),
];

/// `(condition, error column, part of the message)`.
const ERRORS: &[(&str, usize, &str)] = &[
    ("", 1, "expected a value"),
    ("= foo", 1, "expected a value"),
    ("branch = $FOO", 10, "shell variable"),
    ("$TRAVIS_BRANCH = master", 1, "shell variable"),
    ("branch IS master", 11, "after IS"),
    ("branch IN ()", 12, "list of values"),
    ("branch IN master", 11, "expected `(`"),
    ("(branch = master", 17, "expected `)`"),
    ("branch = \"master", 10, "no closing"),
    ("branch = master)", 16, "unexpected `)`"),
    ("tag =~ [z-a]", 8, "invalid regular expression"),
    ("branch =~ (master)", 11, "invalid regular expression"),
    ("tag =~", 7, "expected a regular expression"),
    ("env(A, B) = c", 1, "one argument"),
    ("branch = master AND", 20, "at the end"),
    ("branch = master AND \\\n  $X = y", 25, "shell variable"),
    (
        "branch = master NOT type = pull_request",
        17,
        "unexpected `NOT`",
    ),
    (
        "env(FOO) = Replace conditional",
        20,
        "unexpected `conditional`",
    ),
    (
        "branch = master AND ( tag =~ ^deploy/ OR )",
        42,
        "expected a value",
    ),
    ("concat(a, b", 12, "expected `)`"),
];

#[test]
fn conditions_parse_normalize_and_evaluate_like_travis() {
    let vars = build();
    let mut failures = Vec::new();
    for &(src, shown, expected) in EVALUATES {
        match parse(src) {
            Ok(cond) => {
                let got = (cond.to_string(), cond.evaluate(&vars));
                if got != (shown.to_string(), expected) {
                    failures.push(format!(
                        "{src:?}: got {got:?}, want ({shown:?}, {expected})"
                    ));
                }
            }
            Err(err) => failures.push(format!("{src:?}: unexpected error {err}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(EVALUATES.len() >= 60);
}

#[test]
fn malformed_conditions_report_the_column() {
    let mut failures = Vec::new();
    for &(src, column, message) in ERRORS {
        match parse(src) {
            Ok(cond) => failures.push(format!("{src:?}: parsed as {cond}")),
            Err(err) if err.column != column || !err.message.contains(message) => failures.push(
                format!("{src:?}: got {err}, want column {column} with {message:?}"),
            ),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_carry_a_hint_for_common_mistakes() {
    let is = parse("type IS cron").unwrap_err();
    assert!(is.hint.unwrap().contains("="));
    let shell = parse("branch = $MAIN_BRANCH").unwrap_err();
    assert!(shell.hint.unwrap().contains("env(MAIN_BRANCH)"));
}

/// Found by the `conditions` fuzz target: a bare pattern ending in NULs (which the scanner trims
/// at the end of a condition) did not read back.
#[test]
fn regression_bare_pattern_with_nul_bytes_reads_back() {
    let src = "(branch =~ ^ma(st)?er$\0\0) || NOT (type = cron)";
    let cond = parse(src).unwrap();
    let shown = cond.to_string();
    assert_eq!(shown, "branch =~ ^ma(st)?er$\0\0/ OR NOT type = cron");
    assert_eq!(parse(&shown).unwrap(), cond);
    assert!(cond.evaluate(&build()));
}

/// Found by the `conditions` fuzz target: a bare pattern ending in NUL that contains a `/` has
/// no slashed spelling; it is printed bare with one extra `/`.
#[test]
fn regression_bare_pattern_with_slash_and_trailing_nul_reads_back() {
    let src = "(bra\0>nch =~ma/}}m\0\0)";
    let cond = parse(src).unwrap();
    let shown = cond.to_string();
    assert_eq!(shown, "bra\0>nch =~ ma/}}m\0\0/");
    assert_eq!(parse(&shown).unwrap(), cond);
}

/// Found by the `conditions` fuzz target: a bare pattern that keeps a trailing `/` (written `//`)
/// and contains another `/` was printed between slashes, which ends it early.
#[test]
fn regression_bare_pattern_ending_in_slash_reads_back() {
    let src = "tag =~A/^\"com[0-9]&&\\/Z0-9]+// OR x";
    let cond = parse(src).unwrap();
    let shown = cond.to_string();
    assert_eq!(shown, "tag =~ A/^\"com[0-9]&&\\/Z0-9]+// OR x");
    assert_eq!(parse(&shown).unwrap(), cond);
}

/// The `env` Travis swallows in front of a pattern is printed back, so such a pattern reads back.
#[test]
fn pattern_after_a_swallowed_env_reads_back() {
    let cond = parse("branch =~ envenvx/y").unwrap();
    assert_eq!(cond.to_string(), "branch =~ envenvx/y");
    assert_eq!(parse(&cond.to_string()).unwrap(), cond);
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}branch = master{}", "(".repeat(64), ")".repeat(64));
    assert!(parse(&deep).unwrap().evaluate(&build()));
    let too_deep = format!("{}branch = master{}", "(".repeat(65), ")".repeat(65));
    assert_eq!(parse(&too_deep).unwrap_err().column, 65);
    let nots = format!("{}true", "NOT ".repeat(100));
    assert!(parse(&nots).unwrap_err().message.contains("nests"));
}

#[test]
fn long_and_or_chains_do_not_nest() {
    let chain = vec!["branch = dev"; 5000].join(" OR ") + " OR branch = master";
    let cond = parse(&chain).unwrap();
    assert!(cond.evaluate(&build()));
    assert_eq!(cond.to_string(), chain);
}

/// Pieces that exercise the grammar more often than random characters do.
const TOKENS: &[&str] = &[
    "branch", "TAG", "type", "env(", "concat(", "(", ")", ",", "=", "==", "!=", "=~", "!~", "~=",
    "IN", "NOT", "!", "IS", "present", "blank", "true", "false", "AND", "&&", "OR", "||",
    "\"a b\"", "'x'", "\"", "'", "/", "/^v.*/", "^v", "$", "$X", "\\\n", "master", "fo|o", "[",
    "]", "{2}", "\\", "é", "0", " ",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(TOKENS), prop::bool::ANY), 0..16).prop_map(
        |parts| {
            parts
                .into_iter()
                .map(|(t, space)| {
                    if space {
                        format!("{t} ")
                    } else {
                        t.to_string()
                    }
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_text_never_panics(src in "\\PC{0,80}") {
        if let Ok(cond) = parse(&src) {
            let _ = cond.evaluate(&build());
            let _ = cond.to_string();
        }
    }

    #[test]
    fn normalized_form_parses_back_to_the_same_condition(src in token_soup()) {
        if let Ok(cond) = parse(&src) {
            let shown = cond.to_string();
            let again = parse(&shown).map_err(|e| TestCaseError::fail(format!("{shown:?}: {e}")))?;
            prop_assert_eq!(&again, &cond, "{:?} -> {:?}", src, shown);
            prop_assert_eq!(again.evaluate(&build()), cond.evaluate(&build()));
        }
    }

    #[test]
    fn error_columns_stay_inside_the_text(src in token_soup()) {
        if let Err(err) = parse(&src) {
            prop_assert!(err.column >= 1 && err.column <= src.chars().count() + 1, "{:?}: {}", src, err);
        }
    }
}
