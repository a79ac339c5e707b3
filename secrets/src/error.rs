//! The crate's one error type: every variant names the file, repository or key it is about.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with keys, encrypted files, secure values and settings.
///
/// Messages never contain plaintext: at most a short prefix of a ciphertext, a variable name
/// or a path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A repository slug that is not `owner/name`.
    #[error("invalid repository `{slug}`: {reason}")]
    InvalidRepo {
        /// The slug as given.
        slug: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Neither `SLIPWAY_DATA_DIR`, `XDG_DATA_HOME` nor `HOME` is set.
    #[error(
        "no data directory: set SLIPWAY_DATA_DIR or pass --data-dir (HOME and XDG_DATA_HOME are unset)"
    )]
    NoDataDir,

    /// An I/O error on a file of ours or one the user named.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("reading", "writing", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A secret file the pipeline names does not exist.
    #[error(
        "secret file {path} does not exist (encrypt it with `slipway secrets encrypt-file` and commit the result)"
    )]
    MissingSecretFile {
        /// The missing file.
        path: PathBuf,
    },

    /// A repository key file that cannot be read as age identities.
    #[error("key file {path} is damaged: {reason}")]
    CorruptKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong, without any key material.
        reason: String,
    },

    /// A key file others can read; we refuse to use it rather than keep using a leaked key silently.
    #[error(
        "key file {path} has mode {mode:04o}; it must be 0600 (run `chmod 600 {path}` if you trust it)"
    )]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// None of a repository's keys decrypts the file.
    #[error(
        "{path}: none of the keys of {repo} decrypts it; it was encrypted to another recipient (re-encrypt it with `slipway secrets encrypt-file --repo {repo}`)"
    )]
    WrongKey {
        /// The encrypted file.
        path: PathBuf,
        /// The repository whose keys were tried.
        repo: String,
    },

    /// An encrypted file that is not a complete age file.
    #[error("{path} is not a valid age file (truncated or corrupt): {reason}")]
    CorruptFile {
        /// The encrypted file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },

    /// A recipient string that is not an X25519 age recipient (`age1…`).
    #[error(
        "unknown recipient `{recipient}`: {reason} (expected an X25519 recipient `age1…`, as `slipway secrets key` prints)"
    )]
    InvalidRecipient {
        /// The recipient as given.
        recipient: String,
        /// What the parser said.
        reason: String,
    },

    /// A `secure:` value that cannot be turned back into a variable.
    #[error("secure value `{preview}` for {repo}: {reason}")]
    SecureValue {
        /// The first characters of the ciphertext, so the user can find it in the file.
        preview: String,
        /// The repository whose keys were tried.
        repo: String,
        /// What is wrong.
        reason: SecureValueProblem,
    },

    /// A variable name that a shell could not use.
    #[error(
        "invalid variable name `{name}`: use letters, digits and `_`, not starting with a digit"
    )]
    InvalidVarName {
        /// The name as given.
        name: String,
    },

    /// The settings store of a repository cannot be read back.
    #[error("settings store {path} is damaged: {reason}")]
    CorruptSettings {
        /// The store file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Encryption failed (the system random source or the cipher refused).
    #[error("encrypting {what}: {reason}")]
    Encrypt {
        /// What was being encrypted.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

/// Why a `secure:` value could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecureValueProblem {
    /// Not base64 at all.
    #[error(
        "it is not base64 (was it pasted whole? values made with `travis encrypt` must be re-made with `slipway secrets encrypt`)"
    )]
    NotBase64,
    /// Base64, but not an age ciphertext, or a damaged one.
    #[error(
        "it does not decode as an encrypted value ({0}); re-make it with `slipway secrets encrypt`"
    )]
    Corrupt(String),
    /// Encrypted to a key this repository does not have.
    #[error(
        "none of the repository's keys decrypts it (made for another repository? re-make it with `slipway secrets encrypt --repo …`)"
    )]
    WrongKey,
    /// The plaintext is not `NAME=VALUE` with a valid name.
    #[error(
        "the decrypted text is not NAME=VALUE; make it with `slipway secrets encrypt NAME=VALUE`"
    )]
    NotNameValue,
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
