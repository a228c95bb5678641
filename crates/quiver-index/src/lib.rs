//! Quiver's indexes and query building blocks.
//!
//! - [`DenseIndex`]: an HNSW graph per segment, cosine / dot / L2, built by concurrent
//!   inserts while it is searched, with filtering during the graph walk; it also reads
//!   earlier releases' hnsw_rs dumps.
//! - [`FlatGraph`]: a sealed segment's graph, exported into one flat memory-mapped file
//!   and searched in place.
//! - [`simd`]: distance kernels chosen at run time (AVX-512, AVX2, portable).
//! - [`exact_search`]: brute force, the ground truth and the plan for tiny candidate sets.
//! - [`MatryoshkaIndex`]: search a vector prefix, rescore at full length.
//! - [`TextIndex`]: BM25 full-text search (tantivy) with per-collection analyzers and
//!   WAL-position commit payloads.
//! - [`RowSet`] / [`RowFilter`]: the one allowed-row set a metadata filter
//!   ([`quiver_core::Filter`]) compiles into, consulted by both searches.
//! - [`Fusion`]: RRF and weighted fusion of the two result lists, with explanations.
//!
//! Rows are `u64` keys the caller chooses; the crate never interprets them.

mod bm25;
mod error;
mod exact;
mod fields;
mod fusion;
mod hnsw;
mod matryoshka;
mod rowset;
pub mod simd;

pub use bm25::{
    Analyzer, CjkTokenizer, Highlighter, PassageScorer, TextHit, TextIndex, WordTokenizer,
};
pub use error::{IndexError, Result};
pub use exact::{exact_search, Hit};
pub use fields::{
    compile as compile_filter, flatten, MemFields, NumRange, Postings, Scalar, SealedFields,
};
pub use fusion::{Fused, Fusion, StageHit, DEFAULT_RRF_K};
pub use hnsw::flat::{FlatGraph, VectorRows};
#[cfg(feature = "legacy-dump")]
pub use hnsw::legacy::write_legacy_dump;
pub use hnsw::legacy::{LoadOptions, META_FILE};
pub use hnsw::{DenseIndex, HnswParams};
pub use matryoshka::{rescore, MatryoshkaIndex, VectorSource};
pub use rowset::{RowFilter, RowSet};
