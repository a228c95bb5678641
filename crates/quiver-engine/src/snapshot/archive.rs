//! The archive itself: its manifest, writing entries with their SHA-256, and unpacking
//! an untrusted archive into a staging directory with every check a restore needs.
//!
//! `quiver-snapshot.json`, the last entry:
//!
//! | field | meaning |
//! |-------|---------|
//! | `format` | archive format, currently 1; other values are refused |
//! | `quiver_version` | version of the Quiver build that wrote it |
//! | `created_unix_ms` | when the snapshot was taken |
//! | `collections[]` | `name`, `lsn` (the checkpoint), `config` (the collection's settings) |
//! | `files[]` | `path`, `size` in bytes, `sha256` (lower-case hex) of every other entry |
//!
//! Unpacking refuses, before anything live changes: entries that are not regular files
//! (links, directories, devices), paths that are absolute, contain `..`, `.`, empty or
//! non-UTF-8 components, or fall outside `collections/<name>/`; duplicate entries;
//! entries after the manifest; files missing from or unknown to the manifest; any size
//! or checksum mismatch; and archives over the [`RestoreLimits`].

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use quiver_core::{validate_name, CollectionConfig};
use quiver_storage::StorageError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{io, RestoreLimits};
use crate::{EngineError, Result};

/// Name of the manifest entry, always the archive's last.
pub const MANIFEST_ENTRY: &str = "quiver-snapshot.json";
/// The archive format this build writes and reads.
pub const ARCHIVE_FORMAT: u32 = 1;
/// Largest manifest accepted (it lists every file; a bound keeps parsing cheap).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Deepest path accepted inside the archive.
const MAX_PATH_DEPTH: usize = 8;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The archive's table of contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveManifest {
    pub format: u32,
    pub quiver_version: String,
    pub created_unix_ms: u64,
    pub collections: Vec<ArchiveCollection>,
    pub files: Vec<ArchiveFile>,
}

/// One collection in an archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveCollection {
    pub name: String,
    pub lsn: u64,
    pub config: CollectionConfig,
}

/// One file in an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

pub(crate) fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidSnapshot(msg.into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h
}

/// Writes archive entries, remembering each file's size and SHA-256 for the manifest.
pub(crate) struct Writer<W: Write> {
    builder: tar::Builder<W>,
    files: Vec<ArchiveFile>,
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        Writer {
            builder,
            files: Vec::new(),
        }
    }

    /// Appends the first `len` bytes of `src` as entry `path`; fails if the file is
    /// shorter (it changed under the snapshot, which the pinning rules out).
    pub(crate) fn add_file(&mut self, path: &str, src: &Path, len: u64) -> Result<()> {
        let file = fs::File::open(src).map_err(io(src))?;
        let mut reader = Hashing {
            inner: file.take(len),
            hasher: Sha256::new(),
            count: 0,
        };
        let mut header = file_header(len);
        self.builder
            .append_data(&mut header, path, &mut reader)
            .map_err(io(src))?;
        if reader.count != len {
            return Err(StorageError::Corruption {
                file: src.to_path_buf(),
                offset: reader.count,
                reason: format!("file shrank while archived (expected {len} bytes)"),
            }
            .into());
        }
        self.files.push(ArchiveFile {
            path: path.to_string(),
            size: len,
            sha256: hex(&reader.hasher.finalize()),
        });
        Ok(())
    }

    /// Appends the manifest (listing every file added) and returns the finished stream.
    pub(crate) fn finish(
        mut self,
        collections: Vec<ArchiveCollection>,
        created_unix_ms: u64,
    ) -> Result<W> {
        let manifest = ArchiveManifest {
            format: ARCHIVE_FORMAT,
            quiver_version: env!("CARGO_PKG_VERSION").to_string(),
            created_unix_ms,
            collections,
            files: std::mem::take(&mut self.files),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| StorageError::Codec(format!("snapshot manifest: {e}")))?;
        let mut header = file_header(json.len() as u64);
        let here = Path::new(MANIFEST_ENTRY);
        self.builder
            .append_data(&mut header, MANIFEST_ENTRY, json.as_slice())
            .map_err(io(here))?;
        self.builder.into_inner().map_err(io(here))
    }
}

/// Checks an entry path: relative, `/`-separated, only plain UTF-8 components.
fn check_path(raw: &[u8]) -> Result<String> {
    let path = std::str::from_utf8(raw)
        .map_err(|_| bad("archive entry path is not UTF-8"))?
        .to_string();
    let shown: String = path.chars().take(200).collect();
    if path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        return Err(bad(format!("archive entry {shown:?} has an unsafe path")));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > MAX_PATH_DEPTH
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(bad(format!("archive entry {shown:?} has an unsafe path")));
    }
    Ok(path)
}

/// The collection an entry belongs to: `collections/<name>/<rest>`.
fn collection_of(path: &str) -> Result<&str> {
    let mut parts = path.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("collections"), Some(name), Some(_)) if validate_name(name).is_ok() => Ok(name),
        _ => Err(bad(format!(
            "archive entry {path:?} is outside collections/<name>/"
        ))),
    }
}

/// Counts bytes read from the upload and stops past the limit.
struct Limited<R> {
    inner: R,
    count: u64,
    max: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.max {
            return Err(std::io::Error::other(LimitExceeded));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct LimitExceeded;

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("archive exceeds the size limit")
    }
}

impl std::error::Error for LimitExceeded {}

/// Maps a read error of the archive stream: over the limit, or malformed/truncated.
fn read_err(e: std::io::Error, max: u64) -> EngineError {
    if e.get_ref().is_some_and(|i| i.is::<LimitExceeded>()) {
        EngineError::TooLarge(format!("snapshot archive is larger than {max} bytes"))
    } else {
        bad(format!("truncated or malformed archive: {e}"))
    }
}

/// Unpacks the archive read from `input` under `dest` (which must exist and be empty)
/// and verifies it completely; returns its manifest.
pub(crate) fn unpack(
    input: impl Read,
    dest: &Path,
    limits: &RestoreLimits,
) -> Result<ArchiveManifest> {
    let max = limits.max_bytes;
    let mut raw = BufReader::new(Limited {
        inner: input,
        count: 0,
        max,
    });
    let head = raw.fill_buf().map_err(|e| read_err(e, max))?;
    if head.is_empty() {
        return Err(bad("empty archive"));
    }
    let stream: Box<dyn Read + '_> = if head.starts_with(&ZSTD_MAGIC) {
        let dec = zstd::Decoder::with_buffer(raw).map_err(|e| read_err(e, max))?;
        // The unpacked size has the same bound: a small bomb cannot fill the disk.
        Box::new(Limited {
            inner: dec,
            count: 0,
            max,
        })
    } else {
        Box::new(raw)
    };
    let mut archive = tar::Archive::new(stream);
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<ArchiveManifest> = None;
    let mut entries_n = 0u64;
    for entry in archive.entries().map_err(|e| read_err(e, max))? {
        let mut entry = entry.map_err(|e| read_err(e, max))?;
        entries_n += 1;
        if entries_n > limits.max_entries {
            return Err(EngineError::TooLarge(format!(
                "snapshot archive has more than {} entries",
                limits.max_entries
            )));
        }
        let path = check_path(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            return Err(bad(format!(
                "archive entry {path:?} is not a regular file ({kind:?}); links and other entry types are refused"
            )));
        }
        if manifest.is_some() {
            return Err(bad(format!(
                "archive entry {path:?} follows the manifest, which must be last"
            )));
        }
        let size = entry.header().size().map_err(|e| read_err(e, max))?;
        if size > max {
            return Err(EngineError::TooLarge(format!(
                "archive entry {path:?} is larger than {max} bytes"
            )));
        }
        if path == MANIFEST_ENTRY {
            if size > MAX_MANIFEST_BYTES {
                return Err(bad("snapshot manifest is too large"));
            }
            let mut buf = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut buf).map_err(|e| read_err(e, max))?;
            let m: ArchiveManifest = serde_json::from_slice(&buf)
                .map_err(|e| bad(format!("unreadable snapshot manifest: {e}")))?;
            manifest = Some(m);
            continue;
        }
        collection_of(&path)?;
        if seen.contains_key(&path) {
            return Err(bad(format!("archive entry {path:?} appears twice")));
        }
        let target = dest.join(&path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(io(&target))?;
        let mut reader = Hashing {
            inner: &mut entry,
            hasher: Sha256::new(),
            count: 0,
        };
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = reader.read(&mut buf).map_err(|e| read_err(e, max))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(io(&target))?;
        }
        if reader.count != size {
            return Err(bad(format!("archive entry {path:?} is truncated")));
        }
        out.sync_all().map_err(io(&target))?;
        seen.insert(path, (size, hex(&reader.hasher.finalize())));
    }
    let manifest = manifest.ok_or_else(|| {
        bad("archive has no quiver-snapshot.json manifest (truncated or not a Quiver snapshot)")
    })?;
    verify(&manifest, &seen)?;
    Ok(manifest)
}

/// Compares what was unpacked with the manifest.
fn verify(m: &ArchiveManifest, seen: &BTreeMap<String, (u64, String)>) -> Result<()> {
    if m.format != ARCHIVE_FORMAT {
        return Err(bad(format!(
            "snapshot format {} is not supported (this build reads {ARCHIVE_FORMAT})",
            m.format
        )));
    }
    if m.collections.is_empty() {
        return Err(bad("snapshot holds no collection"));
    }
    let mut names = std::collections::BTreeSet::new();
    for c in &m.collections {
        validate_name(&c.name).map_err(|e| bad(format!("snapshot collection name: {e}")))?;
        if !names.insert(c.name.as_str()) {
            return Err(bad(format!("collection {:?} listed twice", c.name)));
        }
        for required in [crate::CONFIG_FILE, quiver_storage::manifest::MANIFEST_FILE] {
            let p = format!("collections/{}/{required}", c.name);
            if !m.files.iter().any(|f| f.path == p) {
                return Err(bad(format!("snapshot lacks {p}")));
            }
        }
    }
    let mut listed = BTreeMap::new();
    for f in &m.files {
        check_path(f.path.as_bytes())?;
        let owner = collection_of(&f.path)?;
        if !names.contains(owner) {
            return Err(bad(format!("{:?} belongs to no listed collection", f.path)));
        }
        if listed.insert(f.path.as_str(), f).is_some() {
            return Err(bad(format!("{:?} listed twice in the manifest", f.path)));
        }
        match seen.get(&f.path) {
            None => {
                return Err(bad(format!(
                    "file {:?} is missing from the archive",
                    f.path
                )))
            }
            Some((size, _)) if *size != f.size => {
                return Err(bad(format!(
                    "file {:?} has {size} bytes, the manifest says {}",
                    f.path, f.size
                )))
            }
            Some((_, sha)) if !sha.eq_ignore_ascii_case(&f.sha256) => {
                return Err(bad(format!("file {:?} fails its SHA-256 checksum", f.path)))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = seen.keys().find(|p| !listed.contains_key(p.as_str())) {
        return Err(bad(format!(
            "archive entry {extra:?} is not listed in the manifest"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        for ok in [
            "collections/a/MANIFEST",
            "collections/a-b/segments/1/hnsw/x",
        ] {
            assert_eq!(check_path(ok.as_bytes()).unwrap(), ok);
            collection_of(ok).unwrap();
        }
        for bad_path in [
            "/etc/passwd",
            "collections/../x",
            "collections/a/./b",
            "collections//a",
            "a\\b",
            "collections/a/b/c/d/e/f/g/h/i",
        ] {
            assert!(check_path(bad_path.as_bytes()).is_err(), "{bad_path}");
        }
        assert!(check_path(&[0xff, 0xfe]).is_err());
        for outside in [
            "MANIFEST",
            "collections/a",
            "other/a/b",
            "collections/a.b/c",
        ] {
            assert!(collection_of(outside).is_err(), "{outside}");
        }
    }
}
