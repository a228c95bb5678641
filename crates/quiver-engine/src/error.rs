//! The engine error type. Variants line up with how a caller should react: bad input
//! (`InvalidInput`, `Core`), missing or duplicate names (`NotFound`, `AlreadyExists`),
//! a collection that stopped accepting writes (`ReadOnly`), and everything the storage
//! and index layers report (I/O, corruption).

use quiver_core::CoreError;
use quiver_storage::StorageError;

/// Shorthand for results whose error is [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The named collection (or other object) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A collection with that name already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A sync failed earlier; the collection refuses writes until it is reopened.
    #[error("collection is read-only after a failed sync: {0}")]
    ReadOnly(String),
    /// Another process has the data directory open.
    #[error("data directory {0} is in use by another Quiver process")]
    Locked(String),
    /// The request is malformed (empty id, bad query, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A snapshot archive is damaged, unsafe or inconsistent; nothing was changed.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// A well-formed request this collection cannot serve as configured (a text
    /// query without an embedding model, rerank without a reranker).
    #[error("{0}")]
    Unsupported(String),
    /// Input over a configured size bound (a snapshot archive).
    #[error("too large: {0}")]
    TooLarge(String),
    /// The operation needs an empty collection and this one holds documents.
    #[error("{0}")]
    NotEmpty(String),
    /// The object stayed in use too long for the operation (a restore's target).
    #[error("busy: {0}")]
    Busy(String),
    /// Input that breaks a shared rule (name, vector length, non-finite value, config).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// I/O failure or corrupt data below the engine.
    #[error(transparent)]
    Storage(StorageError),
    /// A vector or text index failed (I/O, damaged files, the index library).
    #[error(transparent)]
    Index(quiver_index::IndexError),
    /// An embedding or reranker model could not be found, loaded or run.
    #[error(transparent)]
    Model(quiver_embed::EmbedError),
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        match e {
            // A poisoned log is a state of the collection, not a storage fault to retry.
            StorageError::Poisoned(msg) => EngineError::ReadOnly(msg),
            other => EngineError::Storage(other),
        }
    }
}

impl EngineError {
    /// True for errors caused by the caller's input.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, EngineError::InvalidInput(_) | EngineError::Core(_))
    }
}
