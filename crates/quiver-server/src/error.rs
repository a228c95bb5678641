//! Errors: [`ServerError`] for starting and stopping the server, [`ApiError`] for a
//! failed request.
//!
//! Every failed request, axum's own rejections included, answers with one JSON shape:
//!
//! ```json
//! {"error": {"code": "invalid_input", "message": "vector has 3 components, ..."}}
//! ```
//!
//! | status | codes | when |
//! |--------|-------|------|
//! | 400 | `invalid_input`, `invalid_json`, `invalid_name`, `invalid_snapshot` | malformed or out-of-range input, a damaged or unsafe snapshot archive |
//! | 401 | `unauthorized` | missing or unknown API key |
//! | 403 | `forbidden` | read-only key on a mutating route |
//! | 404 | `not_found` | unknown collection, document or route |
//! | 405 | `method_not_allowed` | known route, wrong method |
//! | 409 | `conflict` | the collection already exists |
//! | 413 | `too_large` | body, batch or text over its limit |
//! | 415 | `unsupported_media_type` | a body that is not `application/json` |
//! | 422 | `unprocessable` | well-formed but unsupported (models not loaded, ...) |
//! | 500 | `internal`, `io`, `corruption` | a fault on the server side |
//! | 503 | `read_only`, `overloaded`, `shutting_down`, `busy` | try later |
//!
//! Engine errors are mapped in one place, [`From<EngineError>`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use quiver_core::CoreError;
use quiver_embed::EmbedError;
use quiver_engine::EngineError;
use quiver_storage::StorageError;
use serde::Serialize;
use utoipa::ToSchema;

/// Shorthand for results whose error is [`ServerError`].
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// What can stop the server from starting or shutting down cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is unreadable or inconsistent.
    #[error("{0}")]
    Config(String),
    /// Listening beyond loopback without an API key.
    #[error("refusing to listen on {0} without an API key: set server.api_keys, or server.allow_insecure_public = true")]
    Insecure(String),
    /// Binding, accepting or a signal handler failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or synced.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A blocking task panicked.
    #[error("background task failed: {0}")]
    Task(String),
}

impl ServerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ServerError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A failed request: status, stable machine-readable code, human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The `error` object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, such as `invalid_input` or `not_found`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::NotFound(_) => ApiError::not_found(message),
            EngineError::AlreadyExists(_) | EngineError::NotEmpty(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            EngineError::ReadOnly(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "read_only", message)
            }
            EngineError::InvalidInput(_) => ApiError::bad_request(message),
            EngineError::InvalidSnapshot(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_snapshot", message)
            }
            EngineError::TooLarge(_) => ApiError::too_large(message),
            EngineError::Unsupported(_) => ApiError::unprocessable(message),
            EngineError::Busy(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message),
            EngineError::Core(CoreError::InvalidName { .. }) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", message)
            }
            EngineError::Core(CoreError::InvalidConfig(_)) => ApiError::unprocessable(message),
            EngineError::Core(_) => ApiError::bad_request(message),
            EngineError::Storage(s) => storage_error(s),
            EngineError::Model(m) => model_error(m),
            _ => ApiError::internal(message),
        }
    }
}

/// Model faults: a full queue is "try later", a missing model is a setting the operator
/// must fix (the message names where to place it), bad input is the caller's.
pub fn model_error(e: EmbedError) -> ApiError {
    let message = e.to_string();
    match e {
        EmbedError::Overloaded { .. } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
        }
        EmbedError::NotAvailable { .. } => ApiError::unprocessable(message),
        EmbedError::InvalidInput(_) => ApiError::bad_request(message),
        _ => ApiError::internal(message),
    }
}

/// Storage faults are the server's problem (500), except input the storage layer
/// refused; corruption gets its own code so operators can tell it from a full disk.
fn storage_error(e: StorageError) -> ApiError {
    let message = e.to_string();
    match e {
        StorageError::InvalidInput(_) => ApiError::bad_request(message),
        StorageError::Poisoned(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "read_only", message)
        }
        StorageError::Corruption { .. } | StorageError::UnsupportedVersion { .. } => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "corruption", message)
        }
        StorageError::Io { .. } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", message),
        _ => ApiError::internal(message),
    }
}
