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
//! | `chunks.f32`  | `chunks × dim` f32, when documents have chunks        | `chunks.rs` |
//! | `chunks.idx`  | per chunk: row, byte range of its text                | `chunks.rs` |
//!
//! Searches address vectors by *node*: a chunk in a segment with chunks, else a row
//! (one vector per document). [`Segment::nodes`], [`Segment::node_vectors`] and
//! [`Segment::node_row`] hide which.
//!
//! [`Segment::open`] checks every file against the footer's lengths and checksums
//! before use, reading the files with `read()` rather than through the mappings
//! (`verify.rs` says why), then maps them. An open segment holds no per-row state in
//! the heap: vectors are read in place (`mapped.rs`), ids, LSNs and offsets straight
//! from the mapped document store (`docs.rs`). Rows are sorted by id, so `id -> row`
//! is a binary search over the mapped records.

mod bytes;
mod chunks;
mod docs;
mod mapped;
mod meta;
mod tombstones;
mod verify;
mod writer;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use self::bytes::corruption;
use self::chunks::ChunkTable;
use self::docs::DocTable;
use self::mapped::{Bytes, Vectors};
use self::meta::{FileSum, Meta};
pub use self::tombstones::{Tombstones, TOMBSTONES_FILE};
pub use self::writer::{write_segment, SegmentChunk, SegmentRow};
use crate::{Result, StorageError};

pub(crate) use self::bytes::{check_envelope, envelope, Reader as ByteReader};

const VECTORS_FILE: &str = "vectors.f32";
const DOCS_FILE: &str = "docs.bin";
const IDX_FILE: &str = "docs.idx";
const META_FILE: &str = "META";
const CHUNK_VECTORS_FILE: &str = "chunks.f32";
const CHUNKS_IDX_FILE: &str = "chunks.idx";
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

/// Verifies and maps the chunk files a version 2 footer lists.
fn open_chunks(dir: &Path, meta: &Meta) -> Result<Option<ChunkTable>> {
    let Some(sums) = meta.chunks else {
        return Ok(None);
    };
    let meta_path = dir.join(META_FILE);
    let count = usize::try_from(sums.count)
        .map_err(|_| corruption(&meta_path, 84, "too many chunks for this host"))?;
    let expect_vec = sums
        .count
        .checked_mul(u64::from(meta.dim))
        .and_then(|n| n.checked_mul(4));
    let expect_table = sums.count.checked_mul(chunks::ENTRY as u64);
    if expect_vec != Some(sums.vectors.len) || expect_table != Some(sums.table.len) {
        return Err(corruption(
            &meta_path,
            84,
            "chunk file lengths disagree with chunks",
        ));
    }
    let (vec_file, vec_path) = open_file(dir, CHUNK_VECTORS_FILE, sums.vectors)?;
    verify::check_plain(&vec_file, &vec_path, sums.vectors)?;
    let (table_file, table_path) = open_file(dir, CHUNKS_IDX_FILE, sums.table)?;
    let mut reader = verify::SumReader::new(&table_file, &table_path, sums.table);
    let walked = chunks::check_table(&mut reader, &table_path, sums.count, meta.rows);
    reader.finish()?;
    walked?;
    Ok(Some(ChunkTable::new(
        Vectors::new(Bytes::map(&vec_file, sums.vectors.len, &vec_path)?),
        Bytes::map(&table_file, sums.table.len, &table_path)?,
        count,
    )))
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

/// An open, verified, memory-mapped segment. It owns its mappings and a few fixed-size
/// fields; nothing in it grows with the number of rows.
#[derive(Debug)]
pub struct Segment {
    dir: PathBuf,
    meta: Meta,
    vectors: Vectors,
    docs: DocTable,
    chunks: Option<ChunkTable>,
}

/// One chunk of a stored document, borrowed from the segment's mapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredChunk<'a> {
    pub start: usize,
    pub end: usize,
    pub vector: &'a [f32],
}

/// Opens `name` in `dir` and checks its length against the footer's.
fn open_file(dir: &Path, name: &str, sum: FileSum) -> Result<(File, PathBuf)> {
    let path = dir.join(name);
    let file = File::open(&path).map_err(|e| StorageError::io(&path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io(&path, e))?
        .len();
    if len != sum.len {
        return Err(corruption(
            &path,
            len,
            format!("length {len} differs from footer {}", sum.len),
        ));
    }
    Ok((file, path))
}

impl Segment {
    /// Opens the segment in `dir`: decodes the footer, verifies every file's length and
    /// checksum and the document store's structure in one buffered read of each file
    /// (see `verify.rs`), then maps the files. The mappings are not read, so opening
    /// adds nothing to the process's resident memory beyond a few small buffers that
    /// are freed before it returns.
    pub fn open(dir: &Path) -> Result<Segment> {
        let meta_path = dir.join(META_FILE);
        let raw = fs::read(&meta_path).map_err(|e| StorageError::io(&meta_path, e))?;
        let meta = Meta::decode(&raw, &meta_path)?;
        let rows = meta.rows;
        let expect_vec = rows
            .checked_mul(u64::from(meta.dim))
            .and_then(|n| n.checked_mul(4));
        let expect_idx = rows.checked_add(1).and_then(|n| n.checked_mul(8));
        let rows_usize = usize::try_from(rows).ok();
        if expect_vec != Some(meta.vectors.len) || expect_idx != Some(meta.idx.len) {
            return Err(corruption(&meta_path, 0, "file lengths disagree with rows"));
        }
        let rows_usize =
            rows_usize.ok_or_else(|| corruption(&meta_path, 24, "too many rows for this host"))?;

        let (vec_file, vec_path) = open_file(dir, VECTORS_FILE, meta.vectors)?;
        verify::check_plain(&vec_file, &vec_path, meta.vectors)?;
        let (docs_file, docs_path) = open_file(dir, DOCS_FILE, meta.docs)?;
        let (idx_file, idx_path) = open_file(dir, IDX_FILE, meta.idx)?;
        let files = verify::DocFiles {
            docs: &docs_file,
            docs_path: &docs_path,
            idx: &idx_file,
            idx_path: &idx_path,
        };
        verify::check_docs(&files, &meta)?;

        let chunks = open_chunks(dir, &meta)?;
        let vectors = Vectors::new(Bytes::map(&vec_file, meta.vectors.len, &vec_path)?);
        let docs = Bytes::map(&docs_file, meta.docs.len, &docs_path)?;
        let idx = Bytes::map(&idx_file, meta.idx.len, &idx_path)?;
        Ok(Segment {
            dir: dir.to_path_buf(),
            meta,
            vectors,
            docs: DocTable::new(docs, idx, rows_usize),
            chunks,
        })
    }

    /// Vectors the searches address: chunks when the segment has them, else rows.
    pub fn nodes(&self) -> usize {
        self.chunks.as_ref().map_or(self.len(), ChunkTable::len)
    }

    /// Every node's vector, node-major.
    pub fn node_vectors(&self) -> &[f32] {
        match &self.chunks {
            Some(c) => c.vectors(),
            None => self.vectors(),
        }
    }

    /// The vector of `node`. Panics if `node >= nodes()`.
    pub fn node_vector(&self, node: usize) -> &[f32] {
        let dim = self.dim();
        &self.node_vectors()[node * dim..(node + 1) * dim]
    }

    /// The row `node` belongs to. Panics if `node >= nodes()`.
    pub fn node_row(&self, node: usize) -> usize {
        self.chunks.as_ref().map_or(node, |c| c.row(node))
    }

    /// The nodes of `row`, in text order (just `row` without chunks).
    pub fn row_nodes(&self, row: usize) -> std::ops::Range<usize> {
        match &self.chunks {
            Some(c) => c.of_row(row),
            None => row..row + 1,
        }
    }

    /// Whether the segment stores chunks.
    pub fn has_chunks(&self) -> bool {
        self.chunks.is_some()
    }

    /// The byte range of `row`'s text that `node` covers (the whole text without
    /// chunks). Panics if `node >= nodes()`.
    pub fn node_span(&self, node: usize) -> std::ops::Range<usize> {
        match &self.chunks {
            Some(c) => c.span(node),
            None => 0..self.docs.text_len(node),
        }
    }

    /// The chunks of `row` as written: empty when the row has a single chunk over its
    /// whole text (a document embedded whole) or the segment stores none.
    pub fn chunks(&self, row: usize) -> Vec<StoredChunk<'_>> {
        let nodes = self.row_nodes(row);
        if !self.has_chunks() || nodes.len() < 2 {
            return Vec::new();
        }
        nodes
            .map(|n| {
                let span = self.node_span(n);
                StoredChunk {
                    start: span.start,
                    end: span.end,
                    vector: self.node_vector(n),
                }
            })
            .collect()
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
        self.docs.len()
    }

    /// True when the segment holds no rows.
    pub fn is_empty(&self) -> bool {
        self.docs.len() == 0
    }

    /// Smallest and largest row LSN (both 0 for an empty segment).
    pub fn lsn_range(&self) -> (u64, u64) {
        (self.meta.min_lsn, self.meta.max_lsn)
    }

    /// Row holding `id`, if any: a binary search whose probes read ids from the
    /// mapped records (O(log rows) record reads).
    pub fn find(&self, id: &str) -> Option<usize> {
        self.docs.find(id)
    }

    /// Id of `row`, read from the mapped record. Infallible because open checked every
    /// id. Panics if `row >= len()`.
    pub fn id_of(&self, row: usize) -> &str {
        self.docs.id(row)
    }

    /// LSN of the write that produced `row`, read from the mapped record. Panics if
    /// `row >= len()`.
    pub fn lsn_of(&self, row: usize) -> u64 {
        self.docs.lsn(row)
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

    /// The whole stored document of `row`; fails if its text or metadata is not UTF-8
    /// (checked here, not on open). Panics if `row >= len()`.
    pub fn doc(&self, row: usize) -> Result<StoredDoc<'_>> {
        let parts = self.docs.doc(row, &self.dir.join(DOCS_FILE))?;
        Ok(StoredDoc {
            id: parts.id,
            text: parts.text,
            metadata_json: parts.metadata_json,
            lsn: parts.lsn,
            vector: self.vector(row),
        })
    }
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
                chunks: &[],
                id: "zeta",
                text: "z text",
                metadata_json: "{\"a\":1}",
                lsn: 9,
                vector: &v1,
            },
            SegmentRow {
                chunks: &[],
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
                chunks: &[],
                id: "a",
                text: "",
                metadata_json: "{}",
                lsn: 1,
                vector: &v,
            },
            SegmentRow {
                chunks: &[],
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
            chunks: &[],
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
                chunks: &[],
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
