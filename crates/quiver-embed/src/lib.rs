//! Quiver's built-in models: a Qwen3 embedder and reranker and a BERT-family embedder
//! running in-process on candle, plus the batching service that shares one loaded model
//! between every caller.

mod error;
mod model;

pub use error::{EmbedError, Result};
pub use model::{truncate_normalize, Reranker, TextEmbedder};
