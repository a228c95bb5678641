//! The command-line client: talks to a running server over HTTP with a small blocking
//! client. Every command prints the server's JSON answer; a failed request prints the
//! server's error code and message and exits non-zero.

pub mod bench;
pub mod collections;
pub mod import;
pub mod models;
pub mod query;
pub mod snapshot;

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
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

/// A blocking HTTP client for one server.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    key: Option<String>,
}

impl Client {
    pub fn new(conn: &Conn) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build();
        Client {
            agent,
            base: conn.url.trim_end_matches('/').to_string(),
            key: conn.api_key.clone(),
        }
    }

    /// Sends `method path` with an optional JSON body; returns the JSON answer.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.request(method, &url);
        if let Some(key) = &self.key {
            req = req.set("Authorization", &format!("Bearer {key}"));
        }
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match resp {
            Ok(r) => r
                .into_json()
                .with_context(|| format!("{method} {url}: the answer is not JSON")),
            Err(ureq::Error::Status(status, r)) => {
                let body: Value = r.into_json().unwrap_or(Value::Null);
                let code = body["error"]["code"].as_str().unwrap_or("unknown");
                let msg = body["error"]["message"].as_str().unwrap_or("");
                Err(anyhow!("{method} {path}: {status} {code}: {msg}"))
            }
            Err(e) => Err(anyhow!("{method} {url}: {e}")),
        }
    }
}

/// Prints a JSON value, indented.
pub fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
