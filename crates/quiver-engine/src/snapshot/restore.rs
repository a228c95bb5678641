//! Restoring a snapshot, and finishing or undoing an interrupted restore at start-up.
//!
//! 1. Unpack into `collections/.staging-…/unpacked/` while verifying every entry (see
//!    `archive`); move each collection to `.staging-…/<target>`, open it there (which
//!    replays its WAL to the snapshot's LSN and checks that LSN), close it, fsync the tree.
//!    Any failure so far deletes the staging directory: nothing live has changed.
//! 2. Close the live collections being replaced: take them out of the database, wait
//!    until no request holds them any more, drop them (their files are then untouched).
//! 3. Commit: write `collections/.restore-journal` atomically, naming the staging
//!    directory and the targets. Then for each target rename the live directory to
//!    `.old-<target>` and the staged one to `<target>`, fsync `collections/`, delete the
//!    journal. Open the new collections, then delete the `.old-` directories.
//!
//! Start-up ([`recover`]) with a journal present redoes step 3's renames for every
//! staged target still waiting (each rename is atomic, and a finished one is skipped),
//! so the restore completes; without a journal the restore never committed, and
//! staging and `.old-` directories are deleted. Either way every collection is
//! entirely old or entirely new.
//!
//! `.restore-journal` format (little-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `QVRSTJ1\0` |
//! | 8 | 4 | format version (u32, currently 1) |
//! | 12 | 4 | number of strings `n` (u32): the staging directory, then each target |
//! | 16 | … | `n` × (u16 length + UTF-8 bytes) |
//! | end-4 | 4 | crc32 of every byte before it |

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use quiver_core::validate_name;
use quiver_storage::{fsutil, StorageError};

use super::archive::{bad, unpack, ArchiveManifest};
use super::{create, io, open_stored, unique, RestoreLimits, RestoredCollection, SnapshotScope};
use super::{CreatedSnapshot, SnapshotInfo, SNAPSHOTS_DIR};
use crate::{config_file, Collection, Database, EngineError, Result, COLLECTIONS_DIR};

const JOURNAL: &str = ".restore-journal";
const JOURNAL_MAGIC: &[u8; 8] = b"QVRSTJ1\0";
const JOURNAL_VERSION: u32 = 1;
const STAGING_PREFIX: &str = "staging";
const OLD_PREFIX: &str = ".old-";
/// How long a restore waits for requests still using a collection it replaces.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// One restore at a time per process: the journal has a single name.
static RESTORE: Mutex<()> = Mutex::new(());

fn encode_journal(strings: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(JOURNAL_MAGIC);
    out.extend_from_slice(&JOURNAL_VERSION.to_le_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    for s in strings {
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_journal(data: &[u8], file: &Path) -> Result<Vec<String>> {
    let corrupt = |reason: &str| -> EngineError {
        StorageError::Corruption {
            file: file.to_path_buf(),
            offset: 0,
            reason: reason.to_string(),
        }
        .into()
    };
    if data.len() < 20 || &data[..8] != JOURNAL_MAGIC {
        return Err(corrupt("not a restore journal"));
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(corrupt("restore journal checksum mismatch"));
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    if u32_at(8) != JOURNAL_VERSION {
        return Err(StorageError::UnsupportedVersion {
            file: file.to_path_buf(),
            found: u32_at(8),
            supported: JOURNAL_VERSION,
        }
        .into());
    }
    let n = u32_at(12) as usize;
    let mut at = 16;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len_bytes = body
            .get(at..at + 2)
            .ok_or_else(|| corrupt("journal is short"))?;
        let len = u16::from_le_bytes([len_bytes[0], len_bytes[1]]) as usize;
        let s = body
            .get(at + 2..at + 2 + len)
            .ok_or_else(|| corrupt("journal is short"))?;
        let s = std::str::from_utf8(s).map_err(|_| corrupt("journal name is not UTF-8"))?;
        out.push(s.to_string());
        at += 2 + len;
    }
    if out.len() < 2 || !out[0].starts_with(&format!(".{STAGING_PREFIX}-")) {
        return Err(corrupt("journal names no staging directory or target"));
    }
    for t in &out[1..] {
        validate_name(t).map_err(|_| corrupt("journal names an invalid target"))?;
    }
    Ok(out)
}

/// Renames every staged target still waiting into place (idempotent).
fn roll_forward(dir: &Path, staging: &str, targets: &[String]) -> Result<()> {
    let staging = dir.join(staging);
    for t in targets {
        let new = staging.join(t);
        if !new.exists() {
            continue; // already renamed into place
        }
        let live = dir.join(t);
        if live.exists() {
            let old = dir.join(format!("{OLD_PREFIX}{t}"));
            if old.exists() {
                fs::remove_dir_all(&old).map_err(io(&old))?;
            }
            fs::rename(&live, &old).map_err(io(&live))?;
        }
        fs::rename(&new, &live).map_err(io(&new))?;
    }
    Ok(fsutil::fsync_dir(dir)?)
}

/// Start-up: finishes a committed restore, deletes every trace of an uncommitted one
/// and of interrupted snapshot builds. Runs before any collection is opened.
pub(crate) fn recover(root: &Path) -> Result<()> {
    let dir = root.join(COLLECTIONS_DIR);
    let journal = dir.join(JOURNAL);
    if journal.exists() {
        let data = fs::read(&journal).map_err(io(&journal))?;
        let strings = decode_journal(&data, &journal)?;
        tracing::warn!(targets = ?&strings[1..], "finishing an interrupted restore");
        roll_forward(&dir, &strings[0], &strings[1..])?;
        fsutil::remove_file_durable(&journal)?;
    }
    let staging = format!(".{STAGING_PREFIX}-");
    remove_hidden(&dir, |n| {
        n.starts_with(&staging) || n.starts_with(OLD_PREFIX)
    })?;
    let snaps = root.join(SNAPSHOTS_DIR);
    if snaps.exists() {
        remove_hidden(&snaps, |n| n.starts_with(".build-"))?;
        let mut scope_dirs = vec![snaps.join("database")];
        if let Ok(entries) = fs::read_dir(snaps.join("collections")) {
            scope_dirs.extend(entries.flatten().map(|e| e.path()));
        }
        for d in scope_dirs.iter().filter(|d| d.is_dir()) {
            fsutil::remove_temp_files(d)?;
        }
    }
    Ok(())
}

fn remove_hidden(dir: &Path, matches: impl Fn(&str) -> bool) -> Result<()> {
    let mut removed = false;
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches(&name) && entry.path().is_dir() {
            fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
            removed = true;
        }
    }
    if removed {
        fsutil::fsync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs every file and directory under `dir` (staged data must be durable before
/// the journal makes it live).
fn fsync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(io(&path))?.is_dir() {
            fsync_tree(&path)?;
        } else {
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
    }
    Ok(fsutil::fsync_dir(dir)?)
}

/// Takes `c` back once nobody else holds it and drops it (closing the collection).
fn close_exclusive(mut c: Arc<Collection>) -> std::result::Result<(), Arc<Collection>> {
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        match Arc::try_unwrap(c) {
            Ok(coll) => {
                drop(coll);
                return Ok(());
            }
            Err(back) if Instant::now() >= deadline => return Err(back),
            Err(back) => {
                c = back;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// A staged, verified collection waiting to be swapped in.
struct Staged {
    target: String,
    lsn: u64,
    documents: usize,
}

impl Database {
    /// Snapshots `scope` into a new stored archive `name` (default
    /// `snapshot-<unix ms>`) while writes continue.
    pub fn create_snapshot(
        &self,
        scope: &SnapshotScope,
        name: Option<&str>,
        compression: super::Compression,
    ) -> Result<CreatedSnapshot> {
        let name = name.map_or_else(|| format!("snapshot-{}", create::now_ms()), String::from);
        let dest = super::snapshot_path(&self.root, scope, &name)?;
        let collections = match scope {
            SnapshotScope::Collection(c) => vec![self.collection(c)?],
            SnapshotScope::Database => self.collections.lock().values().cloned().collect(),
        };
        if collections.is_empty() {
            return Err(EngineError::InvalidInput(
                "the database has no collection to snapshot".into(),
            ));
        }
        if dest.exists() {
            return Err(EngineError::AlreadyExists(format!("snapshot {name:?}")));
        }
        let build = create::build_dir(&self.root)?;
        let result = (|| {
            let captured = collections
                .iter()
                .map(|c| create::capture(c, &build))
                .collect::<Result<Vec<_>>>()?;
            let lsns = create::lsns(&captured);
            let size = create::write(captured, &dest, compression)?;
            // The archive is stored and complete without it: a failed record only
            // leaves the listing without this snapshot's LSN.
            let record = super::lsn_path(&dest);
            if let Err(e) = super::write_lsns(&record, &lsns) {
                tracing::warn!(error = %e, "cannot write snapshot LSN record");
            }
            Ok(CreatedSnapshot {
                name: name.clone(),
                lsn: lsns.iter().map(|c| c.lsn).max().unwrap_or(0),
                size,
                collections: lsns,
            })
        })();
        if let Err(e) = fs::remove_dir_all(&build) {
            tracing::warn!(dir = %build.display(), error = %e, "could not remove snapshot build directory");
        }
        result
    }

    /// The stored snapshots of `scope`, sorted by name.
    pub fn list_snapshots(&self, scope: &SnapshotScope) -> Result<Vec<SnapshotInfo>> {
        super::list(&self.root, scope)
    }

    /// Opens stored snapshot `name` for reading (a download); returns it and its size.
    pub fn open_snapshot(&self, scope: &SnapshotScope, name: &str) -> Result<(fs::File, u64)> {
        open_stored(&self.root, scope, name)
    }

    /// Deletes stored snapshot `name`.
    pub fn delete_snapshot(&self, scope: &SnapshotScope, name: &str) -> Result<()> {
        let path = super::snapshot_path(&self.root, scope, name)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                let record = super::lsn_path(&path);
                if let Err(e) = fs::remove_file(&record) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(StorageError::io(&record, e).into());
                    }
                }
                fsutil::fsync_dir(path.parent().unwrap_or(Path::new("."))).map_err(Into::into)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(EngineError::NotFound(format!("snapshot {name:?}")))
            }
            Err(e) => Err(StorageError::io(&path, e).into()),
        }
    }

    /// Restores stored snapshot `name` of `scope` (see [`Database::restore_archive`]).
    pub fn restore_snapshot(
        &self,
        scope: &SnapshotScope,
        name: &str,
        target: Option<&str>,
        limits: &RestoreLimits,
    ) -> Result<Vec<RestoredCollection>> {
        let (file, _) = open_stored(&self.root, scope, name)?;
        self.restore_archive(file, target, limits)
    }

    /// Restores the archive read from `input`: every collection in it replaces the
    /// live one of the same name, or `target` for a one-collection archive. Nothing
    /// live changes unless the whole archive verifies and opens; the swap is atomic
    /// across crashes. Requests to a replaced collection answer "not found" for the
    /// moment of the swap.
    pub fn restore_archive(
        &self,
        input: impl Read,
        target: Option<&str>,
        limits: &RestoreLimits,
    ) -> Result<Vec<RestoredCollection>> {
        if let Some(t) = target {
            validate_name(t)?;
        }
        let _one = RESTORE.lock();
        let dir = self.root.join(COLLECTIONS_DIR);
        let staging_name = unique(STAGING_PREFIX);
        let staging = dir.join(&staging_name);
        fs::create_dir(&staging).map_err(io(&staging))?;
        let result = self
            .stage(input, target, limits, &staging)
            .and_then(|staged| self.swap(&dir, &staging_name, staged));
        if staging.exists() {
            if let Err(e) = fs::remove_dir_all(&staging) {
                tracing::warn!(dir = %staging.display(), error = %e, "could not remove restore staging");
            }
        }
        result
    }

    /// Step 1: unpack, verify, open each collection in staging.
    fn stage(
        &self,
        input: impl Read,
        target: Option<&str>,
        limits: &RestoreLimits,
        staging: &Path,
    ) -> Result<Vec<Staged>> {
        let unpacked = staging.join("unpacked");
        fs::create_dir(&unpacked).map_err(io(&unpacked))?;
        let manifest: ArchiveManifest = unpack(input, &unpacked, limits)?;
        if target.is_some() && manifest.collections.len() != 1 {
            return Err(EngineError::InvalidInput(format!(
                "a target name needs a one-collection snapshot; this one holds {}",
                manifest.collections.len()
            )));
        }
        let mut staged = Vec::new();
        for c in &manifest.collections {
            let t = target.unwrap_or(&c.name).to_string();
            let from = unpacked.join(COLLECTIONS_DIR).join(&c.name);
            let to = staging.join(&t);
            fs::rename(&from, &to).map_err(io(&from))?;
            if config_file::load(&to).map_err(|e| bad(format!("collection.json: {e}")))? != c.config
            {
                return Err(bad(format!(
                    "collection {:?}: collection.json differs from the manifest's config",
                    c.name
                )));
            }
            let coll = Collection::open(&to, self.opts.collection.clone())
                .map_err(|e| bad(format!("collection {:?} does not open: {e}", c.name)))?;
            let (lsn, documents) = (coll.last_lsn(), coll.count());
            drop(coll);
            if lsn != c.lsn {
                return Err(bad(format!(
                    "collection {:?} recovers to LSN {lsn}, the manifest says {}",
                    c.name, c.lsn
                )));
            }
            staged.push(Staged {
                target: t,
                lsn,
                documents,
            });
        }
        fs::remove_dir_all(&unpacked).map_err(io(&unpacked))?;
        fsync_tree(staging)?;
        Ok(staged)
    }

    /// Steps 2 and 3: close what is replaced, commit through the journal, reopen.
    fn swap(
        &self,
        dir: &Path,
        staging: &str,
        staged: Vec<Staged>,
    ) -> Result<Vec<RestoredCollection>> {
        let targets: Vec<String> = staged.iter().map(|s| s.target.clone()).collect();
        let mut closed: Vec<String> = Vec::new();
        for t in &targets {
            let Some(live) = self.collections.lock().remove(t) else {
                continue;
            };
            if let Err(back) = close_exclusive(live) {
                self.collections.lock().insert(t.clone(), back);
                self.reopen(dir, &closed);
                return Err(EngineError::Busy(format!(
                    "collection {t:?} stayed in use for {}s; restore abandoned",
                    CLOSE_WAIT.as_secs()
                )));
            }
            closed.push(t.clone());
        }
        let mut map = self.collections.lock();
        if let Some(t) = targets.iter().find(|t| map.contains_key(*t)) {
            drop(map);
            self.reopen(dir, &closed);
            return Err(EngineError::AlreadyExists(format!(
                "collection {t:?} was created during the restore"
            )));
        }
        let mut strings: Vec<&str> = vec![staging];
        strings.extend(targets.iter().map(String::as_str));
        let journal = dir.join(JOURNAL);
        if let Err(e) = fsutil::write_atomic(&journal, &encode_journal(&strings)) {
            drop(map);
            self.reopen(dir, &closed);
            return Err(e.into());
        }
        // Committed: from here on, start-up finishes the swap if this process dies.
        roll_forward(dir, staging, &targets)?;
        fsutil::remove_file_durable(&journal)?;
        let mut out = Vec::new();
        for s in &staged {
            let coll = Collection::open(&dir.join(&s.target), self.opts.collection.clone())?;
            map.insert(s.target.clone(), Arc::new(coll));
            out.push(RestoredCollection {
                name: s.target.clone(),
                lsn: s.lsn,
                documents: s.documents,
            });
        }
        drop(map);
        for t in &targets {
            let old: PathBuf = dir.join(format!("{OLD_PREFIX}{t}"));
            if old.exists() {
                if let Err(e) = fs::remove_dir_all(&old) {
                    tracing::warn!(dir = %old.display(), error = %e, "could not remove replaced collection");
                }
            }
        }
        Ok(out)
    }

    /// Puts collections closed for an abandoned restore back into service.
    fn reopen(&self, dir: &Path, names: &[String]) {
        for t in names {
            match Collection::open(&dir.join(t), self.opts.collection.clone()) {
                Ok(c) => {
                    self.collections.lock().insert(t.clone(), Arc::new(c));
                }
                Err(e) => {
                    tracing::error!(collection = %t, error = %e, "could not reopen collection")
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_and_detects_damage() {
        let dir = Path::new("j");
        let bytes = encode_journal(&[".staging-1-2", "a", "b-c"]);
        assert_eq!(
            decode_journal(&bytes, dir).unwrap(),
            vec![".staging-1-2", "a", "b-c"]
        );
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode_journal(&b, dir).is_err(), "flip at {i}");
        }
        assert!(decode_journal(&bytes[..bytes.len() - 1], dir).is_err());
    }

    fn marker(dir: &Path) -> Option<String> {
        fs::read_to_string(dir.join("marker")).ok()
    }

    fn make(dir: &Path, what: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("marker"), what).unwrap();
    }

    /// Every point a restore of `t` (replacing) and `n` (new) can stop at: start-up
    /// leaves both entirely old (before the journal) or entirely new (after it).
    #[test]
    fn start_up_finishes_or_undoes_every_interrupted_swap() {
        // Steps: 0 staged only, 1 journal written, 2 t moved to .old, 3 staged t in
        // place, 4 staged n in place, 5 journal removed, 6 .old removed.
        for step in 0..=6 {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join(COLLECTIONS_DIR);
            let staging = ".staging-9-9";
            make(&dir.join("t"), "old");
            make(&dir.join(staging).join("t"), "new");
            make(&dir.join(staging).join("n"), "new");
            let targets = vec!["t".to_string(), "n".to_string()];
            if step >= 1 {
                let j = encode_journal(&[staging, "t", "n"]);
                fsutil::write_atomic(&dir.join(JOURNAL), &j).unwrap();
            }
            if step >= 2 {
                fs::rename(dir.join("t"), dir.join(".old-t")).unwrap();
            }
            if step >= 3 {
                fs::rename(dir.join(staging).join("t"), dir.join("t")).unwrap();
            }
            if step >= 4 {
                fs::rename(dir.join(staging).join("n"), dir.join("n")).unwrap();
            }
            if step >= 5 {
                fs::remove_file(dir.join(JOURNAL)).unwrap();
            }
            if step >= 6 {
                fs::remove_dir_all(dir.join(".old-t")).unwrap();
            }
            recover(root.path()).unwrap();
            if step == 0 {
                assert_eq!(marker(&dir.join("t")).as_deref(), Some("old"));
                assert!(!dir.join("n").exists());
            } else {
                for t in &targets {
                    assert_eq!(marker(&dir.join(t)).as_deref(), Some("new"), "step {step}");
                }
            }
            let names: Vec<String> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                names.iter().all(|n| !n.starts_with('.')),
                "step {step}: {names:?}"
            );
            // Recovery is idempotent.
            recover(root.path()).unwrap();
        }
    }
}
