//! Open-time checks of a segment's data files, done with buffered `read()` calls on
//! the files rather than through their mappings.
//!
//! Why `read()`: a checksum must look at every byte, and reading through a mapping
//! faults every page into the process's page tables, so a freshly opened segment
//! would count its whole size in the process's RSS before any query ran. Reads go
//! through the page cache into one small reused buffer and leave the mappings
//! untouched; pages become resident in the process only when a query reads them.
//!
//! Each file is read once. For `docs.bin` and `docs.idx` the same pass also checks the
//! structure the in-place accessors (`docs.rs`) rely on, streaming both files in
//! lockstep: offsets start at 0 and are contiguous (record `r` starts where record
//! `r - 1` ended), each header's lengths fit inside the file, ids are UTF-8 and
//! strictly increasing, the last offset is the data length, and the rows' smallest
//! and largest LSN are the footer's. Text and metadata are only checksummed here;
//! their UTF-8 is checked when a document is read. When a structural check fails,
//! the rest of both files is still read: a checksum mismatch, the likelier cause,
//! is reported in preference.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::bytes::corruption;
use super::docs::RECORD_HEAD;
use super::meta::{FileSum, Meta};
use crate::{Result, StorageError};

/// Read buffer per file; large enough that syscalls cost nothing next to the crc.
const BUF_BYTES: usize = 256 * 1024;

/// Reads one file front to back through a reused buffer, hashing every byte.
pub(crate) struct SumReader<'f> {
    file: &'f File,
    path: PathBuf,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[pos..filled]`.
    pos: usize,
    filled: usize,
    hasher: crc32fast::Hasher,
    /// Bytes consumed (and hashed) so far.
    consumed: u64,
    expect: FileSum,
}

impl<'f> SumReader<'f> {
    /// Starts reading `file` (at `path`) from its current position, which must be 0.
    pub(crate) fn new(file: &'f File, path: &Path, expect: FileSum) -> SumReader<'f> {
        let cap = usize::try_from(expect.len).map_or(BUF_BYTES, |n| n.clamp(1, BUF_BYTES));
        SumReader {
            file,
            path: path.to_path_buf(),
            buf: vec![0; cap],
            pos: 0,
            filled: 0,
            hasher: crc32fast::Hasher::new(),
            consumed: 0,
            expect,
        }
    }

    /// Refills the buffer; returns false at end of file.
    fn refill(&mut self) -> Result<bool> {
        debug_assert_eq!(self.pos, self.filled);
        loop {
            match self.file.read(&mut self.buf) {
                Ok(n) => {
                    self.hasher.update(&self.buf[..n]);
                    self.pos = 0;
                    self.filled = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(StorageError::io(&self.path, e)),
            }
        }
    }

    fn short(&self) -> StorageError {
        corruption(&self.path, self.consumed, "unexpected end of file")
    }

    /// Hands the next `n` bytes to `sink` (in pieces), or fails at end of file.
    fn take(&mut self, mut n: usize, mut sink: impl FnMut(&[u8])) -> Result<()> {
        while n > 0 {
            if self.pos == self.filled && !self.refill()? {
                return Err(self.short());
            }
            let k = n.min(self.filled - self.pos);
            sink(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
            self.consumed += k as u64;
            n -= k;
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        let mut at = 0;
        self.take(N, |piece| {
            out[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        })?;
        Ok(out)
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        self.array::<8>().map(u64::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        self.array::<4>().map(u32::from_le_bytes)
    }

    /// Appends the next `n` bytes to `out`.
    pub(crate) fn read_into(&mut self, n: usize, out: &mut Vec<u8>) -> Result<()> {
        self.take(n, |piece| out.extend_from_slice(piece))
    }

    /// Consumes (and hashes) the next `n` bytes.
    pub(crate) fn skip(&mut self, n: u64) -> Result<()> {
        let mut left = n;
        while left > 0 {
            let step = usize::try_from(left).unwrap_or(usize::MAX).min(BUF_BYTES);
            self.take(step, |_| {})?;
            left -= step as u64;
        }
        Ok(())
    }

    /// Reads whatever is left, then checks the total length and the crc32.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.consumed += (self.filled - self.pos) as u64;
        self.pos = self.filled;
        while self.refill()? {
            self.consumed += self.filled as u64;
            self.pos = self.filled;
        }
        if self.consumed != self.expect.len {
            return Err(corruption(
                &self.path,
                self.consumed,
                format!(
                    "length {} differs from footer {}",
                    self.consumed, self.expect.len
                ),
            ));
        }
        if self.hasher.finalize() != self.expect.crc {
            return Err(corruption(&self.path, 0, "checksum mismatch"));
        }
        Ok(())
    }
}

/// Checks `vectors.f32` (or any file with no inner structure) against its footer entry.
pub(crate) fn check_plain(file: &File, path: &Path, expect: FileSum) -> Result<()> {
    SumReader::new(file, path, expect).finish()
}

/// Paths and open handles of `docs.bin` and `docs.idx`.
pub(crate) struct DocFiles<'a> {
    pub(crate) docs: &'a File,
    pub(crate) docs_path: &'a Path,
    pub(crate) idx: &'a File,
    pub(crate) idx_path: &'a Path,
}

/// Checks `docs.bin` and `docs.idx` against the footer: checksums, lengths, and the
/// structure described in the module docs.
pub(crate) fn check_docs(files: &DocFiles<'_>, meta: &Meta) -> Result<()> {
    let mut docs = SumReader::new(files.docs, files.docs_path, meta.docs);
    let mut idx = SumReader::new(files.idx, files.idx_path, meta.idx);
    let walked = walk_records(&mut docs, &mut idx, files, meta);
    // Finish both files even after a structural error: a checksum mismatch explains
    // the damage better than the structural symptom it caused.
    let docs_sum = docs.finish();
    let idx_sum = idx.finish();
    docs_sum?;
    idx_sum?;
    walked
}

fn walk_records(
    docs: &mut SumReader<'_>,
    idx: &mut SumReader<'_>,
    files: &DocFiles<'_>,
    meta: &Meta,
) -> Result<()> {
    let (docs_path, idx_path) = (files.docs_path, files.idx_path);
    let data_len = meta.docs.len;
    let mut prev: Vec<u8> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut pos = 0u64;
    let mut lsn_range: Option<(u64, u64)> = None;
    for row in 0..meta.rows {
        let offset = idx.u64()?;
        if offset != pos {
            return Err(corruption(
                idx_path,
                row * 8,
                format!("offset {offset} where record {row} starts at {pos}"),
            ));
        }
        let lsn = docs.u64()?;
        let id_len = u64::from(docs.u32()?);
        let text_len = u64::from(docs.u32()?);
        let meta_len = u64::from(docs.u32()?);
        let rec_len = RECORD_HEAD as u64 + id_len + text_len + meta_len;
        if rec_len > data_len - pos {
            return Err(corruption(docs_path, pos, "record runs past end of data"));
        }
        cur.clear();
        // `id_len` fits in the file, so this allocation is bounded by the file size.
        docs.read_into(id_len as usize, &mut cur)?;
        if std::str::from_utf8(&cur).is_err() {
            return Err(corruption(docs_path, pos, "id is not UTF-8"));
        }
        if row > 0 && prev >= cur {
            return Err(corruption(docs_path, pos, "ids not strictly sorted"));
        }
        std::mem::swap(&mut prev, &mut cur);
        docs.skip(text_len + meta_len)?;
        lsn_range = Some(lsn_range.map_or((lsn, lsn), |(lo, hi)| (lo.min(lsn), hi.max(lsn))));
        pos += rec_len;
    }
    let end = idx.u64()?;
    if end != pos || end != data_len {
        return Err(corruption(
            idx_path,
            meta.rows * 8,
            "index does not end at data end",
        ));
    }
    if lsn_range.unwrap_or((0, 0)) != (meta.min_lsn, meta.max_lsn) {
        return Err(corruption(
            docs_path,
            0,
            "row LSNs disagree with the footer's LSN range",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Files whose checksums are right but whose structure is not: what the footer's
    //! crc cannot catch (a writer bug, a hand-made file) must still be refused.

    use std::fs;

    use super::*;
    use crate::segment::{write_segment, Segment, SegmentRow, DOCS_FILE, IDX_FILE, META_FILE};

    /// Three rows with ids `a1`, `b2`, `c3` (equal lengths, so records can swap).
    fn sample(dir: &Path) -> PathBuf {
        let v = [1.0f32, 2.0];
        let mut rows: Vec<SegmentRow<'_>> = ["a1", "b2", "c3"]
            .iter()
            .enumerate()
            .map(|(i, id)| SegmentRow {
                chunks: &[],
                id,
                text: "some text",
                metadata_json: "{}",
                lsn: 10 + i as u64,
                vector: &v,
            })
            .collect();
        write_segment(dir, 1, 2, &mut rows).unwrap()
    }

    /// Rewrites `name` with `edit` applied and fixes the footer's length and crc for
    /// it, then lets `meta_edit` change the footer.
    fn rewrite(
        seg: &Path,
        name: &str,
        edit: impl FnOnce(&mut Vec<u8>),
        meta_edit: impl FnOnce(&mut Meta),
    ) {
        let path = seg.join(name);
        let mut bytes = fs::read(&path).unwrap();
        edit(&mut bytes);
        fs::write(&path, &bytes).unwrap();
        let meta_path = seg.join(META_FILE);
        let mut meta = Meta::decode(&fs::read(&meta_path).unwrap(), &meta_path).unwrap();
        let sum = FileSum {
            len: bytes.len() as u64,
            crc: crc32fast::hash(&bytes),
        };
        match name {
            DOCS_FILE => meta.docs = sum,
            IDX_FILE => meta.idx = sum,
            _ => {}
        }
        meta_edit(&mut meta);
        fs::write(&meta_path, meta.encode()).unwrap();
    }

    fn reason(seg: &Path) -> String {
        match Segment::open(seg) {
            Err(StorageError::Corruption { reason, .. }) => reason,
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    /// Record length of the sample rows: header + id + text + metadata.
    const REC: usize = RECORD_HEAD + 2 + 9 + 2;

    #[test]
    fn unsorted_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seg = sample(dir.path());
        rewrite(
            &seg,
            DOCS_FILE,
            |b| {
                let first: Vec<u8> = b[..REC].to_vec();
                b.copy_within(REC..2 * REC, 0);
                b[REC..2 * REC].copy_from_slice(&first);
            },
            |_| {},
        );
        assert_eq!(reason(&seg), "ids not strictly sorted");
    }

    #[test]
    fn offsets_that_skip_or_overrun_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seg = sample(dir.path());
        rewrite(
            &seg,
            IDX_FILE,
            |b| b[8..16].copy_from_slice(&(REC as u64 + 1).to_le_bytes()),
            |_| {},
        );
        assert!(reason(&seg).starts_with("offset "), "{}", reason(&seg));

        let dir = tempfile::tempdir().unwrap();
        let seg = sample(dir.path());
        rewrite(
            &seg,
            IDX_FILE,
            |b| {
                let n = b.len();
                b[n - 8..].copy_from_slice(&u64::MAX.to_le_bytes());
            },
            |_| {},
        );
        assert_eq!(reason(&seg), "index does not end at data end");
    }

    #[test]
    fn header_lengths_past_the_end_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seg = sample(dir.path());
        // Text length of the last record: far past the end of the file.
        rewrite(
            &seg,
            DOCS_FILE,
            |b| {
                b[2 * REC + 12..2 * REC + 16].copy_from_slice(&u32::MAX.to_le_bytes());
            },
            |_| {},
        );
        assert_eq!(reason(&seg), "record runs past end of data");
    }

    #[test]
    fn non_utf8_id_is_refused_but_bad_text_only_fails_its_read() {
        let dir = tempfile::tempdir().unwrap();
        let seg = sample(dir.path());
        rewrite(&seg, DOCS_FILE, |b| b[REC + RECORD_HEAD] = 0xFF, |_| {});
        assert_eq!(reason(&seg), "id is not UTF-8");

        let dir = tempfile::tempdir().unwrap();
        let seg = sample(dir.path());
        rewrite(&seg, DOCS_FILE, |b| b[REC + RECORD_HEAD + 2] = 0xFF, |_| {});
        let open = Segment::open(&seg).unwrap();
        assert_eq!(open.find("b2"), Some(1));
        assert_eq!(open.id_of(1), "b2");
        assert!(matches!(open.doc(1), Err(StorageError::Corruption { .. })));
        assert_eq!(open.doc(2).unwrap().text, "some text");
    }

    #[test]
    fn lsn_range_must_match_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let seg = sample(dir.path());
        rewrite(&seg, META_FILE, |_| {}, |m| m.max_lsn = 11);
        assert_eq!(
            reason(&seg),
            "row LSNs disagree with the footer's LSN range"
        );
    }

    #[test]
    fn checksum_is_reported_before_the_structure_it_broke() {
        let dir = tempfile::tempdir().unwrap();
        let seg = sample(dir.path());
        let path = seg.join(DOCS_FILE);
        let mut b = fs::read(&path).unwrap();
        b[REC + RECORD_HEAD] = 0xFF;
        fs::write(&path, &b).unwrap();
        assert_eq!(reason(&seg), "checksum mismatch");
    }
}
