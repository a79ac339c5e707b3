//! Where the store lives: the embedded SQLite database in the data directory (the default, no
//! setup), or a PostgreSQL database shared by several servers and workers.
//!
//! A PostgreSQL URL may hold a password, so it is kept in a [`Secret`] and shown only with the
//! password masked: in errors, logs and anything else printed.

use super::{PgStore, SqliteStore, Store, StoreError};
use slipway_secrets::Secret;
use std::path::Path;
use std::sync::Arc;

/// Where the store setting can come from, named in errors.
pub const STORE_SETTING: &str = "--store, SLIPWAY_STORE or `store` in the config";

/// The store setting as written (`store` in the config, `SLIPWAY_STORE`, `--store`): kept
/// secret until read by [`StoreSetting::url`], since it may hold a password and a config
/// parser's error would otherwise quote it.
#[derive(Clone, Default)]
pub struct StoreSetting(Option<Arc<Secret<String>>>);

impl StoreSetting {
    /// A setting from a string; empty means the default (SQLite).
    pub fn new(raw: String) -> StoreSetting {
        match raw.trim().is_empty() {
            true => StoreSetting(None),
            false => StoreSetting(Some(Arc::new(Secret::new(raw)))),
        }
    }

    /// The PostgreSQL URL it names, `None` for the embedded SQLite store.
    pub fn url(&self) -> Result<Option<PgUrl>, StoreError> {
        self.0
            .as_ref()
            .map(|raw| PgUrl::parse(raw.expose()))
            .transpose()
    }
}

impl std::fmt::Debug for StoreSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.url() {
            Ok(Some(url)) => write!(f, "{url}"),
            Ok(None) => f.write_str("sqlite"),
            Err(_) => f.write_str("(invalid)"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for StoreSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(StoreSetting::new(String::deserialize(d)?))
    }
}

/// A PostgreSQL connection URL (`postgres://user:password@host:port/database`).
#[derive(Clone)]
pub struct PgUrl {
    url: Arc<Secret<String>>,
    shown: String,
}

impl PgUrl {
    /// Reads a `postgres://` or `postgresql://` URL; the error names the setting and never holds
    /// the password.
    pub fn parse(raw: &str) -> Result<PgUrl, StoreError> {
        let bad = |why: &str| StoreError::Setting(format!("the store ({STORE_SETTING}): {why}"));
        let parsed = url::Url::parse(raw).map_err(|e| {
            bad(&format!(
                "not a URL ({e}); expected postgres://user:password@host:port/database"
            ))
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad(&format!(
                "unknown scheme {:?}; expected postgres://user:password@host:port/database \
                 (leave it unset for the embedded SQLite store)",
                parsed.scheme()
            )));
        }
        let mut shown = parsed;
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        let shown = shown.to_string();
        raw.parse::<tokio_postgres::Config>()
            .map_err(|e| bad(&format!("{shown}: {}", e)))?;
        Ok(PgUrl {
            url: Arc::new(Secret::new(raw.to_string())),
            shown,
        })
    }

    /// The URL with its password (for connecting only).
    pub(crate) fn expose(&self) -> &str {
        self.url.expose()
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({})", self.shown)
    }
}

/// Opens the store: PostgreSQL at `url` (migrated to this version's schema), else the embedded
/// SQLite database in `data_dir`.
pub async fn open_store(
    url: Option<&PgUrl>,
    data_dir: &Path,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        Some(url) => Arc::new(PgStore::connect(url).await?),
        None => Arc::new(SqliteStore::open(&data_dir.join("slipway.db"))?),
    })
}
