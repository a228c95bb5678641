//! Quiver's built-in models: a Qwen3 embedder and reranker and a BERT-family embedder
//! running in-process on the CPU (weights read through candle; the forward passes and
//! their kernels are Quiver's own, in float32 or int8), plus the batching service that
//! shares one loaded model between every caller.

mod amx;
mod attention;
mod bert;
mod chunk;
mod error;
mod int8;
mod kernels;
mod linear;
mod model;
mod panels;
mod pool;
pub mod qwen3;
pub mod registry;
pub mod resolve;
pub mod service;
mod tokenizer;
mod weights;

pub use bert::BertEmbedder;
pub use chunk::{chunk_tokens, Chunk};
pub use error::{EmbedError, Result};
pub use model::{truncate_normalize, Reranker, TextEmbedder};
pub use qwen3::{ModelOptions, Precision, Qwen3Embedder, Qwen3Reranker};
pub use registry::{ModelRegistry, Role};
pub use service::{EmbedService, Pending, Priority, RerankService, ServiceConfig, ServiceStats};
pub use tokenizer::TextTokenizer;
