//! The write-ahead log: segmented files of checksummed records.
//!
//! The public surface below is the contract the engine builds on.

use std::path::Path;

use quiver_core::SyncPolicy;

use crate::Result;

/// Settings for one log.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// When appends are forced to stable storage.
    pub sync: SyncPolicy,
    /// A file is rotated once it grows past this many bytes.
    pub max_file_bytes: u64,
    /// Truncate at a corrupt record (losing what follows) instead of refusing to open.
    pub repair: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            sync: SyncPolicy::Always,
            max_file_bytes: 64 << 20,
            repair: false,
        }
    }
}

/// One recovered record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    pub lsn: u64,
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// An open write-ahead log. All methods take `&self`; it is shared across writers.
#[derive(Debug)]
pub struct Wal {
    _private: (),
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` and recovers it: a torn tail is
    /// truncated with a warning, a bad record followed by valid ones is refused as
    /// corruption (unless `repair`). Returns the log and, in LSN order, every record
    /// with `lsn > after_lsn`. New records get LSNs above both the last record and
    /// `after_lsn`.
    pub fn open(dir: &Path, opts: WalOptions, after_lsn: u64) -> Result<(Wal, Vec<WalRecord>)> {
        let _ = (dir, opts, after_lsn);
        todo!("write-ahead log")
    }

    /// Appends one record and returns its LSN once it is as durable as the sync
    /// policy promises. Concurrent callers share one fdatasync (group commit).
    pub fn append(&self, kind: u8, payload: &[u8]) -> Result<u64> {
        let _ = (kind, payload);
        todo!("write-ahead log")
    }

    /// Forces everything appended so far to stable storage.
    pub fn sync(&self) -> Result<()> {
        todo!("write-ahead log")
    }

    /// Deletes whole files whose records all have `lsn <= checkpoint`.
    pub fn remove_before(&self, checkpoint: u64) -> Result<()> {
        let _ = checkpoint;
        todo!("write-ahead log")
    }

    /// LSN of the last appended record (or the floor given to `open`).
    pub fn last_lsn(&self) -> u64 {
        todo!("write-ahead log")
    }

    /// True once a sync has failed; every later append fails with `Poisoned`.
    pub fn is_poisoned(&self) -> bool {
        todo!("write-ahead log")
    }
}
