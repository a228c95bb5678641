//! Tuning knobs for databases and collections.

use std::time::Duration;

use quiver_core::SyncPolicy;

/// Settings every collection of a database is opened with.
#[derive(Debug, Clone)]
pub struct CollectionOptions {
    /// When WAL appends are forced to stable storage before a write is acknowledged.
    pub sync: SyncPolicy,
    /// Seal the mutable segment once it holds this many entries (documents or deletes).
    pub seal_rows: usize,
    /// Seal the mutable segment once its documents take about this many bytes.
    pub seal_bytes: usize,
    /// Rotate WAL files past this size.
    pub wal_file_bytes: u64,
    /// Open a WAL with a corrupt record by truncating at it (losing what follows).
    pub repair: bool,
    /// Merge small segments on a background thread after each seal.
    pub background_compaction: bool,
    /// Segments with fewer live rows than this are merged by compaction.
    pub compact_small_rows: usize,
    /// A background compaction waits until no write has come for this long, so the
    /// cores go to a bulk load's own indexing while it runs and merge once it ends.
    pub compact_quiet: Duration,
    /// ... unless this many small segments are waiting: then it starts anyway, so a
    /// steady stream of writes cannot leave searches facing ever more segments.
    pub compact_max_waiting: usize,
    /// Commit the text index once this many text updates wait (they are invisible to
    /// text searches until committed).
    pub text_commit_ops: usize,
    /// Commit waiting text updates at least this often (background thread).
    pub text_commit_interval: Duration,
}

impl Default for CollectionOptions {
    fn default() -> Self {
        CollectionOptions {
            sync: SyncPolicy::Always,
            seal_rows: 50_000,
            seal_bytes: 256 << 20,
            wal_file_bytes: 64 << 20,
            repair: false,
            background_compaction: true,
            compact_small_rows: 200_000,
            compact_quiet: Duration::from_secs(1),
            compact_max_waiting: 8,
            text_commit_ops: 100_000,
            text_commit_interval: Duration::from_secs(1),
        }
    }
}

/// Settings of a [`Database`](crate::Database).
#[derive(Debug, Clone, Default)]
pub struct DbOptions {
    /// Options every collection is opened with.
    pub collection: CollectionOptions,
}
