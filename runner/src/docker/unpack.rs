//! Getting a job's files (the script, decrypted files, the workspace) into its container as it
//! starts.
//!
//! The engine's archive upload costs a mount of the container's filesystem and a helper process
//! per upload: on a short job it was most of what Slipway added to `docker run` (about 115 ms of
//! 200). So the job container starts with [`requests::UNPACK_CMD`] in front of its command, and
//! the files go in as one tar over the standard input the job has anyway, unpacked by the
//! image's own `tar` as the container's root, under every limit the job runs with. An image that
//! cannot (no `tar` or `head`, or a user who may not write `/`) says so and gets the upload.
//! Either way the job's own command starts only once every file is in place. A job that reads no
//! replies on its standard input gets the archive from before its start on, without waiting for
//! the prelude's first line ([`requests::UNPACK_AHEAD_CMD`]).

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::UploadToContainerOptionsBuilder;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{TAR_END, engine_err, files_head, requests};
use crate::executor::{ExecError, InputWriter, JobSpec, OutputStream};

/// How long the container may take to say which way it takes its files.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most output read while looking for the handshake line.
const HANDSHAKE_LIMIT: usize = 64 * 1024;

/// How the files go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Over standard input, unpacked in the container.
    Stdin,
    /// Through the engine's archive upload.
    Api,
}

/// The job's files as one tar: the files' entries (without the end-of-archive blocks), then the
/// workspace archive, which ends the tar; or the end blocks when there is no workspace.
pub(super) struct Archive {
    head: Vec<u8>,
    workspace: Option<(std::path::PathBuf, u64)>,
}

impl Archive {
    async fn of(spec: &JobSpec) -> Result<Archive, ExecError> {
        let mut head = files_head(&spec.files)?;
        let workspace = match &spec.workspace_tar {
            None => {
                head.extend_from_slice(&[0; TAR_END]);
                None
            }
            Some(path) => {
                let len = tokio::fs::metadata(path)
                    .await
                    .map_err(|source| ExecError::Io {
                        action: format!("reading workspace archive {}", path.display()),
                        source,
                    })?
                    .len();
                Some((path.clone(), len))
            }
        };
        Ok(Archive { head, workspace })
    }

    fn len(&self) -> u64 {
        self.head.len() as u64 + self.workspace.as_ref().map_or(0, |(_, n)| *n)
    }

    async fn open_workspace(&self) -> Result<Option<tokio::fs::File>, ExecError> {
        let Some((path, _)) = &self.workspace else {
            return Ok(None);
        };
        tokio::fs::File::open(path)
            .await
            .map(Some)
            .map_err(|source| ExecError::Io {
                action: format!("opening workspace archive {}", path.display()),
                source,
            })
    }
}

/// The job's files on their way into its container.
pub(super) enum Delivery {
    /// The job's standard input also carries the runner's replies: the archive waits for the
    /// prelude's cue ([`deliver_on_cue`]).
    OnCue {
        archive: Archive,
        input: InputWriter,
    },
    /// The job reads nothing else on standard input: the archive is being written since before
    /// the start (`requests::UNPACK_AHEAD_CMD`), as `docker run -i` streams its input from the
    /// attach on. The engine holds what arrives until the container reads it, so the files are
    /// there when the prelude's `tar` asks, without a round trip after the start.
    Ahead(tokio::task::JoinHandle<(std::io::Result<()>, InputWriter, Archive)>),
}

impl Delivery {
    /// Starts delivering `spec`'s files over `input`, the attached container's standard input.
    pub(super) async fn begin(spec: &JobSpec, input: InputWriter) -> Result<Delivery, ExecError> {
        let archive = Archive::of(spec).await?;
        if spec.open_stdin {
            return Ok(Delivery::OnCue { archive, input });
        }
        Ok(Delivery::Ahead(tokio::spawn(async move {
            let mut input = input;
            let sent = send(&mut input, &archive, false).await;
            (sent, input, archive)
        })))
    }

    /// Stops writing: the container did not start.
    pub(super) fn abort(self) {
        if let Delivery::Ahead(writing) = self {
            writing.abort();
        }
    }

    /// Puts the files into the started container `name` and lets its command run; returns the
    /// output (with anything the container wrote before the handshake) and its standard input.
    pub(super) async fn finish(
        self,
        docker: &Docker,
        name: &str,
        output: OutputStream,
    ) -> Result<(OutputStream, InputWriter), ExecError> {
        let writing = match self {
            Delivery::OnCue { archive, input } => {
                return deliver_on_cue(docker, name, archive, output, input).await;
            }
            Delivery::Ahead(writing) => writing,
        };
        // The end of the archive is the end of standard input; the handshake line only says
        // whether it was unpacked.
        let (way, before, output) = match shake_hands(name, output).await {
            Ok(shook) => shook,
            Err(e) => {
                writing.abort();
                return Err(e);
            }
        };
        let (sent, input, archive) = writing.await.map_err(|e| ExecError::Engine {
            action: format!("sending the job's files to {name}"),
            reason: e.to_string(),
        })?;
        sent.map_err(|source| ExecError::Io {
            action: format!("sending the job's files to {name}"),
            source,
        })?;
        if way == Way::Api {
            // The prelude read the archive away and waits for standard input to close.
            upload(docker, name, &archive).await?;
        }
        Ok((with_before(output, before), input))
    }
}

/// The archive over standard input, after its size on a line when more follows it (`sized`:
/// the prelude then reads exactly that many bytes).
async fn send(input: &mut InputWriter, archive: &Archive, sized: bool) -> std::io::Result<()> {
    if sized {
        input
            .write_all(format!("{}\n", archive.len()).as_bytes())
            .await?;
    }
    input.write_all(&archive.head).await?;
    if let Some(mut file) = archive.open_workspace().await.map_err(|e| match e {
        ExecError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    })? {
        tokio::io::copy(&mut file, input).await?;
    }
    input.flush().await
}

/// The handshake line, within [`HANDSHAKE_TIMEOUT`].
async fn shake_hands(
    name: &str,
    output: OutputStream,
) -> Result<(Way, Vec<u8>, OutputStream), ExecError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(output))
        .await
        .map_err(|_| ExecError::Engine {
            action: format!("starting the job in {name}"),
            reason: format!(
                "the container did not start Slipway's unpacking within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
        })?
}

/// What the container wrote before its handshake line, then the rest of its output.
fn with_before(output: OutputStream, before: Vec<u8>) -> OutputStream {
    if before.is_empty() {
        output
    } else {
        Box::pin(futures::stream::iter([Ok(Bytes::from(before))]).chain(output))
    }
}

/// [`Delivery::finish`] for a job whose standard input also carries the runner's replies: the archive goes
/// only once the prelude has said which way it takes it (`requests::UNPACK_CMD`), so that nothing
/// of it is left for the job to read.
async fn deliver_on_cue(
    docker: &Docker,
    name: &str,
    archive: Archive,
    output: OutputStream,
    mut input: InputWriter,
) -> Result<(OutputStream, InputWriter), ExecError> {
    let (way, before, output) = shake_hands(name, output).await?;
    let sending = |e: std::io::Error| ExecError::Io {
        action: format!("sending the job's files to {name}"),
        source: e,
    };
    match way {
        Way::Stdin => send(&mut input, &archive, true).await.map_err(sending)?,
        Way::Api => {
            upload(docker, name, &archive).await?;
            input.write_all(b"\n").await.map_err(sending)?;
            input.flush().await.map_err(sending)?;
        }
    }
    Ok((with_before(output, before), input))
}

/// Reads the container's output up to its handshake line; returns the way, what came before
/// and after that line (the job's output, passed on), and the rest of the stream.
async fn handshake(mut output: OutputStream) -> Result<(Way, Vec<u8>, OutputStream), ExecError> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if let Some((way, at, end)) = find_handshake(&buf) {
            let mut rest = buf[..at].to_vec();
            rest.extend_from_slice(&buf[end..]);
            return Ok((way, rest, output));
        }
        if buf.len() > HANDSHAKE_LIMIT {
            break;
        }
        match output.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => break,
        }
    }
    let shown = String::from_utf8_lossy(&buf[..buf.len().min(2000)]).into_owned();
    Err(ExecError::Engine {
        action: "starting the job".into(),
        reason: format!(
            "the job container did not run Slipway's unpacking (does the image have /bin/sh?); it wrote: {:?}",
            shown.trim()
        ),
    })
}

/// The handshake line in `buf`: the way, where the line starts and where it ends (after `\n`).
fn find_handshake(buf: &[u8]) -> Option<(Way, usize, usize)> {
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
        let line = &buf[start..start + nl];
        let way = match line {
            l if l == requests::UNPACK_STDIN.as_bytes() => Some(Way::Stdin),
            l if l == requests::UNPACK_API.as_bytes() => Some(Way::Api),
            _ => None,
        };
        if let Some(way) = way {
            return Some((way, start, start + nl + 1));
        }
        start += nl + 1;
    }
    None
}

/// The engine's archive upload, for images that cannot unpack the files themselves.
async fn upload(docker: &Docker, name: &str, archive: &Archive) -> Result<(), ExecError> {
    let opts = UploadToContainerOptionsBuilder::default().path("/").build();
    let head = futures::stream::iter([Ok(Bytes::from(archive.head.clone()))]);
    let body = match archive.open_workspace().await? {
        Some(file) => {
            let rest = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
            bollard::body_try_stream(head.chain(rest))
        }
        None => bollard::body_full(archive.head.clone().into()),
    };
    docker
        .upload_to_container(name, Some(opts), body)
        .await
        .map_err(engine_err(
            "copying the job script and the workspace into the container",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_line_is_found_among_other_output() {
        assert_eq!(
            find_handshake(b"slipway-unpack:stdin\nrest"),
            Some((Way::Stdin, 0, 21))
        );
        assert_eq!(
            find_handshake(b"warning\nslipway-unpack:api\n"),
            Some((Way::Api, 8, 27))
        );
        assert_eq!(find_handshake(b"slipway-unpack:stdin"), None);
        assert_eq!(find_handshake(b"xslipway-unpack:stdin\n"), None);
    }
}
