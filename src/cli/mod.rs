//! The command-line client: talks to a running server over HTTP with a small blocking
//! client. Every command prints the server's JSON answer; a failed request prints the
//! server's error code and message and exits non-zero.

pub mod bench;
pub mod collections;
pub mod import;
pub mod models;
pub mod query;
pub mod snapshot;

use anyhow::Result;
use serde_json::Value;

/// Where the server is and how to authenticate; shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Server URL.
    #[arg(
        long,
        global = true,
        env = "QUIVER_URL",
        default_value = "http://127.0.0.1:6433"
    )]
    pub url: String,
    /// API key sent as a bearer token.
    #[arg(long, global = true, env = "QUIVER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

use quiver_client::Client;

impl Conn {
    /// A client for this server, authenticated with the API key when one is set.
    pub fn client(&self) -> Client {
        Client::new(&self.url, self.api_key.clone())
    }
}

/// Prints a JSON value, indented.
pub fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
