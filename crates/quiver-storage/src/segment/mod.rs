//! Immutable, memory-mapped segments.
//!
//! A segment is a directory `segments/<id>/` written once by [`write_segment`] and
//! never modified afterwards, except for its tombstone bitmap ([`Tombstones`]), which
//! is replaced atomically. Files:
//!
//! | file          | contents                                              | format in   |
//! |---------------|-------------------------------------------------------|-------------|
//! | `vectors.f32` | `rows × dim` little-endian f32                        | `writer.rs` |
//! | `docs.bin`    | per row: LSN, id, text, metadata JSON                 | `writer.rs` |
//! | `docs.idx`    | `rows + 1` u64 offsets into `docs.bin`                | `writer.rs` |
//! | `META`        | footer: dims, rows, LSN range, length + crc32 of each | `meta.rs`   |
//! | `TOMBSTONES`  | deleted-row bitmap (optional)                         | `tombstones.rs` |
//!
//! [`Segment::open`] checks every file against the footer's checksums before use.
//! Rows are sorted by id, so `id -> row` is a binary search over an in-memory id
//! table built on open.
//!
//! Vector access is zero-copy: an mmap starts on a page boundary, so `vectors.f32`
//! is 4-byte aligned and on a little-endian host its bytes already are `f32`s in
//! native order; [`Segment::vector`] reinterprets them in place. On a big-endian host
//! (or if the mapping were ever misaligned) the floats are decoded into an owned
//! buffer instead, trading memory for portability.

mod bytes;
mod meta;
mod tombstones;
mod writer;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use self::bytes::corruption;
use self::meta::Meta;
pub use self::tombstones::{Tombstones, TOMBSTONES_FILE};
pub use self::writer::{write_segment, SegmentRow};
use crate::{Result, StorageError};

pub(crate) use self::bytes::{check_envelope, envelope, Reader as ByteReader};

const VECTORS_FILE: &str = "vectors.f32";
const DOCS_FILE: &str = "docs.bin";
const IDX_FILE: &str = "docs.idx";
const META_FILE: &str = "META";
/// Suffix of a segment directory still being written.
const TEMP_DIR_SUFFIX: &str = ".tmp";

/// Directory of segment `id` under `segments_dir`.
pub fn segment_path(segments_dir: &Path, id: u64) -> PathBuf {
    segments_dir.join(id.to_string())
}

fn temp_path(segments_dir: &Path, id: u64) -> PathBuf {
    segments_dir.join(format!("{id}{TEMP_DIR_SUFFIX}"))
}

/// Deletes every entry of `segments_dir` that is not the directory of a segment in
/// `live`: unfinished temp directories and segments a crash left unreferenced (written
/// but never added to the manifest, or replaced by compaction but not yet removed).
/// Returns the names removed.
pub fn remove_stale(segments_dir: &Path, live: &[u64]) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let entries = match fs::read_dir(segments_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(StorageError::io(segments_dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(segments_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = name.parse::<u64>().is_ok_and(|id| live.contains(&id));
        if keep {
            continue;
        }
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(|e| StorageError::io(&path, e))?
            .is_dir();
        let res = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        res.map_err(|e| StorageError::io(&path, e))?;
        removed.push(name);
    }
    if !removed.is_empty() {
        crate::fsutil::fsync_dir(segments_dir)?;
    }
    Ok(removed)
}

/// A read-only byte view of a whole file; empty files are not mapped (a zero-length
/// mapping is not portable).
#[derive(Debug)]
enum Bytes {
    Mapped(Mmap),
    Empty,
}

impl Bytes {
    fn open(path: &Path) -> Result<Bytes> {
        let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(path, e))?
            .len();
        if len == 0 {
            return Ok(Bytes::Empty);
        }
        // SAFETY: segment files are immutable once their directory is renamed into
        // place; Quiver never writes, truncates or reuses them, it only deletes whole
        // directories (which keeps existing mappings valid on the platforms it targets).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| StorageError::io(path, e))?;
        Ok(Bytes::Mapped(map))
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Empty => &[],
        }
    }
}

/// The vectors of a segment, mapped in place or decoded (see the module docs).
#[derive(Debug)]
enum Vectors {
    Mapped(Bytes),
    Owned(Vec<f32>),
}

impl Vectors {
    fn new(bytes: Bytes) -> Vectors {
        let raw = bytes.as_slice();
        let aligned = raw.as_ptr().align_offset(std::mem::align_of::<f32>()) == 0;
        if cfg!(target_endian = "little") && aligned {
            return Vectors::Mapped(bytes);
        }
        let floats = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Vectors::Owned(floats)
    }

    fn as_f32(&self) -> &[f32] {
        match self {
            Vectors::Mapped(bytes) => {
                let raw = bytes.as_slice();
                if raw.is_empty() {
                    return &[];
                }
                // SAFETY: `Vectors::new` only keeps the mapping when the host is
                // little-endian and the pointer is f32-aligned; every bit pattern is a
                // valid f32; the length is rounded down to whole floats; the slice
                // borrows `self`, which owns the mapping.
                unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<f32>(), raw.len() / 4) }
            }
            Vectors::Owned(v) => v,
        }
    }
}

/// One stored document, borrowed from the segment's mapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredDoc<'a> {
    pub id: &'a str,
    pub text: &'a str,
    pub metadata_json: &'a str,
    pub lsn: u64,
    pub vector: &'a [f32],
}

/// An open, verified, memory-mapped segment.
#[derive(Debug)]
pub struct Segment {
    dir: PathBuf,
    meta: Meta,
    vectors: Vectors,
    docs: Bytes,
    /// `rows + 1` offsets into `docs`.
    offsets: Vec<u64>,
    /// Row ids in row (= sorted) order.
    ids: Vec<Box<str>>,
    lsns: Vec<u64>,
}

fn utf8<'a>(b: &'a [u8], file: &Path, offset: u64) -> Result<&'a str> {
    std::str::from_utf8(b).map_err(|_| corruption(file, offset, "invalid UTF-8"))
}

impl Segment {
    /// Opens the segment in `dir`, verifying the footer and every file's checksum.
    pub fn open(dir: &Path) -> Result<Segment> {
        let meta_path = dir.join(META_FILE);
        let raw = fs::read(&meta_path).map_err(|e| StorageError::io(&meta_path, e))?;
        let meta = Meta::decode(&raw, &meta_path)?;
        let rows = meta.rows;
        let expect_vec = rows
            .checked_mul(u64::from(meta.dim))
            .and_then(|n| n.checked_mul(4));
        if expect_vec != Some(meta.vectors.len) || meta.idx.len != (rows + 1) * 8 {
            return Err(corruption(&meta_path, 0, "file lengths disagree with rows"));
        }

        let vec_path = dir.join(VECTORS_FILE);
        let vec_bytes = Bytes::open(&vec_path)?;
        meta.vectors.verify(vec_bytes.as_slice(), &vec_path)?;
        let docs_path = dir.join(DOCS_FILE);
        let docs = Bytes::open(&docs_path)?;
        meta.docs.verify(docs.as_slice(), &docs_path)?;
        let idx_path = dir.join(IDX_FILE);
        let idx = Bytes::open(&idx_path)?;
        meta.idx.verify(idx.as_slice(), &idx_path)?;

        let offsets: Vec<u64> = idx
            .as_slice()
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        let data = docs.as_slice();
        let mut ids: Vec<Box<str>> = Vec::with_capacity(rows as usize);
        let mut lsns = Vec::with_capacity(rows as usize);
        for (row, w) in offsets.windows(2).enumerate() {
            let (start, end) = (w[0], w[1]);
            let rec = usize::try_from(start)
                .ok()
                .zip(usize::try_from(end).ok())
                .filter(|&(s, e)| s <= e && e <= data.len())
                .map(|(s, e)| &data[s..e])
                .ok_or_else(|| corruption(&idx_path, row as u64 * 8, "offset out of range"))?;
            let (lsn, id, _, _) = parse_record(rec, &docs_path, start)?;
            if ids.last().is_some_and(|prev| **prev >= *id) {
                return Err(corruption(&docs_path, start, "ids not strictly sorted"));
            }
            ids.push(id.into());
            lsns.push(lsn);
        }
        if offsets.last().copied() != Some(data.len() as u64) {
            return Err(corruption(
                &idx_path,
                rows * 8,
                "index does not end at data end",
            ));
        }
        Ok(Segment {
            dir: dir.to_path_buf(),
            meta,
            vectors: Vectors::new(vec_bytes),
            docs,
            offsets,
            ids,
            lsns,
        })
    }

    /// The segment's id.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// The segment's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Floats per vector.
    pub fn dim(&self) -> usize {
        self.meta.dim as usize
    }

    /// Number of rows (deleted ones included).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the segment holds no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Smallest and largest row LSN (both 0 for an empty segment).
    pub fn lsn_range(&self) -> (u64, u64) {
        (self.meta.min_lsn, self.meta.max_lsn)
    }

    /// Row holding `id`, if any.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.ids.binary_search_by(|probe| (**probe).cmp(id)).ok()
    }

    /// Id of `row`. Panics if `row >= len()`.
    pub fn id_of(&self, row: usize) -> &str {
        &self.ids[row]
    }

    /// LSN of the write that produced `row`. Panics if `row >= len()`.
    pub fn lsn_of(&self, row: usize) -> u64 {
        self.lsns[row]
    }

    /// The vector of `row`, borrowed from the mapping. Panics if `row >= len()`.
    pub fn vector(&self, row: usize) -> &[f32] {
        let dim = self.dim();
        &self.vectors.as_f32()[row * dim..(row + 1) * dim]
    }

    /// Every vector, row-major.
    pub fn vectors(&self) -> &[f32] {
        self.vectors.as_f32()
    }

    /// The whole stored document of `row`. Panics if `row >= len()`.
    pub fn doc(&self, row: usize) -> Result<StoredDoc<'_>> {
        let (start, end) = (self.offsets[row], self.offsets[row + 1]);
        // Offsets were range-checked on open.
        let rec = &self.docs.as_slice()[start as usize..end as usize];
        let (lsn, id, text, metadata_json) = parse_record(rec, &self.dir.join(DOCS_FILE), start)?;
        Ok(StoredDoc {
            id,
            text,
            metadata_json,
            lsn,
            vector: self.vector(row),
        })
    }
}

/// Splits one `docs.bin` record into (lsn, id, text, metadata).
fn parse_record<'a>(
    rec: &'a [u8],
    file: &Path,
    at: u64,
) -> Result<(u64, &'a str, &'a str, &'a str)> {
    let mut r = bytes::Reader::new(rec, file);
    let lsn = r.u64()?;
    let id_len = r.u32()? as usize;
    let text_len = r.u32()? as usize;
    let meta_len = r.u32()? as usize;
    if 20 + id_len + text_len + meta_len != rec.len() {
        return Err(corruption(file, at, "record length disagrees with index"));
    }
    let id = utf8(r.bytes(id_len)?, file, at)?;
    let text = utf8(r.bytes(text_len)?, file, at)?;
    let meta = utf8(r.bytes(meta_len)?, file, at)?;
    Ok((lsn, id, text, meta))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn write_open_read() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = [1.0f32, -2.5, 3.25];
        let v2 = [0.0f32, 7.0, f32::MIN_POSITIVE];
        let mut rows = vec![
            SegmentRow {
                id: "zeta",
                text: "z text",
                metadata_json: "{\"a\":1}",
                lsn: 9,
                vector: &v1,
            },
            SegmentRow {
                id: "alpha",
                text: "",
                metadata_json: "{}",
                lsn: 4,
                vector: &v2,
            },
        ];
        let path = write_segment(dir.path(), 7, 3, &mut rows).unwrap();
        assert_eq!(path, segment_path(dir.path(), 7));
        let seg = Segment::open(&path).unwrap();
        assert_eq!((seg.id(), seg.dim(), seg.len()), (7, 3, 2));
        assert_eq!(seg.lsn_range(), (4, 9));
        assert_eq!(seg.find("alpha"), Some(0));
        assert_eq!(seg.find("zeta"), Some(1));
        assert_eq!(seg.find("beta"), None);
        assert_eq!(seg.vector(1), &v1);
        assert_eq!(seg.vector(0), &v2);
        let d = seg.doc(1).unwrap();
        assert_eq!(
            (d.id, d.text, d.metadata_json, d.lsn),
            ("zeta", "z text", "{\"a\":1}", 9)
        );
        assert_eq!(seg.lsn_of(0), 4);
        assert!(
            write_segment(dir.path(), 7, 3, &mut rows).is_err(),
            "id reused"
        );
    }

    #[test]
    fn rejects_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let v = [1.0f32, 2.0];
        let mut dup = vec![
            SegmentRow {
                id: "a",
                text: "",
                metadata_json: "{}",
                lsn: 1,
                vector: &v,
            },
            SegmentRow {
                id: "a",
                text: "",
                metadata_json: "{}",
                lsn: 2,
                vector: &v,
            },
        ];
        assert!(matches!(
            write_segment(dir.path(), 1, 2, &mut dup),
            Err(StorageError::InvalidInput(_))
        ));
        let mut short = vec![SegmentRow {
            id: "a",
            text: "",
            metadata_json: "{}",
            lsn: 1,
            vector: &v,
        }];
        assert!(matches!(
            write_segment(dir.path(), 1, 3, &mut short),
            Err(StorageError::InvalidInput(_))
        ));
        assert!(!segment_path(dir.path(), 1).exists());
    }

    #[test]
    fn empty_segment_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), 0, 4, &mut []).unwrap();
        let seg = Segment::open(&path).unwrap();
        assert!(seg.is_empty());
        assert_eq!(seg.vectors(), &[] as &[f32]);
    }

    #[test]
    fn stale_entries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let v = [1.0f32];
        for id in [1, 2] {
            let mut rows = vec![SegmentRow {
                id: "a",
                text: "",
                metadata_json: "{}",
                lsn: 1,
                vector: &v,
            }];
            write_segment(dir.path(), id, 1, &mut rows).unwrap();
        }
        fs::create_dir(temp_path(dir.path(), 3)).unwrap();
        fs::write(dir.path().join("junk"), b"x").unwrap();
        let mut removed = remove_stale(dir.path(), &[2]).unwrap();
        removed.sort();
        assert_eq!(removed, vec!["1", "3.tmp", "junk"]);
        assert!(Segment::open(&segment_path(dir.path(), 2)).is_ok());
    }
}
