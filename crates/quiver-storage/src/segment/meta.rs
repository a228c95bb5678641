//! The segment footer (`META`): what a segment holds and the checksum of every other
//! file in it. It is written last, so a segment directory without a valid `META` was
//! never completed.
//!
//! | offset | size | field                                      |
//! |-------:|-----:|--------------------------------------------|
//! | 0      | 8    | magic `QVSEGMT\0`                          |
//! | 8      | 4    | format version (u32, currently 1)          |
//! | 12     | 8    | segment id (u64)                           |
//! | 20     | 4    | dim: floats per vector row (u32)           |
//! | 24     | 8    | rows (u64)                                 |
//! | 32     | 8    | smallest row LSN (u64, 0 when empty)       |
//! | 40     | 8    | largest row LSN (u64, 0 when empty)        |
//! | 48     | 12   | `vectors.f32`: length u64, crc32 u32       |
//! | 60     | 12   | `docs.bin`: length u64, crc32 u32          |
//! | 72     | 12   | `docs.idx`: length u64, crc32 u32          |
//! | 84     | 4    | crc32 of bytes 0..84                       |
//!
//! Version 2, written for segments whose documents have chunks, inserts before the crc:
//!
//! | offset | size | field                                      |
//! |-------:|-----:|--------------------------------------------|
//! | 84     | 8    | chunks (u64): rows of the two files below  |
//! | 92     | 12   | `chunks.f32`: length u64, crc32 u32        |
//! | 104    | 12   | `chunks.idx`: length u64, crc32 u32        |
//! | 116    | 4    | crc32 of bytes 0..116                      |
//!
//! Version 1 segments have no chunks; both versions are read. All integers are
//! little-endian.

use std::path::Path;

use super::bytes::{check_envelope_from, corruption, envelope, Reader};
use crate::Result;

pub(crate) const META_MAGIC: &[u8; 8] = b"QVSEGMT\0";
/// The footer of a segment without chunks.
pub(crate) const META_VERSION: u32 = 1;
/// The footer of a segment with chunks.
pub(crate) const META_VERSION_CHUNKS: u32 = 2;

/// Length and checksum of one data file of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FileSum {
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// The decoded footer of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) id: u64,
    pub(crate) dim: u32,
    pub(crate) rows: u64,
    pub(crate) min_lsn: u64,
    pub(crate) max_lsn: u64,
    pub(crate) vectors: FileSum,
    pub(crate) docs: FileSum,
    pub(crate) idx: FileSum,
    /// The chunk files, in version 2 footers.
    pub(crate) chunks: Option<ChunkSums>,
}

/// What a version 2 footer adds: the chunk count and the chunk files' sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkSums {
    pub(crate) count: u64,
    pub(crate) vectors: FileSum,
    pub(crate) table: FileSum,
}

fn read_sum(r: &mut Reader<'_, '_>) -> Result<FileSum> {
    Ok(FileSum {
        len: r.u64()?,
        crc: r.u32()?,
    })
}

impl Meta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let version = match self.chunks {
            Some(_) => META_VERSION_CHUNKS,
            None => META_VERSION,
        };
        let mut w = envelope(META_MAGIC, version, 108);
        w.u64(self.id)
            .u32(self.dim)
            .u64(self.rows)
            .u64(self.min_lsn)
            .u64(self.max_lsn);
        for sum in [self.vectors, self.docs, self.idx] {
            w.u64(sum.len).u32(sum.crc);
        }
        if let Some(c) = self.chunks {
            w.u64(c.count);
            for sum in [c.vectors, c.table] {
                w.u64(sum.len).u32(sum.crc);
            }
        }
        w.finish_with_crc()
    }

    pub(crate) fn decode(data: &[u8], file: &Path) -> Result<Meta> {
        let (version, body) =
            check_envelope_from(data, file, META_MAGIC, META_VERSION, META_VERSION_CHUNKS)?;
        let mut r = Reader::new(body, file);
        let id = r.u64()?;
        let dim = r.u32()?;
        let rows = r.u64()?;
        let min_lsn = r.u64()?;
        let max_lsn = r.u64()?;
        let sums = [read_sum(&mut r)?, read_sum(&mut r)?, read_sum(&mut r)?];
        let chunks = if version == META_VERSION_CHUNKS {
            Some(ChunkSums {
                count: r.u64()?,
                vectors: read_sum(&mut r)?,
                table: read_sum(&mut r)?,
            })
        } else {
            None
        };
        if r.position() != body.len() {
            return Err(corruption(file, 12 + r.position() as u64, "trailing bytes"));
        }
        let [vectors, docs, idx] = sums;
        Ok(Meta {
            id,
            dim,
            rows,
            min_lsn,
            max_lsn,
            vectors,
            docs,
            idx,
            chunks,
        })
    }
}
