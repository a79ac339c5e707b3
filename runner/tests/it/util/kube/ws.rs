//! Attach and exec over WebSocket, `v5.channel.k8s.io`: each binary frame starts with its
//! channel (0 stdin, 1 stdout, 2 stderr, 3 the closing `Status`), and `[255, 0]` closes stdin.
//! Attach joins the job's Docker container's standard input; exec runs a command in it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bollard::models::ExecConfig;
use bollard::query_parameters::AttachContainerOptionsBuilder;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{StandIn, bad_request, param, pods, query};

const PROTOCOL: &str = "v5.channel.k8s.io";
const FLAGS: &[&str] = &["container", "stdin", "stdout", "stderr", "tty", "command"];

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Checks the WebSocket handshake and answers 101, or says what is wrong.
fn handshake(req: &Request<Body>) -> Result<Response, String> {
    let headers = req.headers();
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("not a WebSocket request (no Sec-WebSocket-Key)")?;
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !offered.split(',').any(|p| p.trim() == PROTOCOL) {
        return Err(format!(
            "the stand-in speaks only {PROTOCOL}; offered: {offered:?}"
        ));
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "Upgrade".to_string()),
            (header::UPGRADE, "websocket".to_string()),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
            (header::SEC_WEBSOCKET_PROTOCOL, PROTOCOL.to_string()),
        ],
    )
        .into_response())
}

/// The upgraded connection as a WebSocket, once the 101 has gone out.
fn upgrade<F, Fut>(mut req: Request<Body>, then: F) -> Response
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let response = match handshake(&req) {
        Ok(r) => r,
        Err(why) => return bad_request(why),
    };
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on.await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            then(ws).await;
        }
    });
    response
}

fn frame(channel: u8, bytes: &[u8]) -> Message {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(channel);
    v.extend_from_slice(bytes);
    Message::binary(v)
}

fn status_frame(exit: i64) -> Message {
    let status = if exit == 0 {
        serde_json::json!({"metadata": {}, "status": "Success"})
    } else {
        serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: {exit}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": exit.to_string()}]}
        })
    };
    frame(3, status.to_string().as_bytes())
}

pub async fn attach(
    State(s): State<Arc<StandIn>>,
    Path((_ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    req: Request<Body>,
) -> Response {
    let pairs = match query(q, FLAGS) {
        Ok(p) => p,
        Err(why) => return bad_request(why),
    };
    let container = param(&pairs, "container").unwrap_or("");
    let Some(docker_name) = pods::docker_name(&s, &name, container) else {
        return bad_request(format!(
            "container {container:?} in pod {name:?} is not running"
        ));
    };
    let opts = AttachContainerOptionsBuilder::default()
        .stream(true)
        .stdin(true)
        .build();
    let attached = match s.docker.attach_container(&docker_name, Some(opts)).await {
        Ok(a) => a,
        Err(e) => return bad_request(format!("attaching: {e}")),
    };
    let docker = s.docker.clone();
    upgrade(req, move |mut ws: Ws| async move {
        let mut input = attached.input;
        let mut wait = docker.wait_container(&docker_name, None);
        let mut stdin_open = true;
        loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(b))) if b.first() == Some(&0) && stdin_open => {
                        if input.write_all(&b[1..]).await.is_err() { stdin_open = false; }
                    }
                    Some(Ok(Message::Binary(b))) if b[..] == [255, 0] => {
                        let _ = input.shutdown().await;
                        stdin_open = false;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => { let _ = input.shutdown().await; return; }
                },
                exit = wait.next() => {
                    let code = match exit {
                        Some(Ok(r)) => r.status_code,
                        _ => -1,
                    };
                    let _ = ws.send(status_frame(code)).await;
                    let _ = ws.close(None).await;
                    return;
                }
            }
        }
    })
}

pub async fn exec(
    State(s): State<Arc<StandIn>>,
    Path((_ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    req: Request<Body>,
) -> Response {
    let pairs = match query(q, FLAGS) {
        Ok(p) => p,
        Err(why) => return bad_request(why),
    };
    let command: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return bad_request("exec: no command");
    }
    let container = param(&pairs, "container").unwrap_or("");
    let Some(docker_name) = pods::docker_name(&s, &name, container) else {
        return bad_request(format!(
            "container {container:?} in pod {name:?} is not running"
        ));
    };
    let docker = s.docker.clone();
    upgrade(req, move |mut ws: Ws| async move {
        let config = ExecConfig {
            cmd: Some(command),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let Ok(created) = docker.create_exec(&docker_name, config).await else {
            let _ = ws.send(status_frame(126)).await;
            return;
        };
        if let Ok(bollard::exec::StartExecResults::Attached { mut output, .. }) =
            docker.start_exec(&created.id, None).await
        {
            while let Some(Ok(chunk)) = output.next().await {
                let channel = match chunk {
                    bollard::container::LogOutput::StdErr { .. } => 2,
                    _ => 1,
                };
                if ws.send(frame(channel, &chunk.into_bytes())).await.is_err() {
                    return;
                }
            }
        }
        let code = docker
            .inspect_exec(&created.id)
            .await
            .ok()
            .and_then(|i| i.exit_code)
            .unwrap_or(-1);
        let _ = ws.send(status_frame(code)).await;
        let _ = ws.close(None).await;
    })
}
