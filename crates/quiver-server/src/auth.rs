//! Bearer-key authentication, checked before any other work on a request (the layer
//! sits outside the limits and the handlers, so an unauthenticated body is never read).
//!
//! | key configured | request                         | outcome |
//! |----------------|---------------------------------|---------|
//! | none           | anything                        | allowed (loopback only, see `serve`) |
//! | some           | no / unknown key                | 401 |
//! | some           | read-only key, mutating route   | 403 |
//! | some           | read-only key, reading route    | allowed |
//! | some           | read-write key                  | allowed |
//!
//! `/health` and `/ready` stay open so probes need no secret, and so do the console's
//! static files (`/console`). Mutating routes are every
//! `PUT`, `POST` and `DELETE` except `POST .../query`, which only reads.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;

/// The configured keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    read_write: Vec<Vec<u8>>,
    read_only: Vec<Vec<u8>>,
}

/// What a presented key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

impl KeySet {
    pub fn new(read_write: &[String], read_only: &[String]) -> Self {
        let bytes = |v: &[String]| v.iter().map(|k| k.as_bytes().to_vec()).collect();
        KeySet {
            read_write: bytes(read_write),
            read_only: bytes(read_only),
        }
    }

    /// True when at least one key is configured, so requests must present one.
    pub fn enabled(&self) -> bool {
        !self.read_write.is_empty() || !self.read_only.is_empty()
    }

    /// The access `key` grants, if any. Compares every configured key in constant time
    /// per key so the answer's timing does not reveal how much of a key matched.
    pub fn check(&self, key: &[u8]) -> Option<Access> {
        let rw = self.read_write.iter().fold(false, |a, k| a | ct_eq(k, key));
        let ro = self.read_only.iter().fold(false, |a, k| a | ct_eq(k, key));
        if rw {
            Some(Access::ReadWrite)
        } else if ro {
            Some(Access::ReadOnly)
        } else {
            None
        }
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request changes data.
/// POST routes that only compute (run a model) and change nothing.
const MODEL_ROUTES: [&str; 3] = ["/embed", "/rerank", "/v1/embeddings"];

pub fn is_mutating(method: &Method, path: &str) -> bool {
    match *method {
        Method::PUT | Method::DELETE | Method::PATCH => true,
        Method::POST => !(path.ends_with("/query") || MODEL_ROUTES.contains(&path)),
        _ => false,
    }
}

fn is_public(path: &str) -> bool {
    // The console's files hold no data: the page asks for a key before it calls the API.
    path == "/health" || path == "/ready" || path == "/console" || path.starts_with("/console/")
}

/// Middleware: the outermost check on every request.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if !state.keys.enabled() || is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let Some(key) = presented else {
        return unauthorized("missing API key: send Authorization: Bearer <key>");
    };
    match state.keys.check(key) {
        None => unauthorized("unknown API key"),
        Some(Access::ReadOnly) if is_mutating(req.method(), req.uri().path()) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this API key is read-only",
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_grant_the_right_access() {
        let keys = KeySet::new(&["rw".into()], &["ro".into()]);
        assert!(keys.enabled());
        assert_eq!(keys.check(b"rw"), Some(Access::ReadWrite));
        assert_eq!(keys.check(b"ro"), Some(Access::ReadOnly));
        assert_eq!(keys.check(b"r"), None);
        assert_eq!(keys.check(b"rwx"), None);
        assert_eq!(keys.check(b""), None);
        assert!(!KeySet::default().enabled());
    }

    #[test]
    fn query_is_the_only_reading_post() {
        assert!(is_mutating(&Method::POST, "/collections/a/documents"));
        assert!(!is_mutating(&Method::POST, "/collections/a/query"));
        assert!(!is_mutating(&Method::POST, "/embed"));
        assert!(!is_mutating(&Method::POST, "/v1/embeddings"));
        assert!(is_mutating(&Method::PUT, "/collections/a"));
        assert!(is_mutating(&Method::DELETE, "/collections/a/documents/x"));
        assert!(!is_mutating(&Method::GET, "/collections"));
    }
}
