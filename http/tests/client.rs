//! The client against a real server on 127.0.0.1: what it sends, what it reads back, and how it
//! fails.

use axum::http::HeaderMap;
use slipway_http::{Blocking, Http, HttpError, Tls};
use std::time::Duration;

/// A server echoing the request's method, headers and body as JSON, and one that never answers.
async fn serve() -> String {
    let app = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .fallback(
            |method: axum::http::Method, headers: HeaderMap, body: axum::body::Bytes| async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
                (
                    axum::http::StatusCode::CREATED,
                    [("x-answer", "yes")],
                    axum::Json(serde_json::json!({
                        "method": method.as_str(),
                        "user_agent": h("user-agent"),
                        "authorization": h("authorization"),
                        "content_type": h("content-type"),
                        "body": String::from_utf8_lossy(&body),
                    })),
                )
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_request_carries_its_headers_and_body_and_the_whole_answer_comes_back() {
    let base = serve().await;
    let http = Http::new(Tls::default()).unwrap();
    let r = http
        .send(
            "POST",
            &format!("{base}/x"),
            &[
                ("Authorization", "Bearer t"),
                ("Content-Type", "application/json"),
            ],
            Some(br#"{"a":1}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    assert!(r.ok());
    assert_eq!(r.header("x-answer"), Some("yes"));
    let v = r.json();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["authorization"], "Bearer t");
    assert_eq!(v["content_type"], "application/json");
    assert_eq!(v["body"], r#"{"a":1}"#);
    // GitHub refuses requests without a User-Agent: one is always sent, the caller's if given.
    assert!(
        v["user_agent"].as_str().unwrap().starts_with("slipway/"),
        "{v}"
    );
    let r = http
        .send("GET", &format!("{base}/x"), &[("User-Agent", "mine")], None)
        .await
        .unwrap();
    assert_eq!(r.json()["user_agent"], "mine");
}

#[tokio::test]
async fn no_answer_in_time_is_an_error_naming_the_request() {
    let base = serve().await;
    let http = Http::new(Tls::default())
        .unwrap()
        .timeout(Duration::from_millis(300));
    let e = http
        .send("GET", &format!("{base}/slow"), &[], None)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("GET {base}/slow")), "{e}");
    // Nobody listening: the error names the request too.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = http
        .send("GET", &format!("http://{closed}/"), &[], None)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Request { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!("GET http://{closed}/")),
        "{e}"
    );
}

#[test]
fn the_blocking_client_works_outside_and_inside_a_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = rt.block_on(serve());
    let client = Blocking::new(Tls::default()).unwrap();
    let r = client.send("GET", &format!("{base}/a"), &[], None).unwrap();
    assert_eq!(r.json()["method"], "GET");
    // Called from async code (a test helper inside a test's runtime), it must not panic.
    let inside = rt.block_on(async { client.send("PUT", &format!("{base}/b"), &[], None) });
    assert_eq!(inside.unwrap().json()["method"], "PUT");
}

#[test]
fn an_unusable_ca_is_named() {
    let e = Http::new(Tls {
        ca_pem: Some(b"not a certificate".to_vec()),
    })
    .unwrap_err();
    assert!(e.to_string().contains("CA certificate"), "{e}");
}
