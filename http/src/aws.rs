//! The AWS SDKs' HTTP client, on the same hyper connection code and rustls configuration as
//! [`Http`](crate::Http).
//!
//! The SDK's own client (`aws-smithy-http-client`) always brings an HTTP/2 implementation and a
//! second way of setting up TLS; every AWS endpoint Slipway calls (S3, ECS, Elastic Beanstalk, STS
//! and the credential services) answers HTTP/1.1, so the binary carries neither. What the SDK asks
//! of a client is kept: its connect and read timeouts, a client per pair of them (cached, so each
//! keeps its connection pool), and errors sorted as its retry policy expects (connection and I/O
//! failures and timeouts are retried, a request that could not be built is not).

use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Tls, client_config, connector};

/// The client to hand the SDK's configuration loader (`aws_config::ConfigLoader::http_client`):
/// system roots, `ring`, HTTP/1.1 over `https://` or `http://` (a local S3-compatible store).
pub fn client() -> SharedHttpClient {
    // Without a CA of its own the configuration cannot fail: `ring` speaks every default version.
    let tls = client_config(&Tls::default()).expect("TLS settings with the system's roots");
    SharedHttpClient::new(AwsClient {
        tls: Arc::new(tls),
        connectors: Arc::default(),
    })
}

type Key = (Option<Duration>, Option<Duration>);

#[derive(Clone)]
struct AwsClient {
    tls: Arc<rustls::ClientConfig>,
    /// One connector per (connect, read) timeout pair the SDK has asked for.
    connectors: Arc<Mutex<Vec<(Key, SharedHttpConnector)>>>,
}

impl std::fmt::Debug for AwsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsClient").finish_non_exhaustive()
    }
}

impl HttpClient for AwsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().expect("AWS connectors");
        if let Some((_, connector)) = connectors.iter().find(|(k, _)| *k == key) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(AwsConnector::new(&self.tls, key.0, key.1));
        connectors.push((key, connector.clone()));
        connector
    }
}

#[derive(Clone)]
struct AwsConnector {
    client: Client<hyper_rustls::HttpsConnector<TcpConnector>, SdkBody>,
    /// How long the answer's head may take once the request is on its way.
    read_timeout: Option<Duration>,
}

impl AwsConnector {
    fn new(
        tls: &rustls::ClientConfig,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> Self {
        AwsConnector {
            client: Client::builder(TokioExecutor::new())
                .build(connector(tls.clone(), connect_timeout)),
            read_timeout,
        }
    }
}

impl std::fmt::Debug for AwsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConnector")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpConnector for AwsConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sending = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let answer = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, sending)
                    .await
                    .map_err(|e| ConnectorError::timeout(e.into()))?,
                None => sending.await,
            };
            let response = answer.map_err(sorted)?.map(SdkBody::from_body_1_x);
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Sorts a failed exchange the way the SDK's retry policy reads it: a connection that could not
/// be made, broke or was closed is I/O (retried), so is an answer cut short (transient); a request
/// hyper refuses is the caller's.
fn sorted(e: hyper_util::client::legacy::Error) -> ConnectorError {
    let io = e.is_connect() || source::<std::io::Error>(&e).is_some();
    match source::<hyper::Error>(&e) {
        Some(h) if h.is_timeout() => ConnectorError::timeout(e.into()),
        Some(h) if h.is_user() => ConnectorError::user(e.into()),
        Some(h) if h.is_incomplete_message() => {
            ConnectorError::other(e.into(), Some(ErrorKind::TransientError))
        }
        Some(h) if h.is_closed() || h.is_canceled() => ConnectorError::io(e.into()),
        _ if io => ConnectorError::io(e.into()),
        _ => ConnectorError::other(e.into(), None),
    }
}

/// The first error of type `E` in `e`'s chain, `e` included.
fn source<'a, E: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn connector(read_timeout: Option<Duration>) -> AwsConnector {
        let tls = client_config(&Tls::default()).expect("TLS settings");
        AwsConnector::new(&tls, Some(Duration::from_secs(2)), read_timeout)
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest::try_from(
            hyper::Request::builder()
                .uri(url)
                .body(SdkBody::empty())
                .expect("request"),
        )
        .expect("smithy request")
    }

    #[tokio::test]
    async fn an_answer_comes_back_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/bucket/key", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-amz-id: 7\r\n\r\nhello")
                .await
                .unwrap();
        });
        let response = connector(None).call(get(&url)).await.expect("answer");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers().get("x-amz-id"), Some("7"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
    }

    #[tokio::test]
    async fn a_refused_connection_is_io_and_so_retried() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let err = connector(None).call(get(&url)).await.expect_err("refused");
        assert!(err.is_io(), "{err:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let held = tokio::spawn(async move { listener.accept().await });
        let err = connector(Some(Duration::from_millis(200)))
            .call(get(&url))
            .await
            .expect_err("no answer");
        assert!(err.is_timeout(), "{err:?}");
        held.abort();
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_transient() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            socket.write_all(b"HTTP/1.1 200 OK\r\ncon").await.unwrap();
        });
        let err = connector(None)
            .call(get(&url))
            .await
            .expect_err("cut short");
        assert!(
            err.is_io() || err.as_other() == Some(ErrorKind::TransientError),
            "{err:?}"
        );
    }
}
