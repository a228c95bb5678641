//! Qwen3 models: the embedder and the reranker, both on one batched decoder forward pass
//! (`transformer`) written for scoring rather than generation.

pub(crate) mod config;
pub(crate) mod embedder;
pub(crate) mod reranker;
pub(crate) mod transformer;

pub use config::{ModelOptions, Precision, Qwen3Config};
pub use embedder::{check_dim, query_prompt, Qwen3Embedder, DEFAULT_TASK, EMBED_EOS, MIN_DIM};
pub use reranker::{rerank_body, Qwen3Reranker, RERANK_PREFIX, RERANK_SUFFIX};
