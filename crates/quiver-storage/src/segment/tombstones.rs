//! Per-segment tombstones: a bitmap with one bit per row, set when the row is deleted
//! or superseded by a newer version of its id. Segments are immutable; this file is
//! the one thing in a segment directory that is replaced, always with
//! [`write_atomic`](crate::fsutil::write_atomic).
//!
//! `TOMBSTONES` format:
//!
//! | offset | size          | field                                  |
//! |-------:|--------------:|----------------------------------------|
//! | 0      | 8             | magic `QVTOMBS\0`                      |
//! | 8      | 4             | format version (u32, currently 1)      |
//! | 12     | 8             | rows covered (u64)                     |
//! | 20     | 8             | number of set bits (u64)               |
//! | 28     | 8 × ⌈rows/64⌉ | bitmap words (u64); bit `r % 64` of word `r / 64` is row `r` |
//! | end-4  | 4             | crc32 of every byte before it          |
//!
//! A missing file means "no row deleted". All integers are little-endian.

use std::path::Path;

use super::bytes::{check_envelope, corruption, envelope, Reader};
use crate::{fsutil, Result, StorageError};

/// File name of the tombstone bitmap inside a segment directory.
pub const TOMBSTONES_FILE: &str = "TOMBSTONES";
const MAGIC: &[u8; 8] = b"QVTOMBS\0";
const VERSION: u32 = 1;

/// A bitmap of deleted rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstones {
    rows: u64,
    words: Vec<u64>,
}

impl Tombstones {
    /// An all-clear bitmap for `rows` rows.
    pub fn new(rows: u64) -> Self {
        Tombstones {
            rows,
            words: vec![0; rows.div_ceil(64) as usize],
        }
    }

    /// Builds a bitmap from raw words (as produced by [`Tombstones::words`]).
    pub fn from_words(rows: u64, words: Vec<u64>) -> Result<Self> {
        if words.len() as u64 != rows.div_ceil(64) {
            return Err(StorageError::InvalidInput(format!(
                "{} words cannot cover {rows} rows",
                words.len()
            )));
        }
        let mut t = Tombstones { rows, words };
        t.clear_padding();
        Ok(t)
    }

    /// Rows covered.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The bitmap words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Whether `row` is deleted; rows past the end read as deleted.
    pub fn is_deleted(&self, row: u64) -> bool {
        if row >= self.rows {
            return true;
        }
        self.words[(row / 64) as usize] & (1 << (row % 64)) != 0
    }

    /// Marks `row` deleted; returns true if it was live.
    pub fn delete(&mut self, row: u64) -> bool {
        if row >= self.rows {
            return false;
        }
        let word = &mut self.words[(row / 64) as usize];
        let bit = 1 << (row % 64);
        let was_live = *word & bit == 0;
        *word |= bit;
        was_live
    }

    /// Number of deleted rows.
    pub fn deleted(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Bits past `rows` in the last word never count.
    fn clear_padding(&mut self) {
        let tail = self.rows % 64;
        if tail != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << tail) - 1;
            }
        }
    }

    /// Encodes the bitmap in the `TOMBSTONES` format.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = envelope(MAGIC, VERSION, 16 + self.words.len() * 8);
        w.u64(self.rows).u64(self.deleted());
        for &word in &self.words {
            w.u64(word);
        }
        w.finish_with_crc()
    }

    /// Decodes a `TOMBSTONES` file, checking it covers exactly `rows` rows.
    pub fn decode(data: &[u8], file: &Path, rows: u64) -> Result<Self> {
        let body = check_envelope(data, file, MAGIC, VERSION)?;
        let mut r = Reader::new(body, file);
        let found_rows = r.u64()?;
        if found_rows != rows {
            return Err(corruption(
                file,
                12,
                format!("covers {found_rows} rows, the segment has {rows}"),
            ));
        }
        let count = r.u64()?;
        let n = rows.div_ceil(64);
        if (body.len() as u64).saturating_sub(16) != n * 8 {
            return Err(corruption(file, 28, "bitmap length does not match rows"));
        }
        let mut words = Vec::with_capacity(n as usize);
        for _ in 0..n {
            words.push(r.u64()?);
        }
        let t = Tombstones { rows, words };
        if t.deleted() != count
            || t.words
                .last()
                .is_some_and(|&l| !rows.is_multiple_of(64) && l >> (rows % 64) != 0)
        {
            return Err(corruption(file, 20, "bit count does not match bitmap"));
        }
        Ok(t)
    }

    /// Reads the bitmap of the segment in `seg_dir` (all clear when the file is absent).
    pub fn load(seg_dir: &Path, rows: u64) -> Result<Self> {
        let path = seg_dir.join(TOMBSTONES_FILE);
        match std::fs::read(&path) {
            Ok(data) => Tombstones::decode(&data, &path, rows),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tombstones::new(rows)),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    /// Atomically replaces the bitmap file of the segment in `seg_dir`.
    pub fn store(&self, seg_dir: &Path) -> Result<()> {
        fsutil::write_atomic(&seg_dir.join(TOMBSTONES_FILE), &self.encode())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_bits() {
        let mut t = Tombstones::new(130);
        assert!(t.delete(0));
        assert!(t.delete(129));
        assert!(!t.delete(129));
        assert!(!t.delete(130));
        assert_eq!(t.deleted(), 2);
        assert!(t.is_deleted(129) && !t.is_deleted(64) && t.is_deleted(500));
        let bytes = t.encode();
        let p = Path::new("TOMBSTONES");
        assert_eq!(Tombstones::decode(&bytes, p, 130).ok(), Some(t.clone()));
        assert!(Tombstones::decode(&bytes, p, 131).is_err());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(Tombstones::decode(&bad, p, 130).is_err(), "flip at {i}");
        }
        assert!(Tombstones::decode(&bytes[..bytes.len() - 1], p, 130).is_err());
    }

    #[test]
    fn store_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Tombstones::load(dir.path(), 5).unwrap(), Tombstones::new(5));
        let mut t = Tombstones::new(5);
        t.delete(3);
        t.store(dir.path()).unwrap();
        assert_eq!(Tombstones::load(dir.path(), 5).unwrap(), t);
    }
}
