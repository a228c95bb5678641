//! Taking a snapshot while writes continue.
//!
//! 1. Pin (`Collection::with_pinned`): with the collection's maintenance and text-commit
//!    locks held, and the writers' gate held exclusively only while the LSN is read, the
//!    snapshot's files are hard-linked (copied where links are unsupported) into a build
//!    directory: `collection.json`, `MANIFEST`, the manifest's segment directories, the
//!    text index files its last commit references, and the WAL files. Seals, compactions
//!    and text commits wait for the links (milliseconds); writers never do.
//! 2. Build, with no lock held: the archive is written from the links. Segment files
//!    never change once written and tombstones and `MANIFEST` are replaced by rename, so
//!    a link keeps the pinned version; WAL files are append-only and are cut after the
//!    pinned LSN's record, parsed with the WAL's own framing.
//! 3. Publish: the archive is written to a temp file, synced, and linked to its final
//!    name, which fails if that name exists; the temp file and links are then removed.
//!
//! The pinned state equals what a crash at that instant would leave on disk with the
//! WAL ending at the LSN: tombstones on disk cover only records at or below it, the
//! text index's commit lies between the checkpoint and the LSN, and the WAL holds every
//! record after the checkpoint. Opening it therefore recovers exactly to the LSN.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use quiver_storage::manifest::MANIFEST_FILE;
use quiver_storage::segment::segment_path;
use quiver_storage::wal::format::{self, FileHeader, HEADER_LEN};
use quiver_storage::{fsutil, StorageError};

use super::archive::{ArchiveCollection, Writer};
use super::{io, unique, CollectionLsn, Compression, SNAPSHOTS_DIR};
use crate::collection::{Pinned, SEGMENTS_DIR, TEXT_DIR, WAL_DIR};
use crate::{Collection, Result, CONFIG_FILE};

/// Files of tantivy's that are never part of a snapshot (locks held by a writer).
const TEXT_SKIP: [&str; 2] = [".tantivy-writer.lock", ".tantivy-meta.lock"];

/// One file to archive: where its link lives and how many bytes of it count.
struct Planned {
    entry: String,
    src: PathBuf,
    len: u64,
}

/// A collection's linked files, ready to be archived.
pub(crate) struct Captured {
    pub(crate) collection: ArchiveCollection,
    files: Vec<Planned>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    if fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    fs::copy(src, dst).map_err(io(src))?;
    Ok(())
}

/// Links every regular file under `src` (recursively) into `dst`, skipping temp files.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst).map_err(io(dst))?;
    for entry in fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let name = entry.file_name();
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            link_tree(&path, &dst.join(&name))?;
        } else if kind.is_file() && !name.to_string_lossy().ends_with(fsutil::TEMP_SUFFIX) {
            link_or_copy(&path, &dst.join(&name))?;
        }
    }
    Ok(())
}

/// Segment ids (tantivy's, without dashes) referenced by a `meta.json`.
fn text_segments(meta: &[u8], file: &Path) -> Result<Vec<String>> {
    let corrupt = |reason: String| StorageError::Corruption {
        file: file.to_path_buf(),
        offset: 0,
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_slice(meta).map_err(|e| corrupt(format!("unreadable: {e}")))?;
    let segs = v
        .get("segments")
        .and_then(|s| s.as_array())
        .ok_or_else(|| corrupt("no segment list".into()))?;
    segs.iter()
        .map(|s| {
            s.get("segment_id")
                .and_then(|i| i.as_str())
                .map(|i| i.replace('-', ""))
                .ok_or_else(|| corrupt("segment without an id".into()).into())
        })
        .collect()
}

/// Links the text index's committed files. Text commits are held off by the pin, but a
/// background merge may still replace `meta.json`; the files its unchanged version
/// references are never deleted, so a `meta.json` read the same before and after the
/// links proves the linked set complete.
fn link_text(src: &Path, dst: &Path) -> Result<()> {
    let meta_path = src.join("meta.json");
    for _ in 0..50 {
        if dst.exists() {
            fs::remove_dir_all(dst).map_err(io(dst))?;
        }
        fs::create_dir_all(dst).map_err(io(dst))?;
        let before = fs::read(&meta_path).map_err(io(&meta_path))?;
        let segments = text_segments(&before, &meta_path)?;
        for entry in fs::read_dir(src).map_err(io(src))? {
            let entry = entry.map_err(io(src))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.split('.').next().unwrap_or("");
            let wanted = name == ".managed.json" || segments.iter().any(|s| s == stem);
            if !wanted || TEXT_SKIP.contains(&name.as_str()) || !entry.path().is_file() {
                continue;
            }
            match fs::hard_link(entry.path(), dst.join(&name)) {
                Ok(()) => {}
                // Merged away meanwhile: the meta.json check below notices.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => {
                    fs::copy(entry.path(), dst.join(&name)).map_err(io(&entry.path()))?;
                }
            }
        }
        let after = fs::read(&meta_path).map_err(io(&meta_path))?;
        if before == after {
            fs::write(dst.join("meta.json"), &before).map_err(io(dst))?;
            return Ok(());
        }
    }
    Err(StorageError::io(
        src,
        std::io::Error::other("text index kept changing; try the snapshot again"),
    )
    .into())
}

/// Length of the prefix of WAL file `path` that holds only records `<= lsn`, or
/// `None` when its first record is above `lsn`.
fn wal_prefix(path: &Path, lsn: u64) -> Result<Option<u64>> {
    let buf = fs::read(path).map_err(io(path))?;
    let header = FileHeader::decode(&buf, path)?;
    if header.first_lsn > lsn {
        return Ok(None);
    }
    let mut at = HEADER_LEN;
    while let Some(rec) = format::decode_record(&buf, at, header.seed) {
        if rec.lsn > lsn {
            break;
        }
        at += rec.size;
    }
    Ok(Some(at as u64))
}

/// Links the pinned files of `coll` into `build` (called with the pin held).
fn link_pinned(coll: &Collection, pinned: &Pinned, build: &Path) -> Result<()> {
    let src = coll.dir();
    fs::create_dir_all(build).map_err(io(build))?;
    for f in [CONFIG_FILE, MANIFEST_FILE] {
        fs::copy(src.join(f), build.join(f)).map_err(io(&src.join(f)))?;
    }
    for &id in &pinned.manifest.segments {
        let seg = segment_path(&src.join(SEGMENTS_DIR), id);
        let name = seg
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        link_tree(&seg, &build.join(SEGMENTS_DIR).join(name))?;
    }
    let text = src.join(TEXT_DIR);
    if text.join("meta.json").exists() {
        link_text(&text, &build.join(TEXT_DIR))?;
    }
    let wal = build.join(WAL_DIR);
    fs::create_dir_all(&wal).map_err(io(&wal))?;
    for f in &pinned.wal_files {
        if let Some(name) = f.file_name() {
            link_or_copy(f, &wal.join(name))?;
        }
    }
    Ok(())
}

/// Plans the entries of the linked collection in `build` (sorted, WAL files cut).
fn plan(name: &str, build: &Path, lsn: u64) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    let mut stack = vec![build.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            if entry.file_type().map_err(io(&path))?.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(build)
                .map_err(|_| StorageError::io(&path, std::io::Error::other("outside build")))?;
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let len = if rel.starts_with(&format!("{WAL_DIR}/")) {
                match wal_prefix(&path, lsn)? {
                    Some(n) => n,
                    None => continue,
                }
            } else {
                entry.metadata().map_err(io(&path))?.len()
            };
            out.push(Planned {
                entry: format!("collections/{name}/{rel}"),
                src: path,
                len,
            });
        }
    }
    out.sort_by(|a, b| a.entry.cmp(&b.entry));
    Ok(out)
}

/// Pins `coll` and links its files under `build`; returns what to archive.
pub(crate) fn capture(coll: &Collection, build: &Path) -> Result<Captured> {
    let dir = build.join(coll.name());
    let lsn = coll.with_pinned(|pinned| {
        link_pinned(coll, pinned, &dir)?;
        Ok(pinned.lsn)
    })?;
    Ok(Captured {
        collection: ArchiveCollection {
            name: coll.name().to_string(),
            lsn,
            config: coll.config().clone(),
        },
        files: plan(coll.name(), &dir, lsn)?,
    })
}

/// Writes `captured` as archive `dest` (which must not exist) and returns its size.
pub(crate) fn write(captured: Vec<Captured>, dest: &Path, compression: Compression) -> Result<u64> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fsutil::create_dir_durable(dir)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{}-{name}{}", unique("new"), fsutil::TEMP_SUFFIX));
    let result = write_tmp(captured, &tmp, compression).and_then(|size| {
        // A link fails if the name is taken, so two creates never overwrite each other.
        fs::hard_link(&tmp, dest).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                crate::EngineError::AlreadyExists(format!("snapshot {name:?}"))
            } else {
                StorageError::io(dest, e).into()
            }
        })?;
        Ok(size)
    });
    let _ = fs::remove_file(&tmp);
    let size = result?;
    fsutil::fsync_dir(dir)?;
    Ok(size)
}

fn write_tmp(captured: Vec<Captured>, tmp: &Path, compression: Compression) -> Result<u64> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(io(tmp))?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let file = match compression {
        Compression::None => fill(Writer::new(out), captured)?,
        Compression::Zstd => {
            let enc = zstd::Encoder::new(out, 3).map_err(io(tmp))?;
            fill(Writer::new(enc), captured)?
                .finish()
                .map_err(io(tmp))?
        }
    };
    let file = file
        .into_inner()
        .map_err(|e| StorageError::io(tmp, e.into_error()))?;
    file.sync_all().map_err(io(tmp))?;
    Ok(file.metadata().map_err(io(tmp))?.len())
}

fn fill<W: Write>(mut w: Writer<W>, captured: Vec<Captured>) -> Result<W> {
    let mut collections = Vec::new();
    for c in captured {
        for f in &c.files {
            w.add_file(&f.entry, &f.src, f.len)?;
        }
        collections.push(c.collection);
    }
    w.finish(collections, now_ms())
}

/// A fresh build directory under `<root>/snapshots/`.
pub(crate) fn build_dir(root: &Path) -> Result<PathBuf> {
    let dir = root.join(SNAPSHOTS_DIR).join(unique("build"));
    fsutil::create_dir_durable(&dir)?;
    Ok(dir)
}

/// The LSNs of `captured`, in order.
pub(crate) fn lsns(captured: &[Captured]) -> Vec<CollectionLsn> {
    captured
        .iter()
        .map(|c| CollectionLsn {
            name: c.collection.name.clone(),
            lsn: c.collection.lsn,
        })
        .collect()
}
