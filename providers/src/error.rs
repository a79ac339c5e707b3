//! One error type for every provider, each variant rendering as a single line a job log can show.

use std::path::PathBuf;

/// Why a deploy could not be planned or did not succeed.
///
/// Every message is one line: the runner prints it as the deploy's last log line and the
/// build page shows it as the reason the job errored.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `provider:` value names nothing Slipway can run.
    #[error("deploy provider `{0}` is not supported by Slipway")]
    UnknownProvider(String),
    /// An option is unknown, missing, or has the wrong shape.
    #[error("{provider}: option `{option}`: {problem}")]
    Option {
        /// The provider whose options these are.
        provider: &'static str,
        /// The option as written in the pipeline file.
        option: String,
        /// What is wrong with it, and what would be right.
        problem: String,
    },
    /// A `secure:` value could not be decrypted (or no secrets are available to this job).
    #[error("{provider}: option `{option}`: cannot decrypt the secure value: {reason}")]
    Secret {
        /// The provider whose options these are.
        provider: &'static str,
        /// The option holding the value.
        option: String,
        /// Why decryption failed.
        reason: String,
    },
    /// A file the deploy reads or writes could not be used.
    #[error("{provider}: {}: {message}", path.display())]
    File {
        /// The provider that needed the file.
        provider: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A path a deploy would read ends outside the job's build dir (absolute, `..`, or through a
    /// symlink); nothing is sent.
    #[error("{provider}: option `{option}`: {path} is outside the build dir (it resolves to {}); a deploy reads only files of the job's build dir", resolved.display())]
    OutsideBuildDir {
        /// The provider reading the path.
        provider: &'static str,
        /// The option (or file) naming the path.
        option: String,
        /// The path as written.
        path: String,
        /// Where it leads.
        resolved: PathBuf,
    },
    /// Under `slipway serve`, the deploy found no credentials of the repository's own.
    #[error("{provider}: no {kind} credentials are configured for the repository {repo}: {fix}")]
    NoCredentials {
        /// The provider that needed them.
        provider: &'static str,
        /// Which credentials (`AWS`, `Kubernetes`).
        kind: &'static str,
        /// The repository built.
        repo: String,
        /// Where they can be given.
        fix: &'static str,
    },
    /// A deploy to a service whose address neither the deploy's options nor the machine's
    /// configuration give: nothing is sent, and the message names both places to set it.
    #[error("{provider}: no {service} is configured: set {}`{key}` under [endpoints] in the server's configuration (SLIPWAY_{}_ENDPOINT for slipway run and plan)", .option.map(|o| format!("the deploy option `{o}`, or ")).unwrap_or_default(), .key.to_ascii_uppercase())]
    NoEndpoint {
        /// The provider that needed it.
        provider: &'static str,
        /// What is missing (`upload server`, `registry`).
        service: &'static str,
        /// The deploy option that names it, as dpl spells it, if dpl has one.
        option: Option<&'static str>,
        /// The key of `[endpoints]` (and of its `SLIPWAY_<KEY>_ENDPOINT` variable).
        key: &'static str,
    },
    /// A remote API call failed.
    #[error("{provider}: {action} failed: {message}")]
    Api {
        /// The provider making the call.
        provider: &'static str,
        /// The API action (`CreateApplicationVersion`, `PATCH deployments/web`, …).
        action: String,
        /// The service's error code and message, or the transport problem.
        message: String,
    },
    /// The deploy was accepted but the service reports that it failed.
    #[error("{provider}: {message}")]
    Failed {
        /// The provider that waited.
        provider: &'static str,
        /// What the service said went wrong.
        message: String,
    },
    /// Waiting for the deploy to settle took longer than allowed.
    #[error("{provider}: {what} did not finish within {seconds} s{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Timeout {
        /// The provider that waited.
        provider: &'static str,
        /// What was awaited.
        what: String,
        /// The limit.
        seconds: u64,
        /// The last state seen, when it explains the wait.
        detail: Option<String>,
    },
    /// The provider runs as a shell command inside the job, not through this crate.
    #[error("{0}: runs in the job's shell, not as an API deploy")]
    RunsInJob(&'static str),
}

impl Error {
    /// A call to `provider`'s service that failed; `action` names the call as the log reads it.
    pub(crate) fn api(
        provider: &'static str,
        action: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Api {
            provider,
            action: action.into(),
            message: message.into(),
        }
    }

    /// The message flattened to one line, whatever a service put in its error text.
    pub fn one_line(&self) -> String {
        one_line(&self.to_string())
    }
}

/// Collapses whitespace runs (newlines included) so a message fits one log line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A service's error answer as one line of text: an HTML error page is reduced to its words
/// (its `<head>` dropped, tags removed), anything else kept as it is; at most 300 characters.
pub(crate) fn readable(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    let text = if lower.contains("<html") {
        let body = match (lower.find("<head"), lower.find("</head>")) {
            (Some(a), Some(b)) if a < b => format!("{}{}", &text[..a], &text[b + 7..]),
            _ => text.to_string(),
        };
        let mut words = String::new();
        let mut in_tag = false;
        for c in body.chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    words.push(' ');
                }
                c if !in_tag => words.push(c),
                _ => {}
            }
        }
        words
            .replace("&#039;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    } else {
        text.to_string()
    };
    one_line(&text).chars().take(300).collect()
}

/// A shorthand for option errors.
pub(crate) fn option_error(
    provider: &'static str,
    option: impl Into<String>,
    problem: impl Into<String>,
) -> Error {
    Error::Option {
        provider,
        option: option.into(),
        problem: problem.into(),
    }
}
