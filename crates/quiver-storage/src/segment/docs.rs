//! The document store of an open segment, read in place from the mappings of
//! `docs.bin` and `docs.idx` (formats in `writer.rs`).
//!
//! Nothing is copied into the heap on open: the offset of row `r` is read from the
//! mapped index when asked for, the id and LSN from the mapped record. `find` is a
//! binary search whose probes read the records' ids; rows are sorted by id (byte
//! order), which the open-time check in `verify.rs` enforces.
//!
//! Offsets are decoded with `u64::from_le_bytes` from the mapped bytes: on a
//! little-endian host that compiles to a plain load (the mapping starts on a page
//! boundary, so every offset is 8-byte aligned), and on a big-endian host it is the
//! portable byte swap, so no owned fallback table is needed.
//!
//! Accessors stay infallible because `verify.rs` checked on open what they rely on:
//! offsets contiguous and in range, record headers consistent with them, ids valid
//! UTF-8 and strictly sorted. Text and metadata are checked for UTF-8 when a document
//! is read ([`DocTable::doc`] returns a `Result`), not on open, so open never reads
//! them beyond the checksum pass.

use std::path::Path;

use super::bytes::{corruption, Reader};
use super::mapped::Bytes;
use crate::Result;

/// Bytes of a record header: LSN u64, id, text and metadata lengths u32 each.
pub(crate) const RECORD_HEAD: usize = 20;

/// The fields of one record, borrowed from the mapping.
pub(crate) struct RecordParts<'a> {
    pub(crate) lsn: u64,
    pub(crate) id: &'a str,
    pub(crate) text: &'a str,
    pub(crate) metadata_json: &'a str,
}

/// `docs.bin` and `docs.idx`, mapped; `rows` records.
#[derive(Debug)]
pub(crate) struct DocTable {
    docs: Bytes,
    idx: Bytes,
    rows: usize,
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let raw: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(raw))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

impl DocTable {
    /// Wraps mappings that `verify::check_docs` accepted for `rows` rows.
    pub(crate) fn new(docs: Bytes, idx: Bytes, rows: usize) -> DocTable {
        DocTable { docs, idx, rows }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    fn check_row(&self, row: usize) {
        assert!(
            row < self.rows,
            "row {row} out of range for a segment of {} rows",
            self.rows
        );
    }

    /// Byte offset of record `row` (`row == len()` gives the end of the data).
    pub(crate) fn offset(&self, row: usize) -> u64 {
        // Validated on open; 0 is only reachable if the file changed under the mapping.
        row.checked_mul(8)
            .and_then(|at| le_u64(self.idx.as_slice(), at))
            .unwrap_or(0)
    }

    /// The whole record of `row`, or an empty slice if the mapping no longer matches
    /// what open validated.
    fn record(&self, row: usize) -> &[u8] {
        let start = usize::try_from(self.offset(row)).unwrap_or(usize::MAX);
        let end = usize::try_from(self.offset(row + 1)).unwrap_or(0);
        self.docs.as_slice().get(start..end).unwrap_or(&[])
    }

    /// The id bytes of `row`.
    fn id_bytes(&self, row: usize) -> &[u8] {
        let rec = self.record(row);
        let len = le_u32(rec, 8).map_or(0, |n| n as usize);
        rec.get(RECORD_HEAD..RECORD_HEAD + len).unwrap_or(&[])
    }

    /// Id of `row`. Panics if `row >= len()`.
    pub(crate) fn id(&self, row: usize) -> &str {
        self.check_row(row);
        // Ids were checked to be UTF-8 on open; re-checking a short id costs a few
        // nanoseconds and keeps this safe even if the file were changed underneath.
        std::str::from_utf8(self.id_bytes(row)).unwrap_or_default()
    }

    /// Length in bytes of `row`'s text. Panics if `row >= len()`.
    pub(crate) fn text_len(&self, row: usize) -> usize {
        self.check_row(row);
        le_u32(self.record(row), 12).map_or(0, |n| n as usize)
    }

    /// LSN of `row`. Panics if `row >= len()`.
    pub(crate) fn lsn(&self, row: usize) -> u64 {
        self.check_row(row);
        le_u64(self.record(row), 0).unwrap_or(0)
    }

    /// Row holding `id`, by binary search over the mapped records.
    pub(crate) fn find(&self, id: &str) -> Option<usize> {
        let key = id.as_bytes();
        let (mut lo, mut hi) = (0, self.rows);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id_bytes(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Every field of `row`; text and metadata are UTF-8-checked here. Panics if
    /// `row >= len()`.
    pub(crate) fn doc(&self, row: usize, file: &Path) -> Result<RecordParts<'_>> {
        self.check_row(row);
        parse_record(self.record(row), file, self.offset(row))
    }
}

fn utf8<'a>(b: &'a [u8], file: &Path, offset: u64) -> Result<&'a str> {
    std::str::from_utf8(b).map_err(|_| corruption(file, offset, "invalid UTF-8"))
}

/// Splits one `docs.bin` record (found at byte `at` of `file`) into its fields.
fn parse_record<'a>(rec: &'a [u8], file: &Path, at: u64) -> Result<RecordParts<'a>> {
    let mut r = Reader::new(rec, file);
    let lsn = r.u64()?;
    let id_len = r.u32()? as usize;
    let text_len = r.u32()? as usize;
    let meta_len = r.u32()? as usize;
    if RECORD_HEAD + id_len + text_len + meta_len != rec.len() {
        return Err(corruption(file, at, "record length disagrees with index"));
    }
    let id = utf8(r.bytes(id_len)?, file, at)?;
    let text = utf8(r.bytes(text_len)?, file, at)?;
    let metadata_json = utf8(r.bytes(meta_len)?, file, at)?;
    Ok(RecordParts {
        lsn,
        id,
        text,
        metadata_json,
    })
}
