//! The error type for model loading, tokenization and inference.

use std::path::PathBuf;

/// Shorthand for results whose error is [`EmbedError`].
pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// A model file is missing, unreadable or does not match the architecture.
    #[error("model file {}: {reason}", path.display())]
    ModelFile { path: PathBuf, reason: String },
    /// The caller asked for something the model cannot do (bad dim, empty batch...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Tokenizer failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Tensor computation failure.
    #[error("inference: {0}")]
    Inference(String),
    /// The request queue is full; try again later.
    #[error("model {model} is overloaded: {pending} requests queued")]
    Overloaded { model: String, pending: usize },
    /// The model could not be found or downloaded.
    #[error("model {name} is not available: {reason}")]
    NotAvailable { name: String, reason: String },
}
