//! Quiver's database and collections.
//!
//! A [`Database`] owns a data directory and the collections in it; a [`Collection`]
//! owns the write path (validate -> one WAL record per batch -> memtable), sealing
//! into memory-mapped segments, compaction, recovery and exact search. Later layers
//! (vector and text indexes, the HTTP server) build on the segment and memtable
//! access exposed here.
//!
//! Directory layout:
//!
//! ```text
//! <data>/collections/<name>/
//!   collection.json     fixed settings (see `config_file`)
//!   MANIFEST            live segments + checkpoint LSN (quiver_storage::manifest)
//!   wal/                write-ahead log files
//!   segments/<id>/      immutable segments + tombstones (quiver_storage::segment)
//! ```

mod collection;
mod config_file;
mod database;
mod error;
mod live_segment;
mod memtable;
mod options;
mod record;
mod search;

pub use collection::{Collection, CollectionStats, LiveDoc, SEGMENTS_DIR, WAL_DIR};
pub use config_file::CONFIG_FILE;
pub use database::{Database, COLLECTIONS_DIR, LOCK_FILE};
pub use error::{EngineError, Result};
pub use live_segment::LiveSegment;
pub use options::{CollectionOptions, DbOptions};
pub use search::Hit;
