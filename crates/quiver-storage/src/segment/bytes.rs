//! Little-endian encoding helpers shared by the segment, tombstone and manifest
//! formats. Every integer Quiver writes to disk goes through these, so no host-endian
//! or `usize` bytes reach a file.

use std::path::Path;

use crate::{Result, StorageError};

/// Appends fixed-width little-endian integers to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends the crc32 of everything written so far; the last field of every file.
    pub(crate) fn finish_with_crc(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.buf);
        self.u32(crc);
        self.buf
    }
}

/// Reads fixed-width little-endian integers from a byte slice, reporting short reads
/// as corruption at the offset where they happened.
#[derive(Debug)]
pub(crate) struct Reader<'a, 'p> {
    data: &'a [u8],
    pos: usize,
    file: &'p Path,
}

impl<'a, 'p> Reader<'a, 'p> {
    pub(crate) fn new(data: &'a [u8], file: &'p Path) -> Self {
        Reader { data, pos: 0, file }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let out = &self.data[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(corruption(
                self.file,
                self.pos as u64,
                "unexpected end of data",
            )),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(b))
    }
}

/// Builds a [`StorageError::Corruption`] for `file` at byte `offset`.
pub(crate) fn corruption(file: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corruption {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// Checks the trailing crc32 of a whole-file record (magic .. body .. crc) and its magic
/// and version, returning the body between the version field and the checksum.
pub(crate) fn check_envelope<'a>(
    data: &'a [u8],
    file: &Path,
    magic: &[u8; 8],
    version: u32,
) -> Result<&'a [u8]> {
    check_envelope_from(data, file, magic, version, version).map(|(_, body)| body)
}

/// [`check_envelope`] for a format that reads every version from `oldest` to
/// `newest`; returns the version found with the body.
pub(crate) fn check_envelope_from<'a>(
    data: &'a [u8],
    file: &Path,
    magic: &[u8; 8],
    oldest: u32,
    newest: u32,
) -> Result<(u32, &'a [u8])> {
    if data.len() < 16 {
        return Err(corruption(file, 0, "file too short"));
    }
    if &data[..8] != magic {
        return Err(corruption(file, 0, "bad magic"));
    }
    let split = data.len() - 4;
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&data[split..]);
    if crc32fast::hash(&data[..split]) != u32::from_le_bytes(crc) {
        return Err(corruption(file, split as u64, "checksum mismatch"));
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&data[8..12]);
    let found = u32::from_le_bytes(v);
    if !(oldest..=newest).contains(&found) {
        return Err(StorageError::UnsupportedVersion {
            file: file.to_path_buf(),
            found,
            supported: newest,
        });
    }
    Ok((found, &data[12..split]))
}

/// Starts a whole-file record with its magic and version.
pub(crate) fn envelope(magic: &[u8; 8], version: u32, capacity: usize) -> Writer {
    let mut w = Writer::with_capacity(capacity + 16);
    w.bytes(magic).u32(version);
    w
}
