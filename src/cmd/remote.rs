//! The arguments every command talking to a `slipway serve` shares: where it is, the token, and
//! the CA to trust when it speaks HTTPS with its own certificate.

use clap::Args as ClapArgs;
use slipway_webhook::client::Client;
use std::path::PathBuf;

/// A server and how to reach it.
#[derive(Debug, ClapArgs)]
pub struct Server {
    /// The server's URL (`https://` for a server with TLS).
    #[arg(long, env = "SLIPWAY_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// An API token from the server's `api_tokens`: needed to read private repositories' builds,
    /// and to cancel and restart.
    #[arg(long, env = "SLIPWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM file with the CA certificate that signed the server's certificate (instead of the
    /// usual web roots).
    #[arg(long, env = "SLIPWAY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

impl Server {
    /// A client of the server.
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::with_ca(
            &self.server,
            self.token.clone(),
            self.ca_cert.as_deref(),
        )?)
    }

    /// A client that must carry a token (cancel, restart).
    pub fn client_with_token(&self) -> anyhow::Result<Client> {
        if self.token.as_deref().is_none_or(str::is_empty) {
            anyhow::bail!("this needs an API token: pass --token or set SLIPWAY_TOKEN");
        }
        self.client()
    }
}
