//! Support for tests of this crate and of the `slipway` binary: signed deliveries, a stand-in
//! for GitHub's REST API that records requests and can fail for a while, throwaway git
//! repositories, read-only looks into a server's database, and a scripted job runner. Loopback
//! only. Compiled only with the `testing` feature, which tests and benchmarks enable and the
//! `slipway` binary does not.

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub mod bench;
pub mod git_hosts;
mod job_runner;
mod live;
pub mod releases;
mod rest;

pub use job_runner::{PassingJobRunner, ScriptedJobRunner};
pub use live::{LogViewer, SeenChunk};
pub use releases::{FakeAsset, FakeRelease, FakeReleases};
pub use rest::{FakeCheckRun, FakeRest};

/// A runtime like `slipway serve`'s: two threads for the network and the store.
pub fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Signs and posts a delivery; returns status and body.
pub fn deliver(base: &str, secret: &str, event: &str, id: &str, body: &[u8]) -> (u16, String) {
    let sig = crate::signature::sign(secret.as_bytes(), body);
    http(
        "POST",
        &format!("{base}/webhooks/github"),
        &[
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", id),
            ("X-Hub-Signature-256", &sig),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

/// The build id of a delivery the server accepted (202): the answer of [`deliver`].
#[track_caller]
pub fn build_of(answer: (u16, String)) -> i64 {
    let (status, text) = answer;
    assert_eq!(status, 202, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["build"]
        .as_i64()
        .unwrap()
}

/// One HTTP/1.1 request on a fresh connection, following redirects as a browser does (at most
/// ten; a 301/302/303 turns into a `GET` without a body, `Authorization` is not sent on);
/// returns the final status and body.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut answer = request(method, url, headers, body);
    let (mut method, mut url, mut body) = (method.to_string(), url.to_string(), body.to_vec());
    let mut headers: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
        .copied()
        .collect();
    for _ in 0..10 {
        let Some(location) = answer
            .header("location")
            .filter(|_| matches!(answer.status, 301 | 302 | 303 | 307 | 308))
        else {
            break;
        };
        url = url::Url::parse(&url)
            .and_then(|u| u.join(location))
            .unwrap()
            .to_string();
        if !matches!(answer.status, 307 | 308) {
            method = "GET".into();
            body.clear();
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        }
        answer = request(&method, &url, &headers, &body);
    }
    (answer.status, answer.body)
}

/// An answer with its headers (names in lower case), as [`request`] returns it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `name=value` part of each `Set-Cookie`.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.split(';').next().unwrap_or("").to_string())
            .collect()
    }
}

/// One HTTP/1.1 request on a fresh connection, redirects not followed.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    thread_local! {
        static CLIENT: slipway_http::Blocking =
            slipway_http::Blocking::new(slipway_http::Tls::default()).unwrap();
    }
    let mut headers = headers.to_vec();
    headers.push(("Connection", "close"));
    let answer = CLIENT
        .with(|c| c.send(method, url, &headers, Some(body.to_vec())))
        .unwrap();
    Answer {
        status: answer.status,
        body: answer.text(),
        headers: answer.headers,
    }
}

/// Signs in through GitHub's OAuth flow (the stand-in signs in whoever its `next_login` is):
/// returns the session cookie (`slipway_session=…`).
pub fn sign_in(server: &str) -> String {
    let start = request("GET", &format!("{server}/login/github"), &[], b"");
    assert_eq!(start.status, 303, "{start:?}");
    let state_cookie = start.cookies().into_iter().next().expect("a state cookie");
    let authorize = start
        .header("location")
        .expect("a redirect to GitHub")
        .to_string();
    let back = request("GET", &authorize, &[], b"");
    assert_eq!(back.status, 302, "{back:?}");
    let callback = back
        .header("location")
        .expect("a redirect back")
        .to_string();
    let done = request("GET", &callback, &[("Cookie", &state_cookie)], b"");
    assert_eq!(done.status, 303, "{done:?}");
    done.cookies()
        .into_iter()
        .find(|c| c.starts_with("slipway_session=") && c.len() > "slipway_session=".len())
        .expect("a session cookie")
}

/// A request GitHub's stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub answered: u16,
}

/// A stand-in for GitHub's REST API: records every request and answers 201, or a configured
/// failure status for the next N requests. With [`FakeGitHub::app`] it authenticates a GitHub
/// App as GitHub does (see [`FakeApp`]); with [`FakeGitHub::releases`] it keeps releases and
/// their assets (see [`FakeReleases`]). Git's `…/info/refs` asks for Basic credentials, then
/// answers 404 once it has them: enough to see what a fetch would send.
#[derive(Clone, Default)]
pub struct FakeGitHub {
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    fail_left: Arc<AtomicUsize>,
    fail_status: Arc<AtomicUsize>,
    app: Arc<Mutex<Option<FakeApp>>>,
    oauth: Arc<Mutex<Option<FakeOAuth>>>,
    rest: Arc<Mutex<FakeRest>>,
    releases: Arc<Mutex<Option<FakeReleases>>>,
}

/// GitHub's OAuth web flow and user API as the stand-in plays them, checking each request
/// exactly: `/login/oauth/authorize` must name `client_id`, `redirect_uri` and scope `repo`, and
/// redirects at once (as a user who clicked "Authorize") with a one-time code for `next_login`;
/// `/login/oauth/access_token` must bring the client id and secret, an unused code and the same
/// redirect URI; `/user` and `GET /repos/{owner}/{name}` need `Authorization: Bearer` with an
/// issued token, and a repository answers with the user's `permissions` from `grants`, or 404
/// when they have none. Every mismatch answers 400/401 and is listed in `problems`.
#[derive(Debug, Clone, Default)]
pub struct FakeOAuth {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    /// Who signs in next.
    pub next_login: String,
    /// (login, `owner/name`) → `pull` or `push`; `private` repositories are said to be so.
    pub grants: Vec<(String, String, String)>,
    pub private: Vec<String>,
    /// Codes issued: (code, login, used).
    pub codes: Vec<(String, String, bool)>,
    /// Tokens issued: (token, login).
    pub tokens: Vec<(String, String)>,
    pub problems: Vec<String>,
}

impl FakeOAuth {
    fn query(uri: &Uri) -> std::collections::HashMap<String, String> {
        form(uri.query().unwrap_or(""))
    }

    fn login_of(&self, authorization: Option<&str>) -> Result<String, String> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or_else(|| {
                format!("needs `Authorization: Bearer <token>`, got {authorization:?}")
            })?;
        self.tokens
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, l)| l.clone())
            .ok_or_else(|| format!("unknown token {token}"))
    }

    /// The answer when the request is part of the OAuth flow or the user API, else `None`.
    fn answer(
        &mut self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Result<Response, String>> {
        let path = uri.path();
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(match (method.as_str(), path) {
            ("GET", "/login/oauth/authorize") => {
                let q = Self::query(uri);
                let get = |k: &str| q.get(k).cloned().unwrap_or_default();
                if get("client_id") != self.client_id
                    || get("redirect_uri") != self.redirect_uri
                    || get("scope") != "repo"
                    || get("state").len() < 32
                {
                    Err(format!("authorize with wrong parameters: {q:?}"))
                } else {
                    let code = format!("code{}", self.codes.len() + 1);
                    self.codes
                        .push((code.clone(), self.next_login.clone(), false));
                    let to = format!("{}?code={code}&state={}", self.redirect_uri, get("state"));
                    Ok((StatusCode::FOUND, [("location", to)]).into_response())
                }
            }
            ("POST", "/login/oauth/access_token") => {
                let f = form(std::str::from_utf8(body).unwrap_or(""));
                let get = |k: &str| f.get(k).cloned().unwrap_or_default();
                let accept = headers.get("accept").and_then(|v| v.to_str().ok());
                let code = self
                    .codes
                    .iter_mut()
                    .find(|(c, _, used)| *c == get("code") && !*used);
                match code {
                    Some((_, login, used))
                        if get("client_id") == self.client_id
                            && get("client_secret") == self.client_secret
                            && get("redirect_uri") == self.redirect_uri
                            && accept == Some("application/json") =>
                    {
                        *used = true;
                        let token = format!("gho_{login}_{}", self.tokens.len() + 1);
                        self.tokens.push((token.clone(), login.clone()));
                        Ok(axum::Json(serde_json::json!({
                            "access_token": token, "token_type": "bearer", "scope": "repo"
                        }))
                        .into_response())
                    }
                    _ => Err(format!(
                        "access_token with wrong parameters: {f:?}, accept {accept:?}"
                    )),
                }
            }
            ("GET", "/user") => self.login_of(auth).map(|login| {
                axum::Json(serde_json::json!({"login": login, "id": 1})).into_response()
            }),
            ("GET", _) if segments.len() == 3 && segments[0] == "repos" => {
                let repo = format!("{}/{}", segments[1], segments[2]);
                self.login_of(auth).map(|login| {
                    let grant = self
                        .grants
                        .iter()
                        .find(|(l, r, _)| *l == login && r.eq_ignore_ascii_case(&repo));
                    match grant {
                        None => (
                            StatusCode::NOT_FOUND,
                            axum::Json(serde_json::json!({"message": "Not Found"})),
                        )
                            .into_response(),
                        Some((_, _, level)) => {
                            let push = level == "push";
                            axum::Json(serde_json::json!({
                                "full_name": repo,
                                "private": self.private.iter().any(|p| p.eq_ignore_ascii_case(&repo)),
                                "permissions": {"admin": false, "maintain": false, "push": push,
                                                "triage": push, "pull": true}
                            }))
                            .into_response()
                        }
                    }
                })
            }
            _ => return None,
        })
    }
}

/// A form or query string as a map (percent-decoded, `+` as space).
fn form(s: &str) -> std::collections::HashMap<String, String> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let decode = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// A GitHub App as the stand-in knows it. JWTs must be RS256, signed by the key whose public half
/// is `public_key_der` (PKCS#1 `RSAPublicKey`), name `iss`, be dated no later than now and expire
/// within ten minutes. Installation tokens are issued for `installation_id` only, valid for
/// `lifetimes[n]` seconds (the last one repeats); every other request then needs
/// `Authorization: token <an issued, unexpired token>`. Failures answer 401 and are listed in
/// `problems`.
#[derive(Debug, Clone, Default)]
pub struct FakeApp {
    pub iss: Value,
    pub public_key_der: Vec<u8>,
    pub installation_id: u64,
    pub lifetimes: Vec<u64>,
    /// Tokens issued, with their expiry (unix seconds).
    pub issued: Vec<(String, u64)>,
    /// (header, claims) of every JWT accepted.
    pub jwts: Vec<(Value, Value)>,
    pub problems: Vec<String>,
}

impl FakeApp {
    fn check_jwt(&mut self, authorization: Option<&str>) -> Result<(), String> {
        let jwt = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or("no `Authorization: Bearer <JWT>`")?;
        let parts: Vec<&str> = jwt.split('.').collect();
        let [h, c, sig] = parts[..] else {
            return Err(format!("a JWT has three parts, this one {}", parts.len()));
        };
        let json = |part: &str| -> Result<Value, String> {
            let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())
        };
        let (header, claims) = (json(h)?, json(c)?);
        if header["alg"] != "RS256" {
            return Err(format!("alg must be RS256: {header}"));
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &self.public_key_der,
        )
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| "the JWT's signature does not verify with the App's public key")?;
        if claims["iss"] != self.iss {
            return Err(format!("iss must be {}: {claims}", self.iss));
        }
        let now = now_secs();
        let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
            return Err(format!("iat and exp must be numbers: {claims}"));
        };
        if iat > now || exp <= now || exp > now + 600 {
            return Err(format!(
                "iat must not be in the future and exp within ten minutes (now {now}): {claims}"
            ));
        }
        self.jwts.push((header, claims));
        Ok(())
    }

    fn issue(&mut self) -> Value {
        let n = self.issued.len();
        let lifetime = self
            .lifetimes
            .get(n)
            .or(self.lifetimes.last())
            .copied()
            .unwrap_or(3600);
        let token = format!("ghs_fake{}", n + 1);
        let expires_at = now_secs() + lifetime;
        self.issued.push((token.clone(), expires_at));
        serde_json::json!({
            "token": token,
            "expires_at": crate::auth::format_timestamp(expires_at),
            "permissions": {"statuses": "write", "contents": "read"},
        })
    }

    /// The answer to an App-authenticated request: status and JSON body.
    fn answer(&mut self, method: &Method, path: &str, auth: Option<&str>) -> (u16, Value) {
        let installation_path =
            format!("/app/installations/{}/access_tokens", self.installation_id);
        let result = if *method == Method::GET
            && path.starts_with("/repos/")
            && path.ends_with("/installation")
        {
            self.check_jwt(auth)
                .map(|()| (200, serde_json::json!({"id": self.installation_id})))
        } else if *method == Method::POST && path.starts_with("/app/installations/") {
            self.check_jwt(auth).and_then(|()| {
                if path == installation_path {
                    Ok((201, self.issue()))
                } else {
                    Err(format!("no such installation: {path}"))
                }
            })
        } else {
            let now = now_secs();
            match auth.and_then(|a| a.strip_prefix("token ")) {
                Some(t) if self.issued.iter().any(|(i, exp)| i == t && *exp > now) => {
                    Ok((201, Value::Null))
                }
                _ => Err(format!(
                    "{method} {path} needs `Authorization: token <installation token>`, got {auth:?}"
                )),
            }
        };
        match result {
            Ok((status, body)) if body.is_null() => (status, status_body()),
            Ok(answer) => answer,
            Err(problem) => {
                self.problems.push(problem.clone());
                (
                    401,
                    serde_json::json!({"message": format!("Bad credentials: {problem}")}),
                )
            }
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn status_body() -> Value {
    serde_json::json!({"id": 1, "state": "pending", "context": "slipway", "url": "", "creator": null})
}

impl FakeGitHub {
    /// Starts on `rt`; returns its base URL.
    pub fn start(&self, rt: &tokio::runtime::Runtime) -> String {
        let me = self.clone();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(handle).with_state(me);
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// The next `n` requests are answered with `status`.
    pub fn fail(&self, n: usize, status: u16) {
        self.fail_status.store(status as usize, Ordering::SeqCst);
        self.fail_left.store(n, Ordering::SeqCst);
    }

    /// From now on, play GitHub's OAuth flow and user API as `oauth` says.
    pub fn oauth(&self, oauth: FakeOAuth) {
        *self.oauth.lock().unwrap() = Some(oauth);
    }

    /// Changes the OAuth side (who signs in next, grants).
    pub fn with_oauth<R>(&self, f: impl FnOnce(&mut FakeOAuth) -> R) -> R {
        f(self
            .oauth
            .lock()
            .unwrap()
            .as_mut()
            .expect("oauth is set up"))
    }

    /// From now on, play GitHub's Releases API as `releases` says.
    pub fn releases(&self, releases: FakeReleases) {
        *self.releases.lock().unwrap() = Some(releases);
    }

    /// The Releases side's state: releases, assets, problems found.
    pub fn releases_state(&self) -> FakeReleases {
        self.releases
            .lock()
            .unwrap()
            .clone()
            .expect("releases are set up")
    }

    /// From now on, authenticate `app` as GitHub authenticates GitHub Apps.
    pub fn app(&self, app: FakeApp) {
        *self.app.lock().unwrap() = Some(app);
    }

    /// Makes every installation token issued so far expired, as GitHub does when one is revoked
    /// or its hour is up while the server still holds it.
    pub fn expire_tokens(&self) {
        if let Some(app) = self.app.lock().unwrap().as_mut() {
            for (_, exp) in &mut app.issued {
                *exp = 0;
            }
        }
    }

    /// The App's state: tokens issued, JWTs accepted, problems found.
    pub fn app_state(&self) -> Option<FakeApp> {
        self.app.lock().unwrap().clone()
    }

    /// The check runs made so far.
    pub fn check_runs(&self) -> Vec<FakeCheckRun> {
        self.rest.lock().unwrap().check_runs.clone()
    }

    /// Requests for statuses and check runs that broke GitHub's schema, or went where GitHub has
    /// no endpoint.
    pub fn problems(&self) -> Vec<String> {
        self.rest.lock().unwrap().problems.clone()
    }

    /// Statuses successfully recorded, as (sha, state, target_url, description).
    pub fn statuses(&self) -> Vec<(String, String, String, String)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.answered == 201 && r.path.contains("/statuses/"))
            .map(|r| {
                (
                    r.path.rsplit('/').next().unwrap().to_string(),
                    r.body["state"].as_str().unwrap_or("").to_string(),
                    r.body["target_url"].as_str().unwrap_or("").to_string(),
                    r.body["description"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

async fn handle(
    State(gh): State<FakeGitHub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_string();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let record = |body: Value, answered: u16| {
        gh.requests.lock().unwrap().push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            authorization: authorization.clone(),
            body,
            answered,
        });
    };
    let oauth = gh
        .oauth
        .lock()
        .unwrap()
        .as_mut()
        .and_then(|o| o.answer(&method, &uri, &headers, &body).map(|a| (a, o)))
        .map(|(answer, o)| match answer {
            Ok(r) => r,
            Err(problem) => {
                o.problems.push(problem.clone());
                (StatusCode::BAD_REQUEST, problem).into_response()
            }
        });
    if let Some(resp) = oauth {
        record(Value::Null, resp.status().as_u16());
        return resp;
    }
    let failing = gh
        .fail_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let released = if failing || !FakeReleases::owns(&path) {
        None
    } else {
        gh.releases
            .lock()
            .unwrap()
            .as_mut()
            .map(|r| r.answer(&method, &uri, &headers, &body))
    };
    if let Some((status, answer)) = released {
        record(serde_json::from_slice(&body).unwrap_or(Value::Null), status);
        let code = StatusCode::from_u16(status).unwrap();
        if answer.is_null() {
            return code.into_response();
        }
        return (
            code,
            [("content-type", "application/json")],
            answer.to_string(),
        )
            .into_response();
    }
    let (status, answer) = if failing {
        (
            gh.fail_status.load(Ordering::SeqCst) as u16,
            serde_json::json!({"message": "unavailable"}),
        )
    } else if path.ends_with("/info/refs") {
        // Git over HTTP: ask for credentials, and refuse once they were sent.
        if authorization.is_none() {
            (401, Value::Null)
        } else {
            (404, Value::Null)
        }
    } else {
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut app = gh.app.lock().unwrap();
        let (status, answer) = match app.as_mut() {
            Some(app) => app.answer(&method, &path, authorization.as_deref()),
            None => (201, Value::Null),
        };
        let app_path = path.starts_with("/app/") || path.ends_with("/installation");
        if (200..300).contains(&status) && !app_path {
            gh.rest
                .lock()
                .unwrap()
                .answer(method.as_str(), &path, &json, app.is_some())
        } else {
            (status, answer)
        }
    };
    record(serde_json::from_slice(&body).unwrap_or(Value::Null), status);
    let code = StatusCode::from_u16(status).unwrap();
    if answer.is_null() {
        return (
            code,
            [("www-authenticate", "Basic realm=\"GitHub\"")],
            String::new(),
        )
            .into_response();
    }
    (code, [("retry-after", "0")], answer.to_string()).into_response()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An RSA key pair for a GitHub App, made by `openssl` in `dir`: the private key's file as GitHub
/// hands it out (PKCS#1 PEM) and the public key as PKCS#1 DER; why not, without openssl.
pub fn app_key_pair(dir: &Path) -> Result<(PathBuf, Vec<u8>), String> {
    let pem = dir.join("app.pem");
    let der = dir.join("app.pub.der");
    let run = |args: &[&str]| match Command::new("openssl").args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        other => Err(format!("openssl {args:?}: {other:?}")),
    };
    let (pem_path, der_path) = (pem.to_str().unwrap(), der.to_str().unwrap());
    run(&["genrsa", "-traditional", "-out", pem_path, "2048"])?;
    run(&[
        "rsa",
        "-in",
        pem_path,
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        der_path,
    ])?;
    let public = std::fs::read(&der).map_err(|e| format!("{}: {e}", der.display()))?;
    Ok((pem, public))
}

/// Polls the API of the server at `base` until build `id` is final (not queued, preparing or
/// running) and returns the API's view of it; fails after `secs` seconds showing the last answer
/// and `context()` (a server's log, say).
#[track_caller]
pub fn wait_final(base: &str, id: i64, secs: u64, context: impl Fn() -> String) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (status, body) = http("GET", &format!("{base}/api/builds/{id}"), &[], b"");
        assert_eq!(status, 200, "build {id}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let state = v["build"]["state"].as_str().unwrap_or_default();
        if !["queued", "preparing", "running"].contains(&state) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "build {id} still {state}: {v}\n{}",
            context()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Polls `done` every 50 ms until it holds; fails naming `what` after `secs` seconds.
#[track_caller]
pub fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Makes `bare` a bare repository whose `master` is one commit (`message`) holding `files`, made
/// in the work tree `work`, which keeps `bare` as its `origin` to push more to.
pub fn bare_with_work(bare: &Path, work: &Path, files: &[(&str, &str)], message: &str) {
    std::fs::create_dir_all(work).unwrap();
    let bare_path = bare.to_str().unwrap();
    git(work, &["init", "-q", "--bare", "-b", "master", bare_path]);
    git(work, &["init", "-q", "-b", "master"]);
    for (file, text) in files {
        std::fs::write(work.join(file), text).unwrap();
    }
    git(work, &["add", "."]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["remote", "add", "origin", bare_path]);
    git(work, &["push", "-q", "origin", "master"]);
}

/// A bare "GitHub" repository with `master` holding `pipeline` as `.travis.yml`, plus a work
/// tree to make more commits from.
pub struct Origin {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Origin {
    pub fn new(root: &Path, pipeline: &str) -> Origin {
        let bare = root.join("origin.git");
        let work = root.join("work");
        let files = [(".travis.yml", pipeline), ("README", "one\ntwo\nthree\n")];
        bare_with_work(&bare, &work, &files, "initial");
        Origin { bare, work }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Commits `file` = `text` on a new branch from `from`, pushes it as `refs/pull/N/head`;
    /// returns the head SHA.
    pub fn pull_request(&self, n: u64, from: &str, file: &str, text: &str) -> String {
        git(
            &self.work,
            &["checkout", "-q", "-B", &format!("pr{n}"), from],
        );
        std::fs::write(self.work.join(file), text).unwrap();
        git(&self.work, &["add", "."]);
        git(
            &self.work,
            &["commit", "-q", "-m", &format!("change {file}")],
        );
        git(
            &self.work,
            &[
                "push",
                "-q",
                "-f",
                "origin",
                &format!("HEAD:refs/pull/{n}/head"),
            ],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Commits `file` = `text` on master and pushes; returns the SHA.
    pub fn push_master(&self, file: &str, text: &str) -> String {
        git(&self.work, &["checkout", "-q", "master"]);
        std::fs::write(self.work.join(file), text).unwrap();
        git(&self.work, &["add", "."]);
        git(
            &self.work,
            &["commit", "-q", "-m", &format!("master changes {file}")],
        );
        git(&self.work, &["push", "-q", "origin", "master"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// A pull request delivery of a public repository.
pub fn pr_payload(
    repo: &str,
    clone_url: &str,
    action: &str,
    n: u64,
    head: &str,
    base_sha: &str,
) -> Vec<u8> {
    serde_json::json!({
        "action": action, "number": n, "sender": {"login": "dev"},
        "repository": {"full_name": repo, "clone_url": clone_url, "private": false},
        "pull_request": {"title": "A change", "body": null,
            "head": {"ref": format!("pr{n}"), "sha": head, "repo": {"full_name": repo, "clone_url": clone_url}},
            "base": {"ref": "master", "sha": base_sha, "repo": {"full_name": repo, "clone_url": clone_url}}}
    })
    .to_string()
    .into_bytes()
}

/// A push delivery of a public repository.
pub fn push_payload(repo: &str, clone_url: &str, git_ref: &str, after: &str) -> Vec<u8> {
    push_payload_with(repo, clone_url, git_ref, after, false, "a push")
}

/// A push delivery, public or private, with a head commit message.
pub fn push_payload_with(
    repo: &str,
    clone_url: &str,
    git_ref: &str,
    after: &str,
    private: bool,
    message: &str,
) -> Vec<u8> {
    serde_json::json!({
        "ref": git_ref, "before": "0".repeat(40), "after": after, "deleted": false,
        "head_commit": {"message": message}, "sender": {"login": "dev"},
        "repository": {"full_name": repo, "clone_url": clone_url, "private": private}
    })
    .to_string()
    .into_bytes()
}

/// Opens the server's database read-only, for assertions on what was stored.
pub fn db(data: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        data.join("slipway.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

pub fn count(data: &Path, sql: &str) -> i64 {
    db(data).query_row(sql, [], |r| r.get(0)).unwrap()
}
