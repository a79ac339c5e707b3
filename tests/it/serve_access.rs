//! Who may read and do what on `slipway serve`, end to end: a public and a private repository,
//! each with a finished build; every page and API route asked by an anonymous caller, a user
//! GitHub gives no access, one with pull, one with push, and an API token. Callers who may not
//! read the private repository get 404 (never 403) and no byte of it: not its name, its commit
//! message or a log line. Users sign in through GitHub's OAuth flow, played by the stand-in,
//! which checks each request exactly.

use crate::serve::*;

const PIPELINE: &str = "language: minimal\nimage: slipway-test/debian:latest\nscript:\n  - echo \"log line of $TRAVIS_REPO_SLUG\"\n";
const HIDDEN: &str = "acme/hidden";
const CLIENT_ID: &str = "slipway-client-1";
const CLIENT_SECRET: &str = "slipway-client-secret-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Nobody,
    Reader,
    Writer,
    Token,
}

const EVERYONE: [Who; 5] = [
    Who::Anonymous,
    Who::Nobody,
    Who::Reader,
    Who::Writer,
    Who::Token,
];

impl Who {
    /// May read the private repository.
    fn reads_private(self) -> bool {
        matches!(self, Who::Reader | Who::Writer | Who::Token)
    }
}

struct Callers {
    sessions: Vec<(Who, String, String)>,
}

impl Callers {
    fn headers(&self, who: Who) -> Vec<(String, String)> {
        match who {
            Who::Anonymous => vec![],
            Who::Token => vec![("Authorization".into(), format!("Bearer {TOKEN}"))],
            _ => {
                let (_, cookie, _) = self.sessions.iter().find(|s| s.0 == who).unwrap();
                vec![("Cookie".into(), cookie.clone())]
            }
        }
    }

    fn csrf(&self, who: Who) -> Option<String> {
        self.sessions
            .iter()
            .find(|s| s.0 == who)
            .map(|s| s.2.clone())
    }

    fn call(&self, server: &Served, who: Who, method: &str, path: &str, body: &str) -> Answer {
        let mut headers = self.headers(who);
        if method == "POST" {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
            if let Some(csrf) = self.csrf(who) {
                headers.push(("X-CSRF-Token".into(), csrf));
            }
        }
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        request(
            method,
            &format!("{}{path}", server.url()),
            &h,
            body.as_bytes(),
        )
    }
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

/// GitHub's stand-in ([`github_api`]) with its OAuth side set from `oauth` for the server's app,
/// whose callback is on a free port: the stand-in, its URL, the port and the server's public URL.
fn signing_in(oauth: FakeOAuth) -> (FakeGitHub, String, u16, String) {
    let github = FakeGitHub::default();
    let api = github_api(&github);
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    github.oauth(FakeOAuth {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uri: format!("{public_url}/login/github/callback"),
        ..oauth
    });
    (github, api, port, public_url)
}

fn build_of(reply: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(reply).unwrap()["build"]
        .as_i64()
        .unwrap()
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one table of routes and callers, read top to bottom"
)]
fn every_route_answers_each_caller_by_its_github_permission() {
    let Some((tmp, origin)) = docker_and_origin(PIPELINE) else {
        return;
    };
    let grant = |l: &str, r: &str, p: &str| (l.to_string(), r.to_string(), p.to_string());
    let (github, api, port, public_url) = signing_in(FakeOAuth {
        grants: vec![
            grant("nobody", REPO, "pull"),
            grant("reader", REPO, "pull"),
            grant("reader", HIDDEN, "pull"),
            grant("writer", REPO, "push"),
            grant("writer", HIDDEN, "push"),
        ],
        private: vec![HIDDEN.into()],
        ..FakeOAuth::default()
    });
    let url = origin.url();
    let server = Served::with_config(
        tmp.path(),
        port,
        |port| {
            format!(
                "listen = \"127.0.0.1:{port}\"\npublic_url = \"{public_url}\"\nwebhook_secret = \"{SECRET}\"\n\
                 api_tokens = [\"{TOKEN}\"]\nlease_seconds = 3\nworkers = 2\n\
                 [github]\napi_url = \"{api}\"\nweb_url = \"{api}\"\ntoken = \"gh-token\"\nmax_backoff_seconds = 1\n\
                 client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
                 [[repos]]\nname = \"{REPO}\"\nclone_url = \"{url}\"\n\
                 [[repos]]\nname = \"{HIDDEN}\"\nclone_url = \"{url}\"\n"
            )
        },
        &[],
    );
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let push = |repo: &str, private: bool, message: &str, id: &str| {
        let body = push_payload_with(repo, &url, "refs/heads/master", &sha, private, message);
        let (status, text) = server.deliver("push", id, &body);
        assert_eq!(status, 202, "{text}");
        (build_of(&text), body)
    };
    let (public_build, public_body) = push(REPO, false, "public commit message", "d-public");
    let (hidden_build, _) = push(HIDDEN, true, "HIDDEN-COMMIT-MESSAGE", "d-hidden");

    let as_token = |path: &str| -> serde_json::Value {
        let a = request(
            "GET",
            &format!("{}{path}", server.url()),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            b"",
        );
        assert_eq!(a.status, 200, "{path}: {a:?}");
        serde_json::from_str(&a.body).unwrap()
    };
    let wait_final = |id: i64| -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            let v = as_token(&format!("/api/builds/{id}"));
            if !["queued", "preparing", "running"].contains(&v["build"]["state"].as_str().unwrap())
            {
                assert_eq!(
                    v["build"]["state"],
                    "passed",
                    "{v}\n{}",
                    server.server_log()
                );
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{v}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let public_job = wait_final(public_build)["jobs"][0]["id"].as_i64().unwrap();
    let hidden_job = wait_final(hidden_build)["jobs"][0]["id"].as_i64().unwrap();
    let hidden_log = format!("log line of {HIDDEN}");
    let log = as_token(&format!("/api/jobs/{hidden_job}/log"));
    assert!(log.to_string().contains(&hidden_log), "{log}");

    // Sign in three GitHub users; each session's forms carry its own CSRF token.
    let mut sessions = Vec::new();
    for (who, login) in [
        (Who::Nobody, "nobody"),
        (Who::Reader, "reader"),
        (Who::Writer, "writer"),
    ] {
        github.with_oauth(|o| o.next_login = login.into());
        let cookie = sign_in(&server.url());
        let page = request(
            "GET",
            &format!("{}/login", server.url()),
            &[("Cookie", &cookie)],
            b"",
        );
        assert!(page.body.contains(login), "{page:?}");
        sessions.push((who, cookie, csrf_of(&page.body)));
    }
    let callers = Callers { sessions };

    let secret_bits = [HIDDEN, "HIDDEN-COMMIT-MESSAGE", hidden_log.as_str()];
    let mut checked = 0;
    let mut check = |who: Who, method: &str, path: &str, body: &str, want: u16| {
        let a = callers.call(&server, who, method, path, body);
        assert_eq!(a.status, want, "{who:?} {method} {path}: {}", a.body);
        if !who.reads_private() {
            for bit in secret_bits {
                assert!(
                    !a.body.contains(bit),
                    "{who:?} {method} {path} shows {bit:?}: {}",
                    a.body
                );
            }
        }
        checked += 1;
        a
    };

    for who in EVERYONE {
        // Lists show only what the caller may read.
        for path in ["/", "/api/repos", "/api/builds"] {
            let a = check(who, "GET", path, "", 200);
            assert!(a.body.contains(REPO), "{who:?} {path}: {}", a.body);
            assert_eq!(
                a.body.contains(HIDDEN),
                who.reads_private(),
                "{who:?} {path}"
            );
        }
        for (repo, build, job, private) in [
            (REPO, public_build, public_job, false),
            (HIDDEN, hidden_build, hidden_job, true),
        ] {
            let want = if private && !who.reads_private() {
                404
            } else {
                200
            };
            for path in [
                format!("/api/builds?repo={}", repo.replace('/', "%2F")),
                format!("/repos/{repo}"),
                format!("/builds/{build}"),
                format!("/api/builds/{build}"),
                format!("/jobs/{job}"),
                format!("/api/jobs/{job}"),
                format!("/api/jobs/{job}/log"),
                format!("/jobs/{job}/log.txt"),
                format!("/jobs/{job}/events"),
                format!("/badge/{repo}.svg"),
            ] {
                let a = check(who, "GET", &path, "", want);
                if want == 200 && (path.ends_with("log.txt") || path.ends_with("/events")) {
                    assert!(
                        a.body.contains(&format!("log line of {repo}")),
                        "{who:?} {path}: {}",
                        a.body
                    );
                }
            }
            // Cancel (the build is finished, so an allowed cancel changes nothing).
            let api_want = match who {
                Who::Anonymous => 401,
                Who::Writer | Who::Token => 200,
                _ if private && !who.reads_private() => 404,
                _ => 403,
            };
            check(
                who,
                "POST",
                &format!("/api/builds/{build}/cancel"),
                "",
                api_want,
            );
            let form = callers
                .csrf(who)
                .map(|c| format!("csrf={c}"))
                .unwrap_or_default();
            let ui_want = match who {
                Who::Anonymous | Who::Writer | Who::Token => 303,
                _ if private && !who.reads_private() => 404,
                _ => 403,
            };
            let a = check(
                who,
                "POST",
                &format!("/builds/{build}/cancel"),
                &form,
                ui_want,
            );
            if who == Who::Anonymous {
                assert_eq!(a.header("location"), Some("/login"));
            }
        }
    }
    assert!(checked > 100, "{checked}");

    // A session's form without its CSRF token, or from another site, is refused.
    let writer = callers.headers(Who::Writer)[0].1.clone();
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut h = vec![
            ("Cookie", writer.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        h.extend_from_slice(headers);
        request(
            "POST",
            &format!("{}/builds/{public_build}/restart", server.url()),
            &h,
            body.as_bytes(),
        )
    };
    assert_eq!(post(&[], "").status, 403);
    assert_eq!(post(&[], "csrf=wrong").status, 403);
    let csrf = format!("csrf={}", callers.csrf(Who::Writer).unwrap());
    assert_eq!(
        post(&[("Origin", "https://evil.example")], &csrf).status,
        403
    );

    // The badge of the private repository works with the token its page shows to pushers.
    let page = callers.call(&server, Who::Writer, "GET", &format!("/repos/{HIDDEN}"), "");
    let at = page.body.find("?token=").expect("the badge token") + 7;
    let token: String = page.body[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    let badge = |t: &str| {
        request(
            "GET",
            &format!("{}/badge/{HIDDEN}.svg?token={t}", server.url()),
            &[],
            b"",
        )
    };
    assert_eq!(badge(&token).status, 200);
    assert!(badge(&token).body.contains("passing"));
    assert_eq!(badge("0123").status, 404);
    let reader_page = callers.call(&server, Who::Reader, "GET", &format!("/repos/{HIDDEN}"), "");
    assert!(
        !reader_page.body.contains(&token),
        "pull does not see the badge token"
    );

    // GitHub was asked once per user and repository, however often they read.
    let asked = github
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| {
            r.path == format!("/repos/{HIDDEN}")
                && r.authorization
                    .as_deref()
                    .is_some_and(|a| a.contains("reader"))
        })
        .count();
    assert_eq!(asked, 1, "the permission is cached");
    let problems = github.with_oauth(|o| o.problems.clone());
    assert!(problems.is_empty(), "{problems:?}");

    // A replay of an accepted body under a new delivery id starts nothing.
    let (status, text) = server.deliver("push", "d-public-replayed", &public_body);
    assert_eq!((status, text.as_str()), (200, "{\"duplicate\":true}"));

    // Sign-out ends the session: the reader sees the private repository no more.
    let reader = callers.headers(Who::Reader)[0].1.clone();
    let out = request(
        "POST",
        &format!("{}/logout", server.url()),
        &[
            ("Cookie", reader.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={}", callers.csrf(Who::Reader).unwrap()).as_bytes(),
    );
    assert_eq!(out.status, 303, "{out:?}");
    let after = request(
        "GET",
        &format!("{}/builds/{hidden_build}", server.url()),
        &[("Cookie", reader.as_str())],
        b"",
    );
    assert_eq!(after.status, 404);

    // The flag follows the deliveries: once GitHub says the public repository went private,
    // anonymous readers lose it.
    let body = push_payload_with(REPO, &url, "refs/heads/other", &sha, true, "now private");
    assert_eq!(server.deliver("push", "d-private-now", &body).0, 202);
    let (status, _) = server.get(&format!("/builds/{public_build}"));
    assert_eq!(status, 404);
}

#[test]
fn sessions_survive_a_restart_and_pages_carry_the_security_headers() {
    let Some((tmp, origin)) = docker_and_origin(PIPELINE) else {
        return;
    };
    let (_github, api, port, public_url) = signing_in(FakeOAuth {
        next_login: "reader".into(),
        grants: vec![("reader".into(), HIDDEN.into(), "pull".into())],
        ..FakeOAuth::default()
    });
    let url = origin.url();
    let mut server = Served::with_config(
        tmp.path(),
        port,
        |port| {
            format!(
                "listen = \"127.0.0.1:{port}\"\npublic_url = \"{public_url}\"\nwebhook_secret = \"{SECRET}\"\nworkers = 0\n\
                 [github]\napi_url = \"{api}\"\nweb_url = \"{api}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
                 [[repos]]\nname = \"{HIDDEN}\"\nclone_url = \"{url}\"\n"
            )
        },
        &[],
    );
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let body = push_payload_with(HIDDEN, &url, "refs/heads/master", &sha, true, "m");
    let (status, text) = server.deliver("push", "s-1", &body);
    assert_eq!(status, 202, "{text}");
    let build = build_of(&text);
    let cookie = sign_in(&server.url());
    let base = server.url();
    let page = |cookie: &str| {
        request(
            "GET",
            &format!("{base}/builds/{build}"),
            &[("Cookie", cookie)],
            b"",
        )
    };
    assert_eq!(page(&cookie).status, 200);
    server.kill();
    server.start();
    let a = page(&cookie);
    assert_eq!(a.status, 200, "the session outlived the process");
    let csp = a.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert!(a.header("referrer-policy").is_some());
    assert!(
        !a.body.contains("<script>") && !a.body.contains("<style>"),
        "{}",
        a.body
    );
    assert_eq!(page("slipway_session=forged").status, 404);
    // The session cookie is HttpOnly and SameSite=Lax (not Secure: this public_url is http).
    let start = request("GET", &format!("{}/login/github", server.url()), &[], b"");
    let back = request("GET", start.header("location").unwrap(), &[], b"");
    let state = start.cookies()[0].clone();
    let done = request(
        "GET",
        back.header("location").unwrap(),
        &[("Cookie", &state)],
        b"",
    );
    let set = done
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("slipway_session="))
        .unwrap()
        .1
        .clone();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Max-Age="),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");
    // Guessing API tokens: past 10 wrong ones a minute the address gets 429, even with a right one.
    let with_token = |t: &str| {
        request(
            "GET",
            &format!("{}/api/builds", server.url()),
            &[("Authorization", &format!("Bearer {t}"))],
            b"",
        )
        .status
    };
    for n in 0..10 {
        assert_eq!(with_token(&format!("guess-{n}")), 401);
    }
    assert_eq!(with_token("guess-10"), 429);
    assert_eq!(with_token(TOKEN), 429);
    // A callback whose state is not this browser's is refused.
    let forged = request(
        "GET",
        &format!(
            "{}/login/github/callback?code=code1&state={}",
            server.url(),
            "a".repeat(64)
        ),
        &[("Cookie", &state)],
        b"",
    );
    assert_eq!(forged.status, 400, "{forged:?}");
}
