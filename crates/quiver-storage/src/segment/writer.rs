//! Writing a segment: rows are sorted by id, streamed into a temp directory
//! `segments/<id>.tmp/`, every file is fsynced, the `META` footer is written last, and
//! the directory is renamed to `segments/<id>/` (then the parent is fsynced). A crash
//! at any point leaves either no segment or a temp directory that start-up deletes.
//!
//! `vectors.f32`: `rows × dim` little-endian f32, row-major, no header (length and
//! crc32 live in `META`).
//!
//! `docs.bin`, one record per row, in row order:
//!
//! | size     | field                          |
//! |---------:|--------------------------------|
//! | 8        | LSN of the write (u64)         |
//! | 4        | id length in bytes (u32)       |
//! | 4        | text length in bytes (u32)     |
//! | 4        | metadata length in bytes (u32) |
//! | id len   | id, UTF-8                      |
//! | text len | text, UTF-8                    |
//! | meta len | metadata as JSON text, UTF-8   |
//!
//! `docs.idx`: `rows + 1` little-endian u64 byte offsets into `docs.bin`; record `r`
//! spans `idx[r]..idx[r + 1]`.
//!
//! When any row has chunks, `chunks.f32` and `chunks.idx` (formats in `chunks.rs`) are
//! written too, and `META` is version 2; a row without chunks then gets one chunk over
//! its whole text with its own vector, so every row is reachable through its chunks.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::meta::{ChunkSums, FileSum, Meta};
use super::{
    segment_path, temp_path, CHUNKS_IDX_FILE, CHUNK_VECTORS_FILE, DOCS_FILE, IDX_FILE, META_FILE,
    VECTORS_FILE,
};
use crate::{fsutil, Result, StorageError};

/// One row handed to [`write_segment`].
#[derive(Debug, Clone, Copy)]
pub struct SegmentRow<'a> {
    pub id: &'a str,
    pub text: &'a str,
    /// Metadata as JSON text (stored verbatim).
    pub metadata_json: &'a str,
    /// LSN of the write that produced this version of the document.
    pub lsn: u64,
    pub vector: &'a [f32],
    /// The row's chunks in text order; empty for a document embedded whole.
    pub chunks: &'a [SegmentChunk<'a>],
}

/// One chunk of a [`SegmentRow`]: a byte range of its text and that range's vector.
#[derive(Debug, Clone, Copy)]
pub struct SegmentChunk<'a> {
    pub start: usize,
    pub end: usize,
    pub vector: &'a [f32],
}

/// A file being written with a running crc32.
struct SumWriter {
    path: PathBuf,
    out: BufWriter<File>,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl SumWriter {
    fn create(path: PathBuf) -> Result<Self> {
        let file = File::create(&path).map_err(|e| StorageError::io(&path, e))?;
        Ok(SumWriter {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: crc32fast::Hasher::new(),
            len: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|e| StorageError::io(&self.path, e))
    }

    /// Writes `v` as little-endian f32s, through `buf`.
    fn write_floats(&mut self, v: &[f32], buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        for x in v {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        self.write(buf)
    }

    fn finish(self) -> Result<FileSum> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| StorageError::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| StorageError::io(&path, e))?;
        Ok(FileSum {
            len: self.len,
            crc: self.hasher.finalize(),
        })
    }
}

fn len_u32(s: &str, what: &str) -> Result<u32> {
    u32::try_from(s.len())
        .map_err(|_| StorageError::InvalidInput(format!("{what} longer than 4 GiB")))
}

/// Writes `chunks.f32` and `chunks.idx` for `rows` (sorted) into `dir`.
fn write_chunks(dir: &Path, rows: &[SegmentRow<'_>], buf: &mut Vec<u8>) -> Result<ChunkSums> {
    let mut vectors = SumWriter::create(dir.join(CHUNK_VECTORS_FILE))?;
    let mut table = SumWriter::create(dir.join(CHUNKS_IDX_FILE))?;
    let mut count = 0u64;
    for (row, r) in rows.iter().enumerate() {
        let whole = [SegmentChunk {
            start: 0,
            end: r.text.len(),
            vector: r.vector,
        }];
        let chunks = if r.chunks.is_empty() {
            &whole[..]
        } else {
            r.chunks
        };
        let row = u32::try_from(row)
            .map_err(|_| StorageError::InvalidInput("more than 2^32 rows in one segment".into()))?;
        for c in chunks {
            vectors.write_floats(c.vector, buf)?;
            // Both offsets fit: the text's length was checked against u32 above.
            let (start, end) = (c.start as u32, c.end as u32);
            let mut entry = [0u8; 12];
            entry[..4].copy_from_slice(&row.to_le_bytes());
            entry[4..8].copy_from_slice(&start.to_le_bytes());
            entry[8..].copy_from_slice(&end.to_le_bytes());
            table.write(&entry)?;
            count += 1;
        }
    }
    Ok(ChunkSums {
        count,
        vectors: vectors.finish()?,
        table: table.finish()?,
    })
}

/// Writes `rows` as segment `id` under `segments_dir` and returns its directory.
///
/// Rows are sorted by id (byte order) so lookups can binary-search; ids must be
/// unique and every vector must have `dim` components.
pub fn write_segment(
    segments_dir: &Path,
    id: u64,
    dim: usize,
    rows: &mut [SegmentRow<'_>],
) -> Result<PathBuf> {
    rows.sort_unstable_by(|a, b| a.id.cmp(b.id));
    if let Some(w) = rows.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(StorageError::InvalidInput(format!(
            "id {:?} appears twice in one segment",
            w[0].id
        )));
    }
    for r in rows.iter() {
        let lens = std::iter::once(r.vector.len()).chain(r.chunks.iter().map(|c| c.vector.len()));
        if let Some(n) = lens.into_iter().find(|&n| n != dim) {
            return Err(StorageError::InvalidInput(format!(
                "row {:?} has a vector of {n} components, the segment has {dim}",
                r.id
            )));
        }
        if let Some(c) = r
            .chunks
            .iter()
            .find(|c| c.start > c.end || c.end > r.text.len())
        {
            return Err(StorageError::InvalidInput(format!(
                "row {:?} has a chunk {}..{} outside its {}-byte text",
                r.id,
                c.start,
                c.end,
                r.text.len()
            )));
        }
    }
    let dim32 = u32::try_from(dim)
        .map_err(|_| StorageError::InvalidInput(format!("dimension {dim} too large")))?;
    let final_dir = segment_path(segments_dir, id);
    if final_dir.exists() {
        return Err(StorageError::InvalidInput(format!(
            "segment {} already exists",
            final_dir.display()
        )));
    }
    let tmp = temp_path(segments_dir, id);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| StorageError::io(&tmp, e))?;

    let mut vectors = SumWriter::create(tmp.join(VECTORS_FILE))?;
    let mut docs = SumWriter::create(tmp.join(DOCS_FILE))?;
    let mut idx = SumWriter::create(tmp.join(IDX_FILE))?;
    let mut floats = Vec::with_capacity(dim * 4);
    for row in rows.iter() {
        vectors.write_floats(row.vector, &mut floats)?;
        idx.write(&docs.len.to_le_bytes())?;
        let mut head = [0u8; 20];
        head[..8].copy_from_slice(&row.lsn.to_le_bytes());
        head[8..12].copy_from_slice(&len_u32(row.id, "id")?.to_le_bytes());
        head[12..16].copy_from_slice(&len_u32(row.text, "text")?.to_le_bytes());
        head[16..20].copy_from_slice(&len_u32(row.metadata_json, "metadata")?.to_le_bytes());
        docs.write(&head)?;
        docs.write(row.id.as_bytes())?;
        docs.write(row.text.as_bytes())?;
        docs.write(row.metadata_json.as_bytes())?;
    }
    idx.write(&docs.len.to_le_bytes())?;
    let chunks = if rows.iter().any(|r| !r.chunks.is_empty()) {
        Some(write_chunks(&tmp, rows, &mut floats)?)
    } else {
        None
    };

    let meta = Meta {
        id,
        dim: dim32,
        rows: rows.len() as u64,
        min_lsn: rows.iter().map(|r| r.lsn).min().unwrap_or(0),
        max_lsn: rows.iter().map(|r| r.lsn).max().unwrap_or(0),
        vectors: vectors.finish()?,
        docs: docs.finish()?,
        idx: idx.finish()?,
        chunks,
    };
    let meta_path = tmp.join(META_FILE);
    let mut file = File::create(&meta_path).map_err(|e| StorageError::io(&meta_path, e))?;
    file.write_all(&meta.encode())
        .and_then(|()| file.sync_all())
        .map_err(|e| StorageError::io(&meta_path, e))?;
    fsutil::fsync_dir(&tmp)?;
    fs::rename(&tmp, &final_dir).map_err(|e| StorageError::io(&final_dir, e))?;
    fsutil::fsync_dir(segments_dir)?;
    Ok(final_dir)
}
