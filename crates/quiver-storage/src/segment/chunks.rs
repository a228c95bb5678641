//! The chunks of a segment whose documents were embedded piece by piece: one vector per
//! chunk, each tied to its row and to a byte range of the row's text.
//!
//! `chunks.f32`: `chunks × dim` little-endian f32, row-major, no header.
//!
//! `chunks.idx`: one 12-byte entry per chunk, in the same order:
//!
//! | size | field                                         |
//! |-----:|-----------------------------------------------|
//! | 4    | row (u32)                                     |
//! | 4    | byte offset of the chunk's start in the text (u32) |
//! | 4    | byte offset one past its end (u32)            |
//!
//! Entries are sorted by row and, within a row, by position in the text; every row has
//! at least one (a row written without chunks has one covering its whole text, with the
//! row's own vector). Chunk `n`'s number within its row is `n - first(row)`. Lengths
//! and checksums live in `META` (version 2); the structure is checked on open like the
//! document store's, and the table is then read in place (row lookups are binary
//! searches over the mapped entries).

use std::ops::Range;
use std::path::Path;

use super::bytes::corruption;
use super::mapped::{Bytes, Vectors};
use super::verify::SumReader;
use crate::Result;

/// Bytes of one `chunks.idx` entry.
pub(crate) const ENTRY: usize = 12;

/// The mapped chunk files of an open segment.
#[derive(Debug)]
pub(crate) struct ChunkTable {
    vectors: Vectors,
    table: Bytes,
    count: usize,
}

fn field(table: &[u8], n: usize, at: usize) -> u32 {
    let off = n * ENTRY + at;
    let mut b = [0u8; 4];
    b.copy_from_slice(&table[off..off + 4]);
    u32::from_le_bytes(b)
}

impl ChunkTable {
    /// Wraps mappings that [`check_table`] accepted for `count` chunks.
    pub(crate) fn new(vectors: Vectors, table: Bytes, count: usize) -> ChunkTable {
        ChunkTable {
            vectors,
            table,
            count,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn vectors(&self) -> &[f32] {
        self.vectors.as_f32()
    }

    /// The row chunk `n` belongs to. Panics if `n >= len()`.
    pub(crate) fn row(&self, n: usize) -> usize {
        field(self.table.as_slice(), n, 0) as usize
    }

    /// Chunk `n`'s byte range in its row's text. Panics if `n >= len()`.
    pub(crate) fn span(&self, n: usize) -> Range<usize> {
        let t = self.table.as_slice();
        field(t, n, 4) as usize..field(t, n, 8) as usize
    }

    /// The chunks of `row`, in text order.
    pub(crate) fn of_row(&self, row: usize) -> Range<usize> {
        let first = partition(self.count, |n| self.row(n) < row);
        let end = partition(self.count, |n| self.row(n) <= row);
        first..end
    }
}

/// The first `n` in `0..len` for which `before(n)` is false (`before` must be true
/// for a prefix of the range and false after it).
fn partition(len: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Reads `chunks.idx` through `reader` and checks its structure for a segment of
/// `rows` rows: rows in order from 0 to the last, none skipped, every range ordered.
pub(crate) fn check_table(
    reader: &mut SumReader<'_>,
    path: &Path,
    count: u64,
    rows: u64,
) -> Result<()> {
    let mut prev: Option<u64> = None;
    for n in 0..count {
        let at = n * ENTRY as u64;
        let row = u64::from(reader.u32()?);
        let (start, end) = (reader.u32()?, reader.u32()?);
        let next_ok = match prev {
            None => row == 0,
            Some(p) => row == p || row == p + 1,
        };
        if !next_ok || row >= rows {
            return Err(corruption(
                path,
                at,
                format!("chunk {n} belongs to row {row} out of order"),
            ));
        }
        if start > end {
            return Err(corruption(
                path,
                at + 4,
                format!("chunk {n} ends before it starts"),
            ));
        }
        prev = Some(row);
    }
    if rows > 0 && prev != Some(rows - 1) {
        return Err(corruption(path, 0, "rows without chunks"));
    }
    Ok(())
}
