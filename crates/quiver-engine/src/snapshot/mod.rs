//! Snapshots: online backups of one collection or of the whole database, stored as one
//! archive file each, and restores from them that always leave a collection whole.
//!
//! Where they live:
//!
//! ```text
//! <data>/snapshots/collections/<collection>/<snapshot>.snapshot   one collection
//! <data>/snapshots/database/<snapshot>.snapshot                  every collection
//! <data>/snapshots/…/<snapshot>.lsn.json   its collections' LSNs, for listing (the
//!                                   archive's own manifest is its last entry, so reading
//!                                   it would mean reading the whole archive)
//! <data>/snapshots/.build-…/        hard links of a snapshot being built (start-up deletes)
//! <data>/collections/.staging-…/    a restore being unpacked and verified (start-up deletes)
//! <data>/collections/.restore-journal   a restore being swapped in (start-up finishes it)
//! ```
//!
//! Archive format (a tar file, optionally zstd-compressed; a reader tells the two apart
//! by the zstd magic number):
//!
//! | entry | holds |
//! |-------|-------|
//! | `collections/<name>/collection.json` | the collection's settings |
//! | `collections/<name>/MANIFEST` | its segments and checkpoint LSN |
//! | `collections/<name>/segments/<id>/…` | every live segment, tombstones, HNSW graph |
//! | `collections/<name>/text/…` | the committed text index (at or below the LSN) |
//! | `collections/<name>/wal/<first-lsn>.wal` | the WAL, cut after the snapshot's LSN |
//! | `quiver-snapshot.json` (last) | [`ArchiveManifest`]: format, every file with size and SHA-256, each collection's config and LSN |
//!
//! Only regular files appear; there are no directory or link entries. Opening a
//! restored collection replays the WAL from its checkpoint to exactly the snapshot's
//! LSN, and the text index catches up from its own commit LSN the same way.
//!
//! Creation ([`create`]) and restore ([`restore`]) document their own concurrency and
//! crash rules.

mod archive;
mod create;
mod restore;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use quiver_core::validate_name;
use quiver_storage::{fsutil, StorageError};
use serde::{Deserialize, Serialize};

pub use archive::{
    ArchiveCollection, ArchiveFile, ArchiveManifest, ARCHIVE_FORMAT, MANIFEST_ENTRY,
};
pub(crate) use restore::recover;

use crate::{EngineError, Result};

/// Sub-directory of the data directory that holds snapshot archives.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// File name extension of a stored snapshot archive.
pub const SNAPSHOT_EXT: &str = "snapshot";
/// File name extension of the LSN record stored beside each archive.
const LSN_EXT: &str = "lsn.json";

/// What a snapshot covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotScope {
    /// One collection, by name.
    Collection(String),
    /// Every collection of the database.
    Database,
}

/// How a new archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar file (the default: vectors barely compress, and it is fastest).
    #[default]
    None,
    /// tar inside a zstd stream (level 3).
    Zstd,
}

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// Archive size in bytes.
    pub size: u64,
    /// Modification time of the archive, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The checkpoint LSN (for a database snapshot, the highest of its collections');
    /// `None` when the LSN record beside the archive is missing or unreadable.
    pub lsn: Option<u64>,
    /// Each collection in the archive and its LSN (empty when `lsn` is `None`).
    pub collections: Vec<CollectionLsn>,
}

/// The result of creating a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedSnapshot {
    pub name: String,
    /// The checkpoint LSN (for a database snapshot, the highest of its collections').
    pub lsn: u64,
    /// Archive size in bytes.
    pub size: u64,
    /// Each collection in the archive and its LSN.
    pub collections: Vec<CollectionLsn>,
}

/// A collection and the LSN it was captured (or restored) at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionLsn {
    pub name: String,
    pub lsn: u64,
}

/// Bounds on what a restore accepts; an archive over them is refused before anything
/// live changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreLimits {
    /// Largest archive, and largest unpacked content, in bytes.
    pub max_bytes: u64,
    /// Most entries in one archive.
    pub max_entries: u64,
}

impl Default for RestoreLimits {
    fn default() -> Self {
        RestoreLimits {
            max_bytes: 64 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// The result of a restore: each collection now live, with the LSN it was restored to
/// and its document count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoredCollection {
    pub name: String,
    pub lsn: u64,
    pub documents: usize,
}

/// Distinguishes hidden files and directories made by one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn unique(prefix: &str) -> String {
    format!(
        ".{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |e| StorageError::io(path, e).into()
}

/// Directory holding the stored snapshots of `scope`, after validating its name.
pub(crate) fn scope_dir(root: &Path, scope: &SnapshotScope) -> Result<PathBuf> {
    let base = root.join(SNAPSHOTS_DIR);
    Ok(match scope {
        SnapshotScope::Collection(c) => {
            validate_name(c)?;
            base.join("collections").join(c)
        }
        SnapshotScope::Database => base.join("database"),
    })
}

/// Path of stored snapshot `name` of `scope` (validated; the file may not exist).
pub(crate) fn snapshot_path(root: &Path, scope: &SnapshotScope, name: &str) -> Result<PathBuf> {
    validate_name(name).map_err(|e| EngineError::InvalidInput(format!("snapshot name: {e}")))?;
    Ok(scope_dir(root, scope)?.join(format!("{name}.{SNAPSHOT_EXT}")))
}

/// Path of the LSN record beside the stored archive at `archive` (`<name>.snapshot`).
pub(crate) fn lsn_path(archive: &Path) -> PathBuf {
    archive.with_extension(LSN_EXT)
}

/// Writes the LSN record at `path`, atomically.
pub(crate) fn write_lsns(path: &Path, lsns: &[CollectionLsn]) -> Result<()> {
    let json =
        serde_json::to_vec(lsns).map_err(|e| StorageError::io(path, std::io::Error::other(e)))?;
    Ok(fsutil::write_atomic(path, &json)?)
}

/// Reads the LSN record at `path`; a missing or damaged one only costs the listing its
/// LSNs, so it is `None` rather than an error.
fn read_lsns(path: &Path) -> Option<Vec<CollectionLsn>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read snapshot LSN record");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .inspect_err(|e| {
            tracing::warn!(file = %path.display(), error = %e, "damaged snapshot LSN record");
        })
        .ok()
}

/// The stored snapshots of `scope`, sorted by name.
pub(crate) fn list(root: &Path, scope: &SnapshotScope) -> Result<Vec<SnapshotInfo>> {
    let dir = scope_dir(root, scope)?;
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StorageError::io(&dir, e).into()),
    };
    for entry in entries {
        let entry = entry.map_err(io(&dir))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file_name.strip_suffix(&format!(".{SNAPSHOT_EXT}")) else {
            continue;
        };
        if validate_name(name).is_err() {
            continue;
        }
        let meta = entry.metadata().map_err(io(&entry.path()))?;
        if !meta.is_file() {
            continue;
        }
        let created_unix_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        let collections = read_lsns(&lsn_path(&entry.path())).unwrap_or_default();
        out.push(SnapshotInfo {
            name: name.to_string(),
            size: meta.len(),
            created_unix_ms,
            lsn: collections.iter().map(|c| c.lsn).max(),
            collections,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Opens stored snapshot `name` of `scope`; `NotFound` when there is none.
pub(crate) fn open_stored(
    root: &Path,
    scope: &SnapshotScope,
    name: &str,
) -> Result<(std::fs::File, u64)> {
    let path = snapshot_path(root, scope, name)?;
    match std::fs::File::open(&path) {
        Ok(f) => {
            let len = f.metadata().map_err(io(&path))?.len();
            Ok((f, len))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(EngineError::NotFound(format!("snapshot {name:?}")))
        }
        Err(e) => Err(StorageError::io(&path, e).into()),
    }
}
