//! The write-ahead log: segmented files of checksummed records.
//!
//! The public surface below is the contract the engine builds on. The byte layout is
//! documented in [`mod@format`]; the rules that tell a torn tail from corruption in
//! `recovery.rs`; rotation, group commit and poisoning in `writer.rs`.
//!
//! Durability per [`SyncPolicy`]:
//!
//! | policy          | `append` returns after                  | a crash may lose                 |
//! |-----------------|-----------------------------------------|----------------------------------|
//! | `Always`        | fdatasync, shared by concurrent appends | nothing acknowledged             |
//! | `IntervalMs(n)` | write(2); a thread syncs every `n` ms   | about the last `n` ms (OS crash) |
//! | `Never`         | write(2)                                | whatever the OS had not flushed  |
//!
//! Whatever the policy, a file is synced before the next one is created, and a failed
//! sync poisons the log: every waiting and later append fails with
//! [`StorageError::Poisoned`](crate::StorageError::Poisoned).

pub mod format;
mod recovery;
mod writer;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use quiver_core::stats::{Histogram, SECONDS_BOUNDS};
use quiver_core::SyncPolicy;

use crate::{fsutil, Result};
use format::HEADER_LEN;
use writer::{Shared, Writer};

/// Time each fdatasync of a log file took, across every log in the process (metrics).
pub static SYNC_SECONDS: std::sync::LazyLock<Histogram> =
    std::sync::LazyLock::new(|| Histogram::new(SECONDS_BOUNDS));

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
pub struct Wal {
    shared: Arc<Shared>,
    sync: SyncPolicy,
    /// Background syncer for `SyncPolicy::IntervalMs`.
    ticker: Option<Ticker>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .field("sync", &self.sync)
            .field("last_lsn", &self.shared.written_lsn())
            .field("poisoned", &self.shared.is_poisoned())
            .finish()
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` and recovers it: a torn tail is
    /// truncated with a warning, a bad record followed by valid ones is refused as
    /// corruption (unless `repair`). Returns the log and, in LSN order, every record
    /// with `lsn > after_lsn`. New records get LSNs above both the last record and
    /// `after_lsn`.
    ///
    /// `after_lsn` is the caller's checkpoint: if the log starts above
    /// `after_lsn + 1`, records the caller needs are missing and open fails with
    /// `Corruption`. If the whole log is at or below `after_lsn`, its files are
    /// deleted and a new file starts at `after_lsn + 1`.
    pub fn open(dir: &Path, opts: WalOptions, after_lsn: u64) -> Result<(Wal, Vec<WalRecord>)> {
        fsutil::create_dir_durable(dir)?;
        let rec = recovery::recover(dir, opts.repair, after_lsn)?;
        let next_lsn = rec.last_lsn.unwrap_or(0).max(after_lsn) + 1;
        let writer = match rec.tail {
            Some((header, len)) if rec.last_lsn == Some(next_lsn - 1) => {
                let active =
                    writer::reopen_file(&rec.files[rec.files.len() - 1].path, header, len)?;
                // Make what recovery kept durable before anything is acknowledged on top.
                active
                    .file
                    .sync_data()
                    .map_err(|e| crate::StorageError::io(&active.path, e))?;
                Writer {
                    active: Arc::new(active),
                    len,
                    next_lsn,
                    files: rec.files.into_iter().collect(),
                    buf: Vec::new(),
                }
            }
            _ => {
                // Empty directory, or every record is covered by the checkpoint.
                if !rec.files.is_empty() {
                    tracing::info!(
                        dir = %dir.display(),
                        after_lsn,
                        "WAL ends at or before the checkpoint; starting a new file"
                    );
                }
                for f in &rec.files {
                    std::fs::remove_file(&f.path)
                        .map_err(|e| crate::StorageError::io(&f.path, e))?;
                }
                let active = writer::create_file(dir, next_lsn)?;
                let mut files = VecDeque::new();
                files.push_back(recovery::LogFile {
                    first_lsn: next_lsn,
                    path: active.path.clone(),
                });
                Writer {
                    active: Arc::new(active),
                    len: HEADER_LEN as u64,
                    next_lsn,
                    files,
                    buf: Vec::new(),
                }
            }
        };
        let shared = Arc::new(Shared::new(dir.to_path_buf(), opts.max_file_bytes, writer));
        let ticker = match opts.sync {
            SyncPolicy::IntervalMs(ms) => Some(Ticker::start(Arc::clone(&shared), ms)?),
            SyncPolicy::Always | SyncPolicy::Never => None,
        };
        let wal = Wal {
            shared,
            sync: opts.sync,
            ticker,
        };
        Ok((wal, rec.records))
    }

    /// Appends one record and returns its LSN once it is as durable as the sync
    /// policy promises. Concurrent callers share one fdatasync (group commit).
    pub fn append(&self, kind: u8, payload: &[u8]) -> Result<u64> {
        let lsn = self.shared.write(kind, payload)?;
        if self.sync == SyncPolicy::Always {
            self.shared.wait_durable(lsn)?;
        }
        Ok(lsn)
    }

    /// Forces everything appended so far to stable storage.
    pub fn sync(&self) -> Result<()> {
        if self.shared.is_poisoned() {
            // Reports the poison message even when nothing new needs syncing.
            return self.shared.wait_durable(u64::MAX);
        }
        self.shared.wait_durable(self.shared.written_lsn())
    }

    /// Deletes whole files whose records all have `lsn <= checkpoint`.
    pub fn remove_before(&self, checkpoint: u64) -> Result<()> {
        self.shared.remove_before(checkpoint)
    }

    /// LSN of the last appended record (or the floor given to `open`).
    pub fn last_lsn(&self) -> u64 {
        self.shared.written_lsn()
    }

    /// True once a sync has failed; every later append fails with `Poisoned`.
    pub fn is_poisoned(&self) -> bool {
        self.shared.is_poisoned()
    }

    /// Number of fdatasync calls issued on log files since open (metrics; shows how
    /// well group commit batches).
    pub fn sync_count(&self) -> u64 {
        self.shared.sync_count()
    }

    /// The log's files, oldest first (the last one receives appends).
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.shared.file_paths()
    }

    /// Test hook: while `hold` is true, every fdatasync waits before it runs.
    #[doc(hidden)]
    pub fn hold_syncs(&self, hold: bool) {
        self.shared.hold_syncs(hold);
    }

    /// Test hook: the next fdatasync fails as if the device reported an error.
    #[doc(hidden)]
    pub fn inject_sync_failure(&self) {
        self.shared.inject_sync_failure();
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
            // A clean shutdown should not lose the last interval's appends.
            if let Err(e) = self.sync() {
                tracing::warn!(dir = %self.shared.dir.display(), error = %e, "final WAL sync failed");
            }
        }
    }
}

/// The background thread of `SyncPolicy::IntervalMs`.
struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(shared: Arc<Shared>, interval_ms: u64) -> Result<Ticker> {
        let dir = shared.dir.clone();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let period = Duration::from_millis(interval_ms.max(1));
        let handle = std::thread::Builder::new()
            .name("quiver-wal-sync".into())
            .spawn(move || loop {
                {
                    let (lock, cv) = &*flag;
                    let mut stopped = lock.lock();
                    if !*stopped {
                        cv.wait_for(&mut stopped, period);
                    }
                    if *stopped {
                        return;
                    }
                }
                if shared.is_poisoned() {
                    return;
                }
                // A failure poisons the log and is logged there; appends report it.
                let _ = shared.wait_durable(shared.written_lsn());
            });
        let handle = handle.map_err(|e| crate::StorageError::io(&dir, e))?;
        Ok(Ticker {
            stop,
            handle: Some(handle),
        })
    }

    fn stop(mut self) {
        {
            let (lock, cv) = &*self.stop;
            *lock.lock() = true;
            cv.notify_all();
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
