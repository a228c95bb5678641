//! Quiver's shared vocabulary: the types every other crate speaks.
//!
//! This crate owns document shapes, name validation, distance functions and the
//! configuration types that travel between storage, engine and server. It does no
//! I/O and knows nothing of file formats or HTTP.

mod config;
mod distance;
mod document;
mod error;
mod filter;
mod name;
pub mod stats;

pub use config::{
    Bm25Config, ChunkStrategy, ChunkingConfig, CollectionConfig, HnswConfig, SyncPolicy,
    TextAnalyzer, DEFAULT_CHUNK_TOKENS, DEFAULT_RESCORE, MAX_CHUNK_TOKENS, MAX_RESCORE,
};
pub use distance::{dot, normalize, Distance};
pub use document::{validate_vector, DocChunk, Document, Metadata};
pub use error::{CoreError, Result};
pub use filter::{Condition, Filter, KeyPath, MatchValue, Range, MAX_FILTER_DEPTH};
pub use name::validate_name;
