//! A blocking client for Quiver's HTTP API, shared by the `quiver` CLI and the ingest
//! benchmark. It owns how a request is authenticated and how the server's error body
//! (`{"error": {"code", "message"}}`) becomes an error a person can read.

use std::time::Duration;

use serde_json::Value;

/// A request that failed: at the server (with its status, code and message), on the
/// way there, or with an answer that was not JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{method} {path}: {status} {code}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The request did not get an answer (connection refused, timeout, ...).
    #[error("{method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    /// The server answered success, but the body is not JSON.
    #[error("{method} {path}: the answer is not JSON: {source}")]
    NotJson {
        method: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// Turns a failed `method path` request into an error, reading the server's code
    /// and message from the body when it answered.
    pub fn from_ureq(method: &str, path: &str, e: ureq::Error) -> Self {
        match e {
            ureq::Error::Status(status, resp) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                let text = |key: &str, default: &str| {
                    body["error"][key].as_str().unwrap_or(default).to_string()
                };
                ClientError::Status {
                    method: method.into(),
                    path: path.into(),
                    status,
                    code: text("code", "unknown"),
                    message: text("message", ""),
                }
            }
            other => ClientError::Transport {
                method: method.into(),
                path: path.into(),
                message: other.to_string(),
            },
        }
    }
}

/// A blocking HTTP client for one server, with an optional bearer API key.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    stream_agent: ureq::Agent,
    base: String,
    key: Option<String>,
}

impl Client {
    /// A client for the server at `url` (a trailing `/` is ignored).
    pub fn new(url: &str, api_key: Option<String>) -> Self {
        let connect = Duration::from_secs(10);
        // JSON calls can wait on a large embedding batch, hence the long overall limit;
        // streamed transfers carry whole archives, so they have none.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(connect)
            .timeout(Duration::from_secs(600))
            .build();
        let stream_agent = ureq::AgentBuilder::new().timeout_connect(connect).build();
        Client {
            agent,
            stream_agent,
            base: url.trim_end_matches('/').to_string(),
            key: api_key,
        }
    }

    /// The server's base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path` with an optional JSON body; returns the JSON answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let req = self.authed(self.agent.request(method, &self.url(path)));
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        resp.map_err(|e| ClientError::from_ureq(method, path, e))?
            .into_json()
            .map_err(|source| ClientError::NotJson {
                method: method.into(),
                path: path.into(),
                source,
            })
    }

    /// An authenticated request with no overall timeout, for streamed bodies such as
    /// snapshot archives; map its failure with [`ClientError::from_ureq`].
    pub fn stream(&self, method: &str, path: &str) -> ureq::Request {
        self.authed(self.stream_agent.request(method, &self.url(path)))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed(&self, req: ureq::Request) -> ureq::Request {
        match &self.key {
            Some(k) => req.set("Authorization", &format!("Bearer {k}")),
            None => req,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_error(status: u16, body: &str) -> ClientError {
        let resp = ureq::Response::new(status, "Error", body).expect("response");
        ClientError::from_ureq(
            "POST",
            "/collections/c/query",
            ureq::Error::Status(status, resp),
        )
    }

    #[test]
    fn a_server_error_reads_its_code_and_message() {
        let e = status_error(
            400,
            r#"{"error":{"code":"bad_request","message":"k must be at least 1"}}"#,
        );
        assert_eq!(
            e.to_string(),
            "POST /collections/c/query: 400 bad_request: k must be at least 1"
        );
    }

    #[test]
    fn an_error_without_a_json_body_still_names_the_status() {
        let e = status_error(502, "upstream gone");
        assert!(
            matches!(e, ClientError::Status { status: 502, .. }),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "POST /collections/c/query: 502 unknown: ");
    }

    #[test]
    fn a_refused_connection_is_a_transport_error() {
        // A port that was free a moment ago: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let client = Client::new(&format!("{url}/"), None);
        assert_eq!(client.base(), url);
        let e = client.call("GET", "/health", None).unwrap_err();
        assert!(matches!(e, ClientError::Transport { .. }), "{e:?}");
        assert!(e.to_string().starts_with("GET /health: "), "{e}");
    }
}
