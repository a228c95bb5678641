//! Read-only mappings of segment files: [`Bytes`] maps a whole file, [`Vectors`]
//! views `vectors.f32` as floats.
//!
//! Mapping touches no page: pages become resident (and count in the process's RSS)
//! only when a query reads them, so opening a segment costs address space, not memory.
//!
//! Vector access is zero-copy: an mmap starts on a page boundary, so `vectors.f32` is
//! 4-byte aligned and on a little-endian host its bytes already are `f32`s in native
//! order; [`Vectors::as_f32`] reinterprets them in place. On a big-endian host (or if
//! the mapping were ever misaligned) the floats are decoded into an owned buffer
//! instead, trading memory for portability.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::{Result, StorageError};

/// A read-only byte view of a whole file; empty files are not mapped (a zero-length
/// mapping is not portable).
#[derive(Debug)]
pub(crate) enum Bytes {
    Mapped(Mmap),
    Empty,
}

impl Bytes {
    /// Maps `file` (at `path`, `len` bytes long as its metadata said).
    pub(crate) fn map(file: &File, len: u64, path: &Path) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::Empty);
        }
        // SAFETY: segment files are immutable once their directory is renamed into
        // place; Quiver never writes, truncates or reuses them, it only deletes whole
        // directories (which keeps existing mappings valid on the platforms it targets).
        let map = unsafe { Mmap::map(file) }.map_err(|e| StorageError::io(path, e))?;
        Ok(Bytes::Mapped(map))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Empty => &[],
        }
    }
}

/// The vectors of a segment, mapped in place or decoded (see the module docs).
#[derive(Debug)]
pub(crate) enum Vectors {
    Mapped(Bytes),
    Owned(Vec<f32>),
}

impl Vectors {
    pub(crate) fn new(bytes: Bytes) -> Vectors {
        let raw = bytes.as_slice();
        let aligned = raw.as_ptr().align_offset(std::mem::align_of::<f32>()) == 0;
        if cfg!(target_endian = "little") && aligned {
            return Vectors::Mapped(bytes);
        }
        let floats = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Vectors::Owned(floats)
    }

    pub(crate) fn as_f32(&self) -> &[f32] {
        match self {
            Vectors::Mapped(bytes) => {
                let raw = bytes.as_slice();
                if raw.is_empty() {
                    return &[];
                }
                // SAFETY: `Vectors::new` only keeps the mapping when the host is
                // little-endian and the pointer is f32-aligned; every bit pattern is a
                // valid f32; the length is rounded down to whole floats; the slice
                // borrows `self`, which owns the mapping.
                unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<f32>(), raw.len() / 4) }
            }
            Vectors::Owned(v) => v,
        }
    }
}
