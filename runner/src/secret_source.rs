//! The one seam through which a repository's secrets are decrypted: the runner reads `secure:`
//! variables, settings variables and encrypted files through it, and deploy providers their
//! `secure:` options. Plaintext comes back only inside [`Secret`]. Also the variables one run is
//! given besides (`slipway run --env` and `--secret`).

/// A variable given for one run rather than stored with the repository (`slipway run --env`,
/// `--secret` and their files). Run variables are exported after the settings variables and
/// before the file's `env:`, as settings variables are, and their values are taken literally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunVar {
    /// A value that may be shown (`--env`); given to every job, forks' included.
    Plain {
        /// Variable name.
        name: String,
        /// The value, exported as is.
        value: String,
    },
    /// A value masked in the log (`--secret`); withheld from pull requests from forks.
    Secret {
        /// Variable name.
        name: String,
        value: Secret<String>,
    },
}

impl RunVar {
    /// The variable's name.
    pub fn name(&self) -> &str {
        match self {
            RunVar::Plain { name, .. } | RunVar::Secret { name, .. } => name,
        }
    }
}

use slipway_secrets::{Error, Keyring, RepoSlug, Secret, SecretStore};

/// Decrypts a repository's `secure:` values, settings variables and `.age` files, for trusted
/// jobs only: the runner hands it on to nothing a fork's build runs.
pub trait SecretSource: Send + Sync {
    /// The `NAME=value` a `secure:` value holds, split.
    fn decrypt_env(&self, repo: &str, ciphertext: &str) -> Result<(String, Secret<String>), Error>;

    /// The plaintext of an encrypted file's contents.
    fn decrypt_file(&self, repo: &str, contents: &[u8]) -> Result<Secret<Vec<u8>>, Error>;

    /// The repository's settings variables (exported before the file's `env:`).
    fn settings(&self, _repo: &str) -> Result<Vec<(String, Secret<String>)>, Error> {
        Ok(Vec::new())
    }
}

/// [`SecretSource`] over the per-repository key store of `slipway-secrets`.
#[derive(Debug)]
pub struct StoreSecrets(pub SecretStore);

impl StoreSecrets {
    fn keyring(&self, repo: &str) -> Result<Keyring, Error> {
        self.0.keyring(&RepoSlug::parse(repo)?)
    }
}

impl SecretSource for StoreSecrets {
    fn decrypt_env(&self, repo: &str, ciphertext: &str) -> Result<(String, Secret<String>), Error> {
        self.keyring(repo)?.decrypt_env(ciphertext)
    }

    fn decrypt_file(&self, repo: &str, contents: &[u8]) -> Result<Secret<Vec<u8>>, Error> {
        self.keyring(repo)?
            .decrypt_bytes(contents, std::path::Path::new("encrypted file"))
    }

    fn settings(&self, repo: &str) -> Result<Vec<(String, Secret<String>)>, Error> {
        self.0.vars(&RepoSlug::parse(repo)?)
    }
}
