//! The one error type of quiver-index.

use std::path::PathBuf;

/// Shorthand for results whose error is [`IndexError`].
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// What can go wrong while building, persisting or querying an index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The caller passed something the index cannot accept (wrong dimension, bad id, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A file the index wrote does not read back as written.
    #[error("corrupt index file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The operating system refused a read or a write.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The HNSW library failed to dump or load a graph.
    #[error("HNSW graph error: {0}")]
    Graph(String),
    /// The full-text engine reported an error.
    #[error("text index error: {0}")]
    Text(#[from] tantivy::TantivyError),
    /// Shared validation failed (for example a malformed filter).
    #[error(transparent)]
    Core(#[from] quiver_core::CoreError),
}

impl IndexError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }
}
