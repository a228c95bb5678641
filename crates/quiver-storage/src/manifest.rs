//! The collection manifest: which segments are live, the next segment id, and the
//! checkpoint LSN (every WAL record at or below it is already in a live segment or a
//! persisted tombstone bitmap, so recovery replays only records above it).
//!
//! The manifest is replaced as a whole with [`write_atomic`](crate::fsutil::write_atomic),
//! so a crash leaves either the old or the new one. `MANIFEST` format:
//!
//! | offset | size      | field                                  |
//! |-------:|----------:|----------------------------------------|
//! | 0      | 8         | magic `QVMANIF\0`                      |
//! | 8      | 4         | format version (u32, currently 1)      |
//! | 12     | 8         | checkpoint LSN (u64)                   |
//! | 20     | 8         | next segment id (u64)                  |
//! | 28     | 4         | number of live segments `n` (u32)      |
//! | 32     | 8 × n     | live segment ids (u64), ascending      |
//! | end-4  | 4         | crc32 of every byte before it          |
//!
//! All integers are little-endian.

use std::path::Path;

use crate::segment::{check_envelope, envelope, ByteReader};
use crate::{fsutil, Result, StorageError};

/// File name of the manifest inside a collection directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
const MAGIC: &[u8; 8] = b"QVMANIF\0";
const VERSION: u32 = 1;

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Every WAL record with `lsn <= checkpoint_lsn` is reflected in the segments.
    pub checkpoint_lsn: u64,
    /// Id the next written segment gets; always above every id ever used.
    pub next_segment_id: u64,
    /// Live segment ids, ascending.
    pub segments: Vec<u64>,
}

impl Manifest {
    /// Encodes the manifest in the `MANIFEST` format (segment ids sorted).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut ids = self.segments.clone();
        ids.sort_unstable();
        let n = u32::try_from(ids.len())
            .map_err(|_| StorageError::InvalidInput("too many segments".into()))?;
        let mut w = envelope(MAGIC, VERSION, 20 + ids.len() * 8);
        w.u64(self.checkpoint_lsn).u64(self.next_segment_id).u32(n);
        for id in ids {
            w.u64(id);
        }
        Ok(w.finish_with_crc())
    }

    /// Decodes a `MANIFEST` file's bytes; `file` names it in errors.
    pub fn decode(data: &[u8], file: &Path) -> Result<Manifest> {
        let body = check_envelope(data, file, MAGIC, VERSION)?;
        let mut r = ByteReader::new(body, file);
        let checkpoint_lsn = r.u64()?;
        let next_segment_id = r.u64()?;
        let n = r.u32()?;
        if body.len() as u64 != 20 + u64::from(n) * 8 {
            return Err(StorageError::Corruption {
                file: file.to_path_buf(),
                offset: 28,
                reason: "segment count disagrees with file length".into(),
            });
        }
        let mut segments = Vec::with_capacity(n as usize);
        for _ in 0..n {
            segments.push(r.u64()?);
        }
        if segments.iter().any(|&id| id >= next_segment_id) {
            return Err(StorageError::Corruption {
                file: file.to_path_buf(),
                offset: 20,
                reason: "a live segment id is not below the next segment id".into(),
            });
        }
        Ok(Manifest {
            checkpoint_lsn,
            next_segment_id,
            segments,
        })
    }

    /// Reads `dir/MANIFEST`; `None` when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_FILE);
        match std::fs::read(&path) {
            Ok(data) => Manifest::decode(&data, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    /// Atomically replaces `dir/MANIFEST` with this manifest.
    pub fn store(&self, dir: &Path) -> Result<()> {
        fsutil::write_atomic(&dir.join(MANIFEST_FILE), &self.encode()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            checkpoint_lsn: 42,
            next_segment_id: 9,
            segments: vec![3, 1, 8],
        }
    }

    #[test]
    fn roundtrip_sorts_ids() {
        let bytes = sample().encode().unwrap();
        let back = Manifest::decode(&bytes, Path::new("MANIFEST")).unwrap();
        assert_eq!(back.segments, vec![1, 3, 8]);
        assert_eq!((back.checkpoint_lsn, back.next_segment_id), (42, 9));
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_caught() {
        let bytes = sample().encode().unwrap();
        let p = Path::new("MANIFEST");
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(Manifest::decode(&bad, p).is_err(), "flip {bit:#x} at {i}");
            }
        }
        for len in 0..bytes.len() {
            assert!(
                Manifest::decode(&bytes[..len], p).is_err(),
                "truncated to {len}"
            );
        }
    }

    #[test]
    fn rejects_other_versions_and_bad_ids() {
        let mut w = envelope(MAGIC, 2, 20);
        w.u64(0).u64(1).u32(0);
        let err = Manifest::decode(&w.finish_with_crc(), Path::new("M")).unwrap_err();
        assert!(matches!(
            err,
            StorageError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ));
        let bad = Manifest {
            checkpoint_lsn: 0,
            next_segment_id: 3,
            segments: vec![3],
        };
        assert!(Manifest::decode(&bad.encode().unwrap(), Path::new("M")).is_err());
    }

    #[test]
    fn store_load_replace() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), None);
        sample().store(dir.path()).unwrap();
        let mut m = Manifest::load(dir.path()).unwrap().unwrap();
        m.segments.push(8);
        m.checkpoint_lsn = 50;
        m.store(dir.path()).unwrap();
        assert_eq!(
            Manifest::load(dir.path()).unwrap().unwrap().checkpoint_lsn,
            50
        );
    }
}
