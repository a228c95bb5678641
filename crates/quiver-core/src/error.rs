//! The error type for input that fails Quiver's shared validation rules.

/// Shorthand for results whose error is [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Input that breaks one of the shared rules (names, vectors, configuration).
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum CoreError {
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("vector has {got} components, the collection expects {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    #[error("vector component {index} is not finite ({value})")]
    NonFiniteVector { index: usize, value: f32 },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid filter at {at}: {reason}")]
    InvalidFilter { at: String, reason: String },
}
