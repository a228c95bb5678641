//! Durable file primitives: atomic replace, directory fsync, temp-file cleanup.
//!
//! Every file Quiver replaces in place (manifest, collection config, tombstones) goes
//! through [`write_atomic`]: the new bytes are written to a temp file in the same
//! directory, fsynced, renamed over the target, and the directory is fsynced so the
//! rename itself survives a power cut. A process killed half-way leaves at most a
//! temp file behind (never a half-written target); [`remove_temp_files`] deletes those
//! at start-up.
//!
//! Temp files are named `.<target name>.<pid>-<counter>.tmp` so that they sort apart
//! from real files and are recognized by their [`TEMP_SUFFIX`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Result, StorageError};

/// Suffix of the temp files [`write_atomic`] creates; [`remove_temp_files`] deletes
/// every regular file in a directory that ends with it.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Distinguishes temp files of concurrent `write_atomic` calls in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically and durably: after a crash the file holds
/// either the old or the new contents, and once this returns the new contents (and
/// the name) are on stable storage.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    let name = path.file_name().ok_or_else(|| {
        StorageError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.{}-{}{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed),
        TEMP_SUFFIX
    ));
    let result = write_and_rename(&tmp, path, bytes);
    if result.is_err() {
        // Best effort: the error that matters is the one being returned.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(&dir)
}

fn write_and_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| StorageError::io(tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| StorageError::io(tmp, e))?;
    // sync_all, not sync_data: the new file's size must be durable before the rename.
    file.sync_all().map_err(|e| StorageError::io(tmp, e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| StorageError::io(path, e))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Fsyncs a directory so that entries created, renamed or removed in it are durable.
#[cfg(unix)]
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| StorageError::io(dir, e))?;
    handle.sync_all().map_err(|e| StorageError::io(dir, e))
}

/// Fsyncs a directory so that entries created, renamed or removed in it are durable.
///
/// Directories cannot be opened for syncing on this platform; the rename and create
/// calls are durable by themselves there, so this only checks the directory exists.
#[cfg(not(unix))]
pub fn fsync_dir(dir: &Path) -> Result<()> {
    fs::metadata(dir)
        .map(|_| ())
        .map_err(|e| StorageError::io(dir, e))
}

/// Deletes the leftovers of atomic replaces that were killed before their rename:
/// every regular file in `dir` whose name ends with [`TEMP_SUFFIX`]. Returns how many
/// were removed. Call it at start-up, before anything writes into `dir`.
pub fn remove_temp_files(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let is_file = entry
            .file_type()
            .map_err(|e| StorageError::io(entry.path(), e))?
            .is_file();
        let is_temp = entry.file_name().to_string_lossy().ends_with(TEMP_SUFFIX);
        if is_file && is_temp {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

/// Creates `dir` and any missing parents, fsyncing the parent of every directory it
/// created so the new entries survive a crash. Succeeds if `dir` already exists.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    // Collect the missing ancestors first, so only their parents need syncing.
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    // Shallowest first: each new directory's entry lives in its parent.
    for created in missing.iter().rev() {
        fsync_dir(&parent_dir(created))?;
    }
    Ok(())
}

/// Removes a file and fsyncs its directory so the removal is durable.
pub fn remove_file_durable(path: &Path) -> Result<()> {
    fs::remove_file(path).map_err(|e| StorageError::io(path, e))?;
    fsync_dir(&parent_dir(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_creates_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("MANIFEST");
        write_atomic(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        write_atomic(&path, b"").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        // No temp file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("MANIFEST")]);
    }

    #[test]
    fn write_atomic_into_missing_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("file");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn remove_temp_files_removes_only_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("MANIFEST"), b"keep").unwrap();
        fs::write(dir.path().join(".MANIFEST.123-0.tmp"), b"junk").unwrap();
        fs::write(dir.path().join("other.tmp"), b"junk").unwrap();
        fs::create_dir(dir.path().join("sub.tmp")).unwrap();
        assert_eq!(remove_temp_files(dir.path()).unwrap(), 2);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["MANIFEST", "sub.tmp"]);
        assert_eq!(remove_temp_files(dir.path()).unwrap(), 0);
    }

    #[test]
    fn create_dir_durable_creates_nested_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b").join("c");
        create_dir_durable(&nested).unwrap();
        assert!(nested.is_dir());
        create_dir_durable(&nested).unwrap();
        assert!(nested.is_dir());
    }

    #[test]
    fn fsync_dir_reports_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        fsync_dir(dir.path()).unwrap();
        let err = fsync_dir(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
    }

    #[test]
    fn remove_file_durable_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        remove_file_durable(&path).unwrap();
        assert!(!path.exists());
        assert!(remove_file_durable(&path).is_err());
    }
}
