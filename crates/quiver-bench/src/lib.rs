//! Quiver's benchmark harness, behind `quiver bench`.
//!
//! - [`ir`]: retrieval quality (nDCG@10, Recall@100, MRR@10) and per-stage latency on a
//!   BEIR-layout test collection ([`beir`]), through the real engine, for BM25, dense,
//!   hybrid and reranked search; peers bm25s and sentence-transformers.
//! - [`ann`]: HNSW recall@10 against exact search, QPS and p99 over an ef sweep, build time
//!   and memory; peers hnswlib and faiss; an SVG recall-vs-QPS plot ([`svg`]).
//! - [`embed`]: embedder tokens/s and reranker pairs/s over batch sizes and lengths; peer
//!   PyTorch/transformers.
//! - [`ingest`]: documents/s and batch latency over HTTP against a real server ([`server`]),
//!   per WAL sync policy, with supplied vectors at scale and with embedding; peers hnswlib
//!   (build rate), Chroma and LanceDB ([`ingest_peers`]).
//! - [`db`]: the database level: a real server loaded and queried over HTTP (QPS, latency,
//!   recall@10 over an ef sweep, ingest, disk, RSS); peers Chroma and LanceDB
//!   ([`db_peers`]).
//!
//! Every run yields a [`Report`]: one JSON document (machine, parameters, figures, peers)
//! and a Markdown table with our figure, the peer's and the ratio. Peers run in
//! `scripts/peers/run` ([`peers`]) on data the harness writes, so both sides see the same
//! inputs; their rankings are scored with the same [`metrics`] code as ours.

pub mod ann;
pub mod beir;
pub mod db;
pub mod db_peers;
pub mod embed;
mod error;
pub mod filter;
pub mod ingest;
pub mod ingest_peers;
pub mod ir;
pub mod machine;
pub mod metrics;
pub mod peers;
pub mod report;
pub mod server;
pub mod svg;
pub mod vectors;

pub use error::{BenchError, Result};
pub use report::{Comparison, Report};
