//! The seam the runner decrypts a repository's secrets through, its store-backed source, and the
//! variables one run is given besides (`slipway run --env` and `--secret`).

use slipway_secrets::Secret;

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
        /// The value.
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

/// Decrypts a repository's `secure:` values and `.age` files for trusted jobs.
pub trait SecretSource: Send + Sync {
    /// The `NAME=value` a `secure:` env entry holds, split.
    fn decrypt_env(&self, repo: &str, ciphertext: &str) -> Result<(String, String), String>;
    /// The plaintext of an encrypted file's contents.
    fn decrypt_file(&self, repo: &str, contents: &[u8]) -> Result<Vec<u8>, String>;
    /// The repository's settings variables (exported before the file's `env:`).
    fn settings(&self, _repo: &str) -> Result<Vec<(String, String)>, String> {
        Ok(Vec::new())
    }
}

/// [`SecretSource`] over the per-repository key store of `slipway-secrets`.
#[derive(Debug)]
pub struct StoreSecrets(pub slipway_secrets::SecretStore);

impl StoreSecrets {
    fn keyring(&self, repo: &str) -> Result<slipway_secrets::Keyring, String> {
        let slug = slipway_secrets::RepoSlug::parse(repo).map_err(|e| e.to_string())?;
        self.0.keyring(&slug).map_err(|e| e.to_string())
    }
}

impl SecretSource for StoreSecrets {
    fn decrypt_env(&self, repo: &str, ciphertext: &str) -> Result<(String, String), String> {
        let (name, value) = self
            .keyring(repo)?
            .decrypt_env(ciphertext)
            .map_err(|e| e.to_string())?;
        Ok((name, value.into_exposed()))
    }

    fn decrypt_file(&self, repo: &str, contents: &[u8]) -> Result<Vec<u8>, String> {
        self.keyring(repo)?
            .decrypt_bytes(contents, std::path::Path::new("encrypted file"))
            .map(|s| s.into_exposed())
            .map_err(|e| e.to_string())
    }

    fn settings(&self, repo: &str) -> Result<Vec<(String, String)>, String> {
        let slug = slipway_secrets::RepoSlug::parse(repo).map_err(|e| e.to_string())?;
        Ok(self
            .0
            .vars(&slug)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(k, v)| (k, v.into_exposed()))
            .collect())
    }
}
