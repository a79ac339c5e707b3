//! The build, job and repository pages in headless Chromium: a push whose commit message, branch
//! name and author are markup shows them as text (nothing runs, no element is injected, links
//! stay links); the build page shows the commit's first line, author, short SHA linked to the
//! commit on GitHub, the branch linked to its builds, when it started and how long it ran, and its
//! stages side by side with their jobs; the repository page filters by branch and event, by its
//! form and by links that keep the branch; a private repository's pages stay 404 to strangers,
//! filters or not. Screenshots of the build page and of the filtered repository page are written
//! to the test's temporary directory.

use crate::util::browser::*;
use crate::util::*;
use serde_json::{Value, json};
use std::sync::Arc;

const PIPELINE: &str = r#"env:
  - LANE=one
  - LANE=two
script:
  - echo testing
jobs:
  include:
    - stage: deploy
      name: ship it
      script: echo shipping
"#;

/// A branch name git accepts that is also markup (refs may hold `"`, `<`, `>` and `/`).
const HOSTILE_BRANCH: &str = "x\"><svg/onload=document.title='pwned'>";
const HOSTILE_MESSAGE: &str =
    "Fix <img src=x onerror=\"document.title='pwned'\"> & <b>bold</b>\n\nsecond line stays off";
const HOSTILE_AUTHOR: &str = "Mallory <script>document.title='pwned'</script>";
const WEB_URL: &str = "https://github.example.invalid";

fn push_by(repo: &str, url: &str, branch: &str, sha: &str, private: bool) -> Vec<u8> {
    json!({
        "ref": format!("refs/heads/{branch}"), "before": "0".repeat(40), "after": sha,
        "deleted": false,
        "head_commit": {"message": HOSTILE_MESSAGE,
            "author": {"name": HOSTILE_AUTHOR, "email": "m@example.invalid", "username": "mallory"}},
        "sender": {"login": "mallory"},
        "repository": {"full_name": repo, "clone_url": url, "private": private}
    })
    .to_string()
    .into_bytes()
}

/// JavaScript: the text of each element matching `selector`.
fn texts(b: &mut Browser, selector: &str) -> Value {
    b.eval(&format!(
        "[...document.querySelectorAll({selector:?})].map(e => e.textContent.trim())"
    ))
}

#[test]
fn pages_show_the_commit_and_the_stages_and_keep_hostile_text_text() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), PIPELINE);
    let mut c = config(None);
    c.github.web_url = format!("{WEB_URL}/");
    let h = Harness::start(
        &tmp.path().join("data"),
        c,
        Arc::new(GatedJobRunner {
            gates: Arc::default(),
        }),
    );
    let sha = git(&origin.work, &["rev-parse", "master"]);
    git(
        &origin.work,
        &[
            "push",
            "-q",
            "origin",
            &format!("master:refs/heads/{HOSTILE_BRANCH}"),
        ],
    );
    let url = origin.url();
    let pushed = h.deliver(
        "push",
        "pages-1",
        &push_by("acme/app", &url, HOSTILE_BRANCH, &sha, false),
    );
    assert_eq!(pushed.0, 202, "{pushed:?}");
    let build = h.wait_final(1, DEADLINE.as_secs());
    assert_eq!(build["build"]["state"], "passed", "{build}");
    let head = origin.pull_request(7, "master", "feature.txt", "a feature\n");
    let pr = h.deliver(
        "pull_request",
        "pages-2",
        &pr_payload("acme/app", &url, "opened", 7, &head, &sha),
    );
    assert_eq!(pr.0, 202, "{pr:?}");
    assert_eq!(
        h.wait_final(2, DEADLINE.as_secs())["build"]["state"],
        "passed"
    );

    // The server's own bytes: the hostile strings arrive escaped, never as markup.
    let (status, html) = h.get("/builds/1");
    assert_eq!(status, 200);
    for raw in ["<svg", "<img", "<script>document", "<b>bold"] {
        assert!(!html.contains(raw), "{raw} unescaped in {html}");
    }
    assert!(html.contains("&lt;svg/onload="), "{html}");
    assert!(!html.contains("second line stays off"), "{html}");

    let mut b = Browser::launch(&bin);
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1000, "height": 700, "deviceScaleFactor": 1, "mobile": false}),
    );
    b.navigate(&format!("{}/builds/1", h.url()));
    assert_eq!(b.eval("document.title"), json!("Build #1 · Slipway"));
    assert_eq!(
        b.eval("document.querySelectorAll('main svg, main img, main script, main b').length"),
        json!(0),
        "an element came out of the hostile text"
    );

    // The commit: first line, author, short SHA linked to GitHub, the branch linked to its builds.
    assert_eq!(
        texts(&mut b, ".commit .message"),
        json!([HOSTILE_MESSAGE.lines().next().unwrap()])
    );
    assert_eq!(texts(&mut b, ".commit .author"), json!([HOSTILE_AUTHOR]));
    assert_eq!(
        b.eval("document.querySelector('.commit .author').title"),
        json!("@mallory")
    );
    assert_eq!(texts(&mut b, ".commit .sha"), json!([&sha[..7]]));
    assert_eq!(
        b.eval("document.querySelector('.commit .sha').href"),
        json!(format!("{WEB_URL}/acme/app/commit/{sha}"))
    );
    assert_eq!(texts(&mut b, ".commit .branch"), json!([HOSTILE_BRANCH]));
    assert_eq!(
        b.eval(
            "(u => [u.pathname, u.searchParams.get('branch')])(new URL(document.querySelector('.commit .branch').href))"
        ),
        json!(["/repos/acme/app", HOSTILE_BRANCH])
    );
    // When: a relative start with the UTC time in `datetime`, and how long it ran.
    let started = b.eval("document.querySelector('.commit time.started').textContent");
    let started = started.as_str().unwrap();
    assert!(
        started == "started just now" || started.ends_with(" s ago"),
        "{started}"
    );
    assert_eq!(
        b.eval(
            "Math.abs(Date.parse(document.querySelector('.commit time.started').dateTime) - Date.now()) < 300000"
        ),
        json!(true)
    );
    let ran = b.eval("document.querySelector('.commit .duration').textContent");
    assert!(
        ran.as_str().unwrap().starts_with("ran ") && ran.as_str().unwrap().ends_with(" s"),
        "{ran}"
    );

    // The stages side by side, in order, each with its jobs.
    assert_eq!(
        texts(&mut b, ".stages .stage h3"),
        json!(["test", "deploy"])
    );
    let boxes = b.eval(
        "[...document.querySelectorAll('.stages .stage')].map(s => { const r = s.getBoundingClientRect(); return [r.left, r.right, r.top, r.width, r.height]; })",
    );
    let (test, deploy) = (&boxes[0], &boxes[1]);
    assert!(
        deploy[0].as_f64() > test[1].as_f64() && deploy[2] == test[2],
        "the stages are not side by side: {boxes}"
    );
    assert!(
        deploy[1].as_f64().unwrap() <= 1000.0,
        "the deploy stage is off screen: {boxes}"
    );
    let jobs = b.eval(
        "[...document.querySelectorAll('.stages .stage')].map(s => [...s.querySelectorAll('a.job')].map(a => [a.getAttribute('href'), a.querySelector('.label').textContent, a.querySelector('.s').textContent]))",
    );
    let api_jobs: Vec<String> = build["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| format!("/jobs/{}", j["id"]))
        .collect();
    assert_eq!(
        jobs,
        json!([
            [
                [api_jobs[0], "env: LANE=one", "passed"],
                [api_jobs[1], "env: LANE=two", "passed"]
            ],
            [[api_jobs[2], "ship it", "passed"]]
        ])
    );
    // Long hostile text wraps instead of widening the page.
    assert_eq!(
        b.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true)
    );
    let shot = b.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64_decode(shot["data"].as_str().unwrap());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("build-page.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("build page screenshot: {}", path.display());

    // The job page: the same commit block, the job's own times.
    b.navigate(&format!("{}{}", h.url(), api_jobs[2]));
    assert_eq!(
        texts(&mut b, ".commit .message"),
        json!([HOSTILE_MESSAGE.lines().next().unwrap()])
    );
    assert_eq!(texts(&mut b, ".commit .branch"), json!([HOSTILE_BRANCH]));
    assert_eq!(texts(&mut b, ".job-meta .name"), json!(["ship it"]));
    assert_eq!(
        b.eval("document.querySelector('.commit time.started') !== null"),
        json!(true)
    );
    assert_eq!(
        b.eval("document.querySelectorAll('main svg, main img, main b').length"),
        json!(0)
    );

    // The pull request's build links to the pull request on GitHub and the branch it goes into.
    b.navigate(&format!("{}/builds/2", h.url()));
    assert_eq!(
        b.eval("document.querySelector('.commit .pr').href"),
        json!(format!("{WEB_URL}/acme/app/pull/7"))
    );
    assert_eq!(texts(&mut b, ".commit .pr"), json!(["PR #7"]));
    assert_eq!(texts(&mut b, ".commit .branch"), json!(["master"]));

    // The repository page: every build, or those of one branch, or of one event.
    let listed = |b: &mut Browser, query: &str| {
        b.navigate(&format!("{}/repos/acme/app{query}", h.url()));
        b.eval("[...document.querySelectorAll('table.builds tr td:first-child a')].map(a => a.textContent)")
    };
    assert_eq!(listed(&mut b, ""), json!(["#2", "#1"]));
    b.eval(&format!(
        "document.querySelector('form.filter input[name=branch]').value = {HOSTILE_BRANCH:?}"
    ));
    b.eval("document.querySelector('form.filter button').click()");
    b.wait_for(
        "location.search.includes('branch=') && document.readyState === 'complete'",
        "the filtered page",
    );
    b.wait_for(
        "document.querySelectorAll('table.builds tr').length === 2",
        "one build listed",
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('table.builds tr td:first-child a')].map(a => a.textContent)"),
        json!(["#1"])
    );
    assert_eq!(
        b.eval("document.querySelector('form.filter input[name=branch]').value"),
        json!(HOSTILE_BRANCH)
    );
    assert_eq!(
        b.eval("document.querySelectorAll('main svg').length"),
        json!(0)
    );
    // Each filter link keeps the hostile branch, encoded, as the one it filters by.
    assert_eq!(
        b.eval("[...document.querySelectorAll('nav.filters a')].slice(0, 6).map(a => new URL(a.href).searchParams.get('branch'))"),
        json!(vec![HOSTILE_BRANCH; 6])
    );
    assert_eq!(listed(&mut b, "?event=pull_request"), json!(["#2"]));
    assert_eq!(
        b.eval("document.querySelector('form.filter select').value"),
        json!("pull_request")
    );
    assert_eq!(listed(&mut b, "?branch=master&event=push"), json!([]));
    assert_eq!(texts(&mut b, ".empty"), json!(["No builds match."]));
    // The event links keep the branch and change the event.
    b.eval("[...document.querySelectorAll('nav.filters a')].find(a => a.textContent === 'pull requests').click()");
    b.wait_for(
        "location.search.includes('event=pull_request') && document.readyState === 'complete'",
        "the pull requests link",
    );
    assert_eq!(
        b.eval("new URLSearchParams(location.search).get('branch')"),
        json!("master")
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('table.builds tr td:first-child a')].map(a => a.textContent)"),
        json!(["#2"])
    );
    assert_eq!(
        texts(&mut b, "nav.filters a[aria-current]"),
        json!(["pull requests"])
    );
    let shot = b.call("Page.captureScreenshot", json!({"format": "png"}));
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("repo-page.png");
    std::fs::write(&path, base64_decode(shot["data"].as_str().unwrap())).unwrap();
    drop(b);
    let (status, body) = h.get("/repos/acme/app?event=release");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("push, pull_request, tag, api, cron"),
        "{body}"
    );

    // A private repository is 404 to a stranger, whatever the filter.
    let private = h.deliver(
        "push",
        "pages-3",
        &push_by("acme/secret", &url, "master", &sha, true),
    );
    assert_eq!(private.0, 202, "{private:?}");
    for path in [
        "/repos/acme/secret",
        "/repos/acme/secret?branch=master",
        "/repos/acme/secret?event=push",
        "/repos/acme/secret?event=tag",
        "/builds/3",
    ] {
        let (status, body) = h.get(path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("Mallory"), "{path}: {body}");
    }
    let (_, home) = h.get("/");
    assert!(!home.contains("acme/secret"), "{home}");
    h.stop();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
