//! Quiver's database and collections.
//!
//! A [`Database`] owns a data directory and the collections in it; a [`Collection`]
//! owns the write path (validate -> one WAL record per batch -> memtable, text index
//! and memtable graph), sealing into memory-mapped segments with their HNSW graphs,
//! compaction, recovery, exact search (the ground truth) and [`Query`]: dense, sparse
//! and hybrid search with metadata filters. [`models`] holds the steps that run a model:
//! embedding documents and query text, and reranking. [`QueryPipeline`] runs a
//! [`SearchRequest`] end to end (mode choice, query embedding, search, rerank): the one
//! query path the HTTP API and the benchmarks share.
//!
//! Directory layout:
//!
//! ```text
//! <data>/collections/<name>/
//!   collection.json     fixed settings (see `config_file`)
//!   MANIFEST            live segments + checkpoint LSN (quiver_storage::manifest)
//!   wal/                write-ahead log files
//!   segments/<id>/      immutable segments + tombstones (quiver_storage::segment)
//!   segments/<id>/graph.qvg  the segment's flat HNSW graph (quiver_index::FlatGraph);
//!                       earlier releases kept an hnsw_rs dump in hnsw/, converted on open
//!   segments/<id>/fields.qvf  the segment's metadata index (quiver_index::SealedFields),
//!                       rebuilt from the documents when missing or damaged
//!   text/               BM25 index, commit payload = last applied LSN (quiver_index)
//! <data>/snapshots/       snapshot archives (see [`snapshot`])
//! ```

mod collection;
mod config_file;
mod database;
mod dense;
mod error;
mod live_segment;
mod memtable;
pub mod models;
mod options;
mod pipeline;
mod plan;
mod query;
mod record;
mod search;
mod segment_fields;
mod segment_graph;
pub mod snapshot;

pub use collection::{
    text_key, Collection, CollectionStats, LiveDoc, MaintenanceStats, Page, SEGMENTS_DIR, TEXT_DIR,
    WAL_DIR,
};
pub use config_file::CONFIG_FILE;
pub use database::{Database, COLLECTIONS_DIR, LOCK_FILE};
pub use error::{EngineError, Result};
pub use live_segment::LiveSegment;
pub use options::{CollectionOptions, DbOptions};
pub use pipeline::{
    QueryPipeline, RerankRequest, SearchRequest, SearchResult, SearchTimings,
    DEFAULT_RERANK_CANDIDATES,
};
pub use query::{
    document_chunks, ChunkScore, Explain, Fusion, GroupBy, HitChunk, Query, QueryHit, QueryMode,
    QueryResult, QueryTimings, Reranked, StageHit, DEFAULT_RRF_K, HYBRID_CANDIDATES, MAX_TOP_K,
};
pub use search::Hit;
pub use segment_fields::{fields_path, FIELDS_FILE};
pub use segment_graph::{graph_path, GRAPH_FILE, LEGACY_GRAPH_DIR};
