//! Secrets for Slipway: per-repository age keys, encrypted files and `secure:` values,
//! Travis-compatible settings variables, and the streaming masker every log byte passes through.
//!
//! The runner's view:
//! ```no_run
//! # fn main() -> Result<(), slipway_secrets::Error> {
//! use slipway_secrets::{Masker, RepoSlug, SecretStore, default_data_dir};
//! let store = SecretStore::new(default_data_dir()?);
//! let repo = RepoSlug::parse("octo/app")?;
//! let keys = store.keyring(&repo)?;
//! let file = keys.decrypt_file("k8s/service-account.json.age".as_ref())?;
//! let (name, value) = keys.decrypt_env("YWdlLWVu…")?;
//! let vars = store.vars(&repo)?;
//! let (mut masker, warnings) = Masker::new(
//!     vars.into_iter().map(|(_, v)| v).chain([value]),
//! );
//! let mut out = Vec::new();
//! masker.push(b"log bytes", &mut out);
//! masker.finish(&mut out);
//! # Ok(()) }
//! ```
//! See `docs/secrets.md` for the user's view.

mod error;
mod fsutil;
pub mod masker;
mod repo;
mod secret;
mod store;
pub mod travis;

pub use age::x25519::Recipient;
pub use error::{Error, SecureValueProblem};
pub use masker::{Masker, Warning};
pub use repo::RepoSlug;
pub use secret::{MASK, Secret};
pub use store::{
    DATA_DIR_ENV, Keyring, SecretStore, default_data_dir, encrypt_file, encrypt_to,
    is_valid_var_name, parse_recipient,
};
pub use travis::TravisFile;
