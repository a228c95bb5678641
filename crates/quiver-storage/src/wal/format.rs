//! The byte layout of WAL files: file header, record framing and the checksum.
//!
//! A log is a directory of files named `<first-lsn>.wal`, the first LSN zero-padded to
//! 20 digits so that names sort in LSN order. Each file is a header followed by records.
//! All integers are little-endian.
//!
//! File header (32 bytes):
//!
//! | offset | size | field        | meaning                                           |
//! |-------:|-----:|--------------|---------------------------------------------------|
//! | 0      | 8    | magic        | `QUIVWAL\0`                                       |
//! | 8      | 4    | version u32  | format version, currently 1                       |
//! | 12     | 8    | seed u64     | random per file, mixed into every record checksum |
//! | 20     | 8    | first_lsn u64| LSN of the file's first record; equals the name   |
//! | 28     | 4    | crc32 u32    | CRC-32 (IEEE) of bytes 0..28                      |
//!
//! Record (17-byte frame + payload), repeated until the end of the file:
//!
//! | offset | size | field       | meaning                                          |
//! |-------:|-----:|-------------|--------------------------------------------------|
//! | 0      | 4    | len u32     | payload length in bytes                          |
//! | 4      | 4    | crc32 u32   | CRC-32 of seed (8 bytes LE), len, lsn, kind, payload |
//! | 8      | 8    | lsn u64     | log sequence number; +1 per record, no gaps      |
//! | 16     | 1    | kind u8     | record type, chosen by the caller                |
//! | 17     | len  | payload     | opaque bytes (bincode 2 from the engine)         |
//!
//! The seed makes the checksum file-specific: bytes left over from another file (a
//! reused block, a stale copy) never verify, so recovery cannot mistake them for
//! records. The length is checksummed too, so a flipped length bit is caught even when
//! the bytes it would frame happen to look plausible.

use std::path::Path;

use crate::{Result, StorageError};

/// First bytes of every WAL file.
pub const MAGIC: [u8; 8] = *b"QUIVWAL\0";
/// The only format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Size of the file header.
pub const HEADER_LEN: usize = 32;
/// Size of a record frame before its payload.
pub const RECORD_HEADER_LEN: usize = 17;
/// Largest payload accepted; bounds allocations driven by a corrupt length field.
pub const MAX_PAYLOAD: usize = 1 << 30;
/// File name extension of log files.
pub const EXTENSION: &str = "wal";

/// The parsed header of one WAL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub seed: u64,
    pub first_lsn: u64,
}

impl FileHeader {
    /// The 32 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..20].copy_from_slice(&self.seed.to_le_bytes());
        out[20..28].copy_from_slice(&self.first_lsn.to_le_bytes());
        let crc = crc32fast::hash(&out[0..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and verifies a header. `file` is used in error messages only.
    pub fn decode(bytes: &[u8], file: &Path) -> Result<FileHeader> {
        let corrupt = |reason: &str| StorageError::Corruption {
            file: file.to_path_buf(),
            offset: 0,
            reason: reason.to_string(),
        };
        if bytes.len() < HEADER_LEN {
            return Err(corrupt("file is shorter than the WAL header"));
        }
        if bytes[0..8] != MAGIC {
            return Err(corrupt("bad magic: not a Quiver WAL file"));
        }
        let stored_crc = le_u32(&bytes[28..32]);
        if crc32fast::hash(&bytes[0..28]) != stored_crc {
            return Err(corrupt("WAL header checksum mismatch"));
        }
        // Checked after the checksum so a flipped bit reads as damage, not as a
        // file from another version.
        let version = le_u32(&bytes[8..12]);
        if version != VERSION {
            return Err(StorageError::UnsupportedVersion {
                file: file.to_path_buf(),
                found: version,
                supported: VERSION,
            });
        }
        Ok(FileHeader {
            seed: le_u64(&bytes[12..20]),
            first_lsn: le_u64(&bytes[20..28]),
        })
    }
}

/// Name of the file whose first record has `first_lsn`.
pub fn file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.{EXTENSION}")
}

/// The first LSN encoded in a log file name, or `None` if it is not one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Checksum of one record: seed, length, lsn, kind and payload.
pub fn record_crc(seed: u64, lsn: u64, kind: u8, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seed.to_le_bytes());
    // Payload length is bounded by MAX_PAYLOAD, so it always fits in u32.
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(&lsn.to_le_bytes());
    h.update(&[kind]);
    h.update(payload);
    h.finalize()
}

/// Appends the framed record to `out`. The caller has checked `payload.len() <= MAX_PAYLOAD`.
pub fn encode_record(out: &mut Vec<u8>, seed: u64, lsn: u64, kind: u8, payload: &[u8]) {
    out.reserve(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_crc(seed, lsn, kind, payload).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// A record that verified, borrowed from the file buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub lsn: u64,
    pub kind: u8,
    pub payload: &'a [u8],
    /// Total bytes of the record, frame included.
    pub size: usize,
}

/// Parses the record at `buf[at..]`, or `None` when the bytes there are short, framed
/// beyond the buffer, or fail the checksum.
pub fn decode_record(buf: &[u8], at: usize, seed: u64) -> Option<RawRecord<'_>> {
    let frame = buf.get(at..at.checked_add(RECORD_HEADER_LEN)?)?;
    let len = le_u32(&frame[0..4]) as usize;
    if len > MAX_PAYLOAD {
        return None;
    }
    let crc = le_u32(&frame[4..8]);
    let lsn = le_u64(&frame[8..16]);
    let kind = frame[16];
    let start = at + RECORD_HEADER_LEN;
    let payload = buf.get(start..start.checked_add(len)?)?;
    if record_crc(seed, lsn, kind, payload) != crc {
        return None;
    }
    Some(RawRecord {
        lsn,
        kind,
        payload,
        size: RECORD_HEADER_LEN + len,
    })
}

/// The LSN field of a frame at `buf[at..]` without verifying anything; lets the
/// corruption scan skip most offsets before computing a checksum.
pub fn peek_lsn(buf: &[u8], at: usize) -> Option<u64> {
    let field = buf.get(at.checked_add(8)?..at.checked_add(16)?)?;
    Some(le_u64(field))
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = FileHeader {
            seed: 0x0123_4567_89ab_cdef,
            first_lsn: 42,
        };
        let bytes = h.encode();
        let p = Path::new("x.wal");
        assert_eq!(FileHeader::decode(&bytes, p).unwrap(), h);
        for i in 0..HEADER_LEN {
            let mut b = bytes;
            b[i] ^= 0x10;
            assert!(FileHeader::decode(&b, p).is_err(), "flip at byte {i}");
        }
        assert!(FileHeader::decode(&bytes[..31], p).is_err());
    }

    #[test]
    fn other_version_is_reported_as_such() {
        let mut bytes = FileHeader {
            seed: 1,
            first_lsn: 1,
        }
        .encode();
        bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[0..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        match FileHeader::decode(&bytes, Path::new("x.wal")) {
            Err(StorageError::UnsupportedVersion { found, .. }) => assert_eq!(found, 7),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn record_layout_is_as_documented() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 9, 0x0102, 3, b"abc");
        assert_eq!(buf.len(), RECORD_HEADER_LEN + 3);
        assert_eq!(&buf[0..4], &3u32.to_le_bytes());
        assert_eq!(&buf[4..8], &record_crc(9, 0x0102, 3, b"abc").to_le_bytes());
        assert_eq!(&buf[8..16], &0x0102u64.to_le_bytes());
        assert_eq!(buf[16], 3);
        assert_eq!(&buf[17..], b"abc");
        let r = decode_record(&buf, 0, 9).unwrap();
        assert_eq!(
            (r.lsn, r.kind, r.payload, r.size),
            (0x0102, 3, &b"abc"[..], 20)
        );
        // Another file's seed never verifies.
        assert!(decode_record(&buf, 0, 10).is_none());
        // Short buffers never verify.
        for cut in 0..buf.len() {
            assert!(decode_record(&buf[..cut], 0, 9).is_none(), "cut {cut}");
        }
    }

    #[test]
    fn file_names_sort_and_parse() {
        assert_eq!(file_name(7), "00000000000000000007.wal");
        assert_eq!(parse_file_name(&file_name(7)), Some(7));
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert!(file_name(9) < file_name(10));
        assert_eq!(parse_file_name("7.wal"), None);
        assert_eq!(parse_file_name("0000000000000000000a.wal"), None);
        assert_eq!(parse_file_name("00000000000000000007.tmp"), None);
    }
}
