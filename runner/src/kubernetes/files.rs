//! The job's files in and out of its pod, over the API server's attach and exec streams.
//!
//! In: the files without secrets (the script of a job that has none, the `sudo` shim) and the
//! workspace go as one tar over the job container's standard input ([`super::pod::UNPACK_CMD`]
//! reads the size, then the tar); nothing of them is stored in the cluster. The secret files are
//! in the pod's Secret ([`super::secret`]). Out: a path is read back as a tar made by the image's
//! own `tar` (deploys and artifacts read the build's files).

use std::pin::Pin;
use std::task::{Context, Poll};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{AttachParams, AttachedProcess};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, SimplexStream, WriteHalf};

use super::pod::JOB_CONTAINER;
use super::secret::plain_files;
use super::status::api_err;
use crate::docker::{TAR_END, files_head};
use crate::executor::{ExecError, InputWriter, JobSpec};

/// Streams the job's files into the running job container of pod `name`; returns its standard
/// input when the job keeps it open (deploy hook replies), else closes it.
pub(super) async fn deliver(
    pods: &Api<Pod>,
    name: &str,
    spec: &JobSpec,
) -> Result<Option<InputWriter>, ExecError> {
    let params = AttachParams {
        container: Some(JOB_CONTAINER.into()),
        stdin: true,
        stdout: false,
        stderr: false,
        tty: false,
        ..Default::default()
    };
    let mut attached = pods
        .attach(name, &params)
        .await
        .map_err(api_err(format!("attaching to pod {name}")))?;
    let mut stdin = attached.stdin().ok_or_else(|| ExecError::Engine {
        action: format!("attaching to pod {name}"),
        reason: "the attach stream has no standard input".into(),
    })?;
    let sending = |source: std::io::Error| ExecError::Io {
        action: format!("sending the job's files to pod {name}"),
        source,
    };
    let mut head = files_head(&plain_files(spec))?;
    let workspace = match &spec.workspace_tar {
        Some(path) => Some(
            tokio::fs::File::open(path)
                .await
                .map_err(|source| ExecError::Io {
                    action: format!("opening workspace archive {}", path.display()),
                    source,
                })?,
        ),
        None => {
            head.extend_from_slice(&[0; TAR_END]);
            None
        }
    };
    let workspace_len = match &workspace {
        Some(f) => f.metadata().await.map_err(sending)?.len(),
        None => 0,
    };
    let len = head.len() as u64 + workspace_len;
    stdin
        .write_all(format!("{len}\n").as_bytes())
        .await
        .map_err(sending)?;
    stdin.write_all(&head).await.map_err(sending)?;
    if let Some(mut file) = workspace {
        tokio::io::copy(&mut file, &mut stdin)
            .await
            .map_err(sending)?;
    }
    stdin.flush().await.map_err(sending)?;
    if spec.open_stdin {
        return Ok(Some(Box::pin(Input {
            writer: stdin,
            _attached: attached,
        })));
    }
    // The job reads no replies: its standard input ends here, once everything is sent.
    tokio::spawn(async move {
        let _ = stdin.shutdown().await;
        drop(stdin);
        let _ = attached.join().await;
    });
    Ok(None)
}

/// The job's standard input, keeping its attach stream alive as long as it is held.
struct Input {
    writer: WriteHalf<SimplexStream>,
    _attached: AttachedProcess,
}

impl AsyncWrite for Input {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

/// A tar of `path` from the job container of pod `name`, its entries named from the path's
/// last component (as the Docker engine's archive download names them).
pub(super) async fn download(
    pods: &Api<Pod>,
    name: &str,
    path: &str,
) -> Result<Vec<u8>, ExecError> {
    let trimmed = path.trim_end_matches('/');
    let (dir, base) = match trimmed.rsplit_once('/') {
        Some(("", base)) => ("/", base),
        Some((dir, base)) => (dir, base),
        None => (".", trimmed),
    };
    let params = AttachParams {
        container: Some(JOB_CONTAINER.into()),
        stdin: false,
        stdout: true,
        stderr: false,
        tty: false,
        ..Default::default()
    };
    let reading = format!("reading {path} from pod {name}");
    let mut process = pods
        .exec(name, ["tar", "-cf", "-", "-C", dir, base], &params)
        .await
        .map_err(api_err(reading.clone()))?;
    let mut tar = Vec::new();
    if let Some(mut out) = process.stdout() {
        out.read_to_end(&mut tar)
            .await
            .map_err(|source| ExecError::Io {
                action: reading.clone(),
                source,
            })?;
    }
    let status = match process.take_status() {
        Some(status) => status.await,
        None => None,
    };
    if let Some(s) = status.filter(|s| s.status.as_deref() == Some("Failure")) {
        return Err(ExecError::Engine {
            action: reading,
            reason: s.message.unwrap_or_else(|| "tar failed".into()),
        });
    }
    Ok(tar)
}
