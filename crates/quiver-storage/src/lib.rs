//! Quiver's storage engine: write-ahead log, memory-mapped segments, manifest,
//! tombstones and compaction.
//!
//! This crate owns every byte Quiver writes to disk for a collection. It knows nothing
//! of indexes, models or HTTP: callers hand it encoded records and rows, and it makes
//! them durable and readable again after a crash.

mod error;
pub mod fsutil;
pub mod manifest;
pub mod segment;
pub mod wal;

pub use error::{Result, StorageError};
