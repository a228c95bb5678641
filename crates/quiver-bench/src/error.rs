//! The crate's one error type.

use std::path::{Path, PathBuf};

/// Everything a benchmark run can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A dataset or vector file is malformed.
    #[error("{path}:{line}: {reason}")]
    Data {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// The caller asked for something that cannot run.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The engine under test failed.
    #[error("engine: {0}")]
    Engine(#[from] quiver_engine::EngineError),
    /// A model failed to load or run.
    #[error("model: {0}")]
    Model(#[from] quiver_embed::EmbedError),
    /// An index failed.
    #[error("index: {0}")]
    Index(#[from] quiver_index::IndexError),
    /// The peer script failed or answered something unreadable.
    #[error("peer: {0}")]
    Peer(String),
    /// The server under test could not start or stopped.
    #[error("server: {0}")]
    Server(String),
    /// A request to the server under test failed or was refused.
    #[error("server: {0}")]
    Client(#[from] quiver_client::ClientError),
    /// A report could not be serialized.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl BenchError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Malformed content at `path:line`.
    pub fn data(path: &Path, line: usize, reason: impl Into<String>) -> Self {
        BenchError::Data {
            path: path.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }
}

/// Result with [`BenchError`].
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
