//! The appending side of the log: record writes, rotation, group commit and poisoning.
//!
//! Two locks, always taken in this order when nested: `writer` (the active file, the
//! next LSN, the file list) then `sync` (the durable LSN, whether a sync is running,
//! the poison message). Appends hold `writer` only for the write(2) itself; the
//! fdatasync of group commit runs with neither lock held, so writers keep appending
//! while a sync is in flight and the next sync covers all of them at once.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::format::{self, FileHeader, HEADER_LEN, MAX_PAYLOAD};
use super::recovery::LogFile;
use crate::fsutil;
use crate::{Result, StorageError};

/// The file appends currently go to.
#[derive(Debug)]
pub(crate) struct ActiveFile {
    pub file: File,
    pub path: PathBuf,
    pub header: FileHeader,
}

/// State guarded by the writer lock.
#[derive(Debug)]
pub(crate) struct Writer {
    pub active: Arc<ActiveFile>,
    /// Bytes in the active file.
    pub len: u64,
    /// LSN the next record gets; `next_lsn - 1` has been written.
    pub next_lsn: u64,
    /// Every file of the log, oldest first; the last one is the active file.
    pub files: VecDeque<LogFile>,
    /// Reused encoding buffer, so an append does not allocate.
    pub buf: Vec<u8>,
}

/// State guarded by the sync lock.
#[derive(Debug)]
struct SyncState {
    /// Every record with `lsn <= synced_lsn` is on stable storage.
    synced_lsn: u64,
    /// A group-commit leader is inside fdatasync.
    syncing: bool,
    /// Set by the first failed sync; never cleared.
    poisoned: Option<String>,
}

/// Everything the `Wal` handle and its background sync thread share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub max_file_bytes: u64,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Fast-path copy of `SyncState::poisoned.is_some()`.
    poisoned: AtomicBool,
    /// fdatasync calls issued on log files.
    syncs: AtomicU64,
    /// Test hook: the next fdatasync reports failure instead of running.
    fail_next_sync: AtomicBool,
    /// Test hook: while true, fdatasync waits before running (lets tests line up
    /// concurrent appenders deterministically).
    hold_syncs: Mutex<bool>,
    released: Condvar,
}

impl Shared {
    pub fn new(dir: PathBuf, max_file_bytes: u64, writer: Writer) -> Shared {
        let synced_lsn = writer.next_lsn - 1;
        Shared {
            dir,
            max_file_bytes,
            writer: Mutex::new(writer),
            sync: Mutex::new(SyncState {
                synced_lsn,
                syncing: false,
                poisoned: None,
            }),
            synced: Condvar::new(),
            poisoned: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
            fail_next_sync: AtomicBool::new(false),
            hold_syncs: Mutex::new(false),
            released: Condvar::new(),
        }
    }

    /// Writes one record and returns its LSN; durability is the caller's next step.
    pub fn write(&self, kind: u8, payload: &[u8]) -> Result<u64> {
        if payload.len() > MAX_PAYLOAD {
            return Err(StorageError::Codec(format!(
                "WAL record of {} bytes exceeds the {MAX_PAYLOAD}-byte limit",
                payload.len()
            )));
        }
        self.check_poison()?;
        let mut guard = self.writer.lock();
        // Checked again under the lock: nothing is written after a failed sync.
        self.check_poison()?;
        if guard.len >= self.max_file_bytes && guard.len > HEADER_LEN as u64 {
            self.rotate(&mut guard)?;
        }
        let w = &mut *guard;
        let lsn = w.next_lsn;
        w.buf.clear();
        format::encode_record(&mut w.buf, w.active.header.seed, lsn, kind, payload);
        if let Err(e) = (&w.active.file).write_all(&w.buf) {
            // Cut off whatever part was written, so the next record does not land
            // behind garbage (which recovery would have to call corruption).
            let undo = w
                .active
                .file
                .set_len(w.len)
                .and_then(|()| (&w.active.file).seek(SeekFrom::Start(w.len)).map(|_| ()));
            if let Err(undo_err) = undo {
                self.poison(format!(
                    "write to {} failed ({e}) and could not be undone ({undo_err})",
                    w.active.path.display()
                ));
            }
            return Err(StorageError::io(&w.active.path, e));
        }
        w.len += w.buf.len() as u64;
        w.next_lsn += 1;
        Ok(lsn)
    }

    /// Returns once every record with `lsn <= target` is durable, running the sync
    /// itself if no other thread is (group commit: one fdatasync covers every record
    /// written before it started).
    pub fn wait_durable(&self, target: u64) -> Result<()> {
        let mut st = self.sync.lock();
        loop {
            if st.synced_lsn >= target {
                return Ok(());
            }
            if let Some(msg) = &st.poisoned {
                return Err(StorageError::Poisoned(msg.clone()));
            }
            if st.syncing {
                self.synced.wait(&mut st);
                continue;
            }
            st.syncing = true;
            let result = MutexGuard::unlocked(&mut st, || self.sync_written());
            st.syncing = false;
            if let Ok(done) = result {
                st.synced_lsn = st.synced_lsn.max(done);
            }
            // On failure `poison` has recorded the message; the loop reports it.
            self.synced.notify_all();
        }
    }

    /// Syncs the active file and returns the last LSN the sync covers.
    fn sync_written(&self) -> Result<u64> {
        let (active, written) = {
            let w = self.writer.lock();
            (Arc::clone(&w.active), w.next_lsn - 1)
        };
        // Records in older files were synced when their file was rotated out.
        self.fdatasync(&active.file, &active.path)?;
        Ok(written)
    }

    /// LSN of the last written record.
    pub fn written_lsn(&self) -> u64 {
        self.writer.lock().next_lsn - 1
    }

    /// Closes the active file and starts a new one at the next LSN.
    fn rotate(&self, w: &mut Writer) -> Result<()> {
        // The old file must be durable before a newer file exists: recovery treats
        // damage at the end of a non-last file as corruption, not a torn write.
        self.fdatasync(&w.active.file, &w.active.path)?;
        let active = match create_file(&self.dir, w.next_lsn) {
            Ok(a) => a,
            Err(e) => {
                self.poison(format!("WAL rotation failed: {e}"));
                return Err(e);
            }
        };
        self.mark_synced(w.next_lsn - 1);
        w.files.push_back(LogFile {
            first_lsn: w.next_lsn,
            path: active.path.clone(),
        });
        w.active = Arc::new(active);
        w.len = HEADER_LEN as u64;
        Ok(())
    }

    /// Deletes the oldest files while all their records are `<= checkpoint`.
    pub fn remove_before(&self, checkpoint: u64) -> Result<()> {
        let mut w = self.writer.lock();
        let mut removed = false;
        // The active (last) file is never removed.
        while w.files.len() > 1 {
            let next_first = w.files[1].first_lsn;
            if next_first - 1 > checkpoint {
                break;
            }
            let path = w.files[0].path.clone();
            std::fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
            w.files.pop_front();
            removed = true;
        }
        drop(w);
        if removed {
            fsutil::fsync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Paths of the log's files, oldest first.
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.writer
            .lock()
            .files
            .iter()
            .map(|f| f.path.clone())
            .collect()
    }

    fn mark_synced(&self, lsn: u64) {
        let mut st = self.sync.lock();
        st.synced_lsn = st.synced_lsn.max(lsn);
        self.synced.notify_all();
    }

    /// One fdatasync; a failure poisons the log, since the kernel may already have
    /// dropped the dirty pages it failed to write and a retry could "succeed".
    fn fdatasync(&self, file: &File, path: &Path) -> Result<()> {
        {
            let mut held = self.hold_syncs.lock();
            while *held {
                self.released.wait(&mut held);
            }
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let result = if self.fail_next_sync.swap(false, Ordering::SeqCst) {
            Err(std::io::Error::other("injected sync failure"))
        } else {
            let start = std::time::Instant::now();
            let synced = file.sync_data();
            super::SYNC_SECONDS.observe(start.elapsed().as_secs_f64());
            synced
        };
        result.map_err(|e| {
            let msg = format!("fdatasync of {} failed: {e}", path.display());
            self.poison(msg.clone());
            StorageError::Poisoned(msg)
        })
    }

    fn poison(&self, msg: String) {
        tracing::error!(dir = %self.dir.display(), error = %msg, "WAL poisoned");
        let mut st = self.sync.lock();
        if st.poisoned.is_none() {
            st.poisoned = Some(msg);
        }
        self.poisoned.store(true, Ordering::SeqCst);
        self.synced.notify_all();
    }

    fn check_poison(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let st = self.sync.lock();
        Err(StorageError::Poisoned(
            st.poisoned
                .clone()
                .unwrap_or_else(|| "earlier sync failed".into()),
        ))
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    pub fn hold_syncs(&self, hold: bool) {
        *self.hold_syncs.lock() = hold;
        self.released.notify_all();
    }

    pub fn inject_sync_failure(&self) {
        self.fail_next_sync.store(true, Ordering::SeqCst);
    }
}

/// Creates (or overwrites a leftover of) the file for `first_lsn`: header with a fresh
/// random seed, synced, and the directory entry synced.
pub(crate) fn create_file(dir: &Path, first_lsn: u64) -> Result<ActiveFile> {
    let path = dir.join(format::file_name(first_lsn));
    let header = FileHeader {
        seed: rand::random(),
        first_lsn,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| StorageError::io(&path, e))?;
    file.write_all(&header.encode())
        .map_err(|e| StorageError::io(&path, e))?;
    file.sync_all().map_err(|e| StorageError::io(&path, e))?;
    fsutil::fsync_dir(dir)?;
    Ok(ActiveFile { file, path, header })
}

/// Opens an existing file for appending at byte `len` (its length after recovery).
pub(crate) fn reopen_file(path: &Path, header: FileHeader, len: u64) -> Result<ActiveFile> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    file.seek(SeekFrom::Start(len))
        .map_err(|e| StorageError::io(path, e))?;
    Ok(ActiveFile {
        file,
        path: path.to_path_buf(),
        header,
    })
}
