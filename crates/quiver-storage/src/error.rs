//! The storage error type: I/O, corruption and a poisoned (read-only) state are
//! distinct variants so callers can tell "retry later" from "data is damaged".

use std::path::PathBuf;

/// Shorthand for results whose error is [`StorageError`].
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong below the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An operating-system I/O call failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk fail their checksum or structure; `offset` is a byte offset in `file`.
    #[error("corruption in {} at byte {offset}: {reason}", file.display())]
    Corruption {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A file was written by a format version this build cannot read.
    #[error("{} has format version {found}, this build reads version {supported}", file.display())]
    UnsupportedVersion {
        file: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A sync failed earlier; nothing more is written or acknowledged.
    #[error("storage is read-only after a failed sync: {0}")]
    Poisoned(String),
    /// A record or row could not be encoded or decoded.
    #[error("encoding error: {0}")]
    Codec(String),
    /// A caller handed storage something it cannot write (wrong vector length,
    /// duplicate ids in one segment, a segment that already exists).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl StorageError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}
