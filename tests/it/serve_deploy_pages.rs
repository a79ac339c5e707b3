//! `slipway serve` end to end with a `pages` deploy: a push to master publishes the site the job
//! built to `gh-pages` of a real git server (`git http-backend` behind `GitHttp`, private to the
//! token), with the token from a `secure:` option encrypted into the server's data directory; a
//! pull request from a fork pushes nothing. The token is never in a log.

use crate::serve::*;
use crate::support::{encrypt, pages_host, pages_pipeline};

const PAGES_TOKEN: &str = "ghp_pages_e2e_4f1a9c";

#[test]
fn a_push_publishes_the_site_and_a_fork_pushes_nothing() {
    if !docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let token = encrypt(&data, REPO, &format!("PAGES_TOKEN={PAGES_TOKEN}"));
    let pipeline = pages_pipeline(IMAGE, &token, "app.example.org");
    let origin = Origin::new(tmp.path(), &pipeline);

    // The "GitHub" pages are pushed to: acme/app.git, private to the token.
    let (bare, host) = pages_host(&tmp.path().join("hosted"), REPO, PAGES_TOKEN);

    let github = FakeGitHub::default();
    let server = Served::one_worker(
        tmp.path(),
        &github,
        &origin,
        &[("SLIPWAY_GITHUB_ENDPOINT", &host.url)],
    );

    let fork = server.fork_pull_request(&origin, 4, "pages-fork-pr");
    fork.expect("passed", &[]);
    assert!(host.requests().is_empty(), "{:#?}", host.requests());

    let push = server.push_master(&origin, "pages-push");
    let log = push.expect(
        "passed",
        &["Deploy finished: published 1 file(s) of site to gh-pages of acme/app"],
    );
    assert_eq!(
        git(&bare, &["show", "gh-pages:index.html"]),
        "<h1>built on master</h1>"
    );
    assert_eq!(git(&bare, &["show", "gh-pages:CNAME"]), "app.example.org");
    for text in [&fork.log, log, &server.server_log()] {
        assert!(!text.contains(PAGES_TOKEN), "{text}");
    }
}
