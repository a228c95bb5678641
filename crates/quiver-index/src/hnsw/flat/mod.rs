//! Flat, memory-mapped HNSW graphs for immutable segments.
//!
//! A graph under construction lives in growable chunks with a lock per node (`graph`).
//! A sealed segment never changes, so its graph is exported once ([`FlatGraph::export`])
//! into one file of fixed-stride `u32` link lists (byte table in `format`) and searched
//! in place by its own loop (`search`). Opening maps the file, checks it, and leaves it
//! to the page cache: nothing is copied into the heap, so a collection's resident memory
//! is what its queries touch.
//!
//! The graph stores links and, from 128 dimensions up, one byte per dimension of each
//! row (`codes`) for the walk to compare. The vectors are read from the segment's own
//! vector file, passed to each search as [`VectorRows`], so they are stored once.

mod codes;
mod format;
mod scan;
mod search;

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use memmap2::{Mmap, UncheckedAdvice};
use quiver_core::Distance;

pub use self::format::VectorRows;
use self::format::{Layout, HEADER_WORDS};
use super::DenseIndex;
use crate::{IndexError, Result};

/// The graph's words: a mapping of its file, or decoded words on hosts whose byte order
/// or alignment rules out reading the mapping in place.
#[derive(Debug)]
enum Words {
    Mapped(Mmap),
    Owned(Vec<u32>),
}

impl Words {
    fn as_slice(&self) -> &[u32] {
        match self {
            Words::Mapped(m) => {
                // SAFETY: `FlatGraph::open` keeps a mapping only on little-endian hosts
                // when it is 4-byte aligned (mappings start on a page); every bit pattern
                // is a valid u32; the length is rounded down to whole words; the slice
                // borrows `self`, which owns the mapping.
                unsafe { std::slice::from_raw_parts(m.as_ptr().cast::<u32>(), m.len() / 4) }
            }
            Words::Owned(v) => v,
        }
    }
}

/// An immutable HNSW graph over the rows of a vector file.
#[derive(Debug)]
pub struct FlatGraph {
    words: Words,
    layout: Layout,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> IndexError {
    IndexError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl FlatGraph {
    /// Exports `index` (built over rows `0..n` of `rows`) into a flat graph held in
    /// memory; [`FlatGraph::save`] writes it out.
    pub fn export(index: &DenseIndex, rows: VectorRows<'_>) -> Result<FlatGraph> {
        Self::export_mapped(index, rows, &Some)
    }

    /// Exports `index`, whose nodes have keys other than rows (a memtable's graph, keyed
    /// by write sequence): `row_of` gives each key's row in `rows`, or `None` for a node
    /// to leave out (an overwritten version). Links through a left-out node are replaced
    /// by its own links. Fails unless every row is exactly one kept node's.
    pub fn export_mapped(
        index: &DenseIndex,
        rows: VectorRows<'_>,
        row_of: &dyn Fn(usize) -> Option<usize>,
    ) -> Result<FlatGraph> {
        let words = format::export(index, rows, row_of)?;
        let layout = Layout::parse(&words, words.len())
            .map_err(|r| IndexError::InvalidInput(format!("exported graph does not parse: {r}")))?;
        Ok(FlatGraph {
            words: Words::Owned(words),
            layout,
        })
    }

    /// Writes the graph to `path`: a temp file beside it, fsync, rename, fsync of the
    /// directory, so `path` holds either nothing or a whole graph.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in self.words().chunks(1 << 14) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|w| w.to_le_bytes()));
            file.write_all(&buf).map_err(|e| IndexError::io(&tmp, e))?;
        }
        file.sync_all().map_err(|e| IndexError::io(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| IndexError::io(path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| IndexError::io(dir, e))
    }

    /// Maps the graph at `path` and checks it whole (checksums, every count and link in
    /// range). The check reads the file once through the mapping and then tells the
    /// kernel those pages are not needed, so they stay in the page cache without
    /// counting towards the process's memory until a search touches them.
    pub fn open(path: &Path) -> Result<FlatGraph> {
        let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
        let len = file.metadata().map_err(|e| IndexError::io(path, e))?.len();
        if len % 4 != 0 || len < (HEADER_WORDS * 4) as u64 {
            return Err(corrupt(path, format!("{len} bytes is not a flat graph")));
        }
        // SAFETY: segment files are immutable once written; Quiver never modifies them,
        // it only deletes whole segment directories.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| IndexError::io(path, e))?;
        let in_place = cfg!(target_endian = "little")
            && map.as_ptr().align_offset(std::mem::align_of::<u32>()) == 0;
        let words = if in_place {
            Words::Mapped(map)
        } else {
            Words::Owned(
                map.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        };
        let w = words.as_slice();
        let layout = Layout::parse(w, w.len()).map_err(|r| corrupt(path, r))?;
        layout.verify(w).map_err(|r| corrupt(path, r))?;
        if let Words::Mapped(map) = &words {
            // SAFETY: the mapping is private and read-only over an immutable file, so
            // dropping its resident pages loses nothing: they are read back on access.
            // Failure only leaves the pages resident.
            let _ = unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) };
        }
        Ok(FlatGraph { words, layout })
    }

    fn words(&self) -> &[u32] {
        self.words.as_slice()
    }

    /// Nodes (rows) in the graph.
    pub fn len(&self) -> usize {
        self.layout.n
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.layout.n == 0
    }

    /// The prefix of each row the graph compares.
    pub fn dim(&self) -> usize {
        self.layout.dim
    }

    /// Floats per row of the vector file the graph was exported over.
    pub fn stride(&self) -> usize {
        self.layout.stride
    }

    /// How the graph compares vectors.
    pub fn distance(&self) -> Distance {
        self.layout.distance
    }

    /// `M` and `ef_construction` the graph was built with.
    pub fn build_params(&self) -> (usize, usize) {
        (self.layout.m, self.layout.ef_construction)
    }

    /// Bytes the graph takes (on disk when mapped).
    pub fn byte_len(&self) -> usize {
        self.layout.words * 4
    }

    /// Whether the walk compares 8-bit codes of the rows (graph dim 128 and up), scoring
    /// only its results against the rows themselves.
    pub fn has_codes(&self) -> bool {
        self.layout.codes.is_some()
    }

    /// Whether the graph is searched from a file mapping (else from memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.words, Words::Mapped(_))
    }
}
