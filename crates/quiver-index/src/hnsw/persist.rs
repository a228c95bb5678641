//! Writing a graph to a directory and reading it back without rebuilding.
//!
//! hnsw_rs writes the graph (`graph.hnsw.graph`) and the vectors (`graph.hnsw.data`) in
//! its own format, which stores native-endian `usize` fields. Quiver wraps the pair with
//! a small description file that is explicit little-endian, versioned and checksummed;
//! it also records a CRC32 of each hnsw_rs file, so a damaged dump is refused before
//! hnsw_rs parses it, and a dump is only loaded on a 64-bit little-endian host (the only
//! hosts whose native layout matches the files; others get a clear error).
//!
//! `quiver-hnsw.meta`, 68 bytes:
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0 | 4 | magic `QVHN` |
//! | 4 | 4 | format version (u32, currently 1) |
//! | 8 | 1 | distance: 0 cosine, 1 dot, 2 L2 |
//! | 9 | 3 | zero |
//! | 12 | 4 | dim (u32) |
//! | 16 | 4 | m (u32) |
//! | 20 | 4 | ef_construction (u32) |
//! | 24 | 4 | ef_search (u32) |
//! | 28 | 4 | zero |
//! | 32 | 8 | number of points (u64) |
//! | 40 | 8 | length of `graph.hnsw.graph` (u64) |
//! | 48 | 4 | CRC32 of `graph.hnsw.graph` |
//! | 52 | 8 | length of `graph.hnsw.data` (u64) |
//! | 60 | 4 | CRC32 of `graph.hnsw.data` |
//! | 64 | 4 | CRC32 of bytes 0..64 |
//!
//! The description is written last (temp file, fsync, rename, fsync directory), so a
//! directory holding it holds a complete dump.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use hnsw_rs::prelude::{AnnT, DistL2, HnswIo, ReloadOptions};
use quiver_core::Distance;

use super::{with_graph, DenseIndex, DotDist, Graph, HnswParams};
use crate::{IndexError, Result};

const MAGIC: &[u8; 4] = b"QVHN";
const VERSION: u32 = 1;
const META_LEN: usize = 68;
const BASENAME: &str = "graph";
/// Name of the description file inside a dump directory.
pub const META_FILE: &str = "quiver-hnsw.meta";

/// How a dumped graph is read back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Memory-map the vector file instead of reading it into memory. The files must
    /// then stay unchanged for the life of the index (segments are immutable).
    pub mmap: bool,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> IndexError {
    IndexError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn distance_code(d: Distance) -> u8 {
    match d {
        Distance::Cosine => 0,
        Distance::Dot => 1,
        Distance::L2 => 2,
    }
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| IndexError::InvalidInput(format!("{what} {v} too large")))
}

/// Length and CRC32 of a file, read in streaming fashion.
fn checksum_file(path: &Path) -> Result<(u64, u32)> {
    let mut file = File::open(path).map_err(|e| IndexError::io(path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| IndexError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize()))
}

fn sync_path(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| IndexError::io(path, e))
}

fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{BASENAME}.hnsw.graph")),
        dir.join(format!("{BASENAME}.hnsw.data")),
    )
}

impl DenseIndex {
    /// Writes the graph and its vectors into `dir` (created if missing).
    /// An empty graph has nothing to dump (hnsw_rs has no entry point to write).
    pub fn dump(&self, dir: &Path) -> Result<()> {
        if self.is_empty() {
            return Err(IndexError::InvalidInput(
                "cannot dump an empty graph".into(),
            ));
        }
        fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let name = with_graph!(self.graph(), g => g.file_dump(dir, BASENAME))
            .map_err(|e| IndexError::Graph(format!("dump to {}: {e}", dir.display())))?;
        if name != BASENAME {
            // hnsw_rs picks another name rather than overwrite files it has mapped.
            return Err(IndexError::InvalidInput(format!(
                "{} already holds the memory-mapped graph being dumped",
                dir.display()
            )));
        }
        let (graph_path, data_path) = files(dir);
        sync_path(&graph_path)?;
        sync_path(&data_path)?;
        let (graph_len, graph_crc) = checksum_file(&graph_path)?;
        let (data_len, data_crc) = checksum_file(&data_path)?;
        let p = self.params();
        let mut meta = Vec::with_capacity(META_LEN);
        meta.extend_from_slice(MAGIC);
        meta.extend_from_slice(&VERSION.to_le_bytes());
        meta.extend_from_slice(&[distance_code(self.distance()), 0, 0, 0]);
        meta.extend_from_slice(&u32_of(self.dim(), "dim")?.to_le_bytes());
        meta.extend_from_slice(&u32_of(p.m, "m")?.to_le_bytes());
        meta.extend_from_slice(&u32_of(p.ef_construction, "ef_construction")?.to_le_bytes());
        meta.extend_from_slice(&u32_of(p.ef_search, "ef_search")?.to_le_bytes());
        meta.extend_from_slice(&0u32.to_le_bytes());
        meta.extend_from_slice(&(self.len() as u64).to_le_bytes());
        meta.extend_from_slice(&graph_len.to_le_bytes());
        meta.extend_from_slice(&graph_crc.to_le_bytes());
        meta.extend_from_slice(&data_len.to_le_bytes());
        meta.extend_from_slice(&data_crc.to_le_bytes());
        let crc = crc32fast::hash(&meta);
        meta.extend_from_slice(&crc.to_le_bytes());

        let tmp = dir.join(format!("{META_FILE}.tmp"));
        let target = dir.join(META_FILE);
        let mut file = File::create(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
        file.write_all(&meta)
            .and_then(|()| file.sync_all())
            .map_err(|e| IndexError::io(&tmp, e))?;
        fs::rename(&tmp, &target).map_err(|e| IndexError::io(&target, e))?;
        sync_path(dir)
    }

    /// Reads a graph written by [`DenseIndex::dump`], checking every checksum first.
    pub fn load(dir: &Path, options: LoadOptions) -> Result<DenseIndex> {
        let meta_path = dir.join(META_FILE);
        let meta = fs::read(&meta_path).map_err(|e| IndexError::io(&meta_path, e))?;
        let desc = Description::parse(&meta).map_err(|r| corrupt(&meta_path, r))?;
        if !(cfg!(target_endian = "little") && cfg!(target_pointer_width = "64")) {
            return Err(IndexError::InvalidInput(
                "HNSW dumps load only on 64-bit little-endian hosts".into(),
            ));
        }
        let (graph_path, data_path) = files(dir);
        for (path, want) in [(&graph_path, desc.graph), (&data_path, desc.data)] {
            let got = checksum_file(path)?;
            if got != want {
                return Err(corrupt(
                    path,
                    format!(
                        "length/CRC32 {}/{:08x}, description says {}/{:08x}",
                        got.0, got.1, want.0, want.1
                    ),
                ));
            }
        }
        let reload = ReloadOptions::default().set_mmap(options.mmap);
        let io = NonNull::from(Box::leak(Box::new(HnswIo::new_with_options(
            dir, BASENAME, reload,
        ))));
        // SAFETY: the loader lives on the heap until `DenseIndex::drop` frees it after the
        // graph; nothing else touches it, so this exclusive borrow is never aliased.
        let io_ref: &'static mut HnswIo = unsafe { &mut *io.as_ptr() };
        let loaded = match desc.distance {
            Distance::Cosine | Distance::L2 => io_ref.load_hnsw::<f32, DistL2>().map(Graph::L2),
            Distance::Dot => io_ref.load_hnsw::<f32, DotDist>().map(Graph::Dot),
        };
        let graph = match loaded {
            Ok(graph) => graph,
            Err(e) => {
                // SAFETY: the load failed, so no graph borrows the loader.
                drop(unsafe { Box::from_raw(io.as_ptr()) });
                return Err(IndexError::Graph(format!("load {}: {e}", dir.display())));
            }
        };
        let index = DenseIndex::from_parts(graph, Some(io), desc.distance, desc.dim, desc.params);
        if index.len() as u64 != desc.points {
            return Err(corrupt(
                &graph_path,
                format!(
                    "holds {} points, description says {}",
                    index.len(),
                    desc.points
                ),
            ));
        }
        Ok(index)
    }
}

struct Description {
    distance: Distance,
    dim: usize,
    params: HnswParams,
    points: u64,
    graph: (u64, u32),
    data: (u64, u32),
}

impl Description {
    fn parse(b: &[u8]) -> std::result::Result<Self, String> {
        if b.len() != META_LEN {
            return Err(format!("{} bytes, expected {META_LEN}", b.len()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        if crc32fast::hash(&b[..64]) != u32_at(64) {
            return Err("checksum mismatch".into());
        }
        if &b[..4] != MAGIC {
            return Err("not an HNSW description (bad magic)".into());
        }
        if u32_at(4) != VERSION {
            return Err(format!("format version {} is not supported", u32_at(4)));
        }
        let distance = match b[8] {
            0 => Distance::Cosine,
            1 => Distance::Dot,
            2 => Distance::L2,
            other => return Err(format!("unknown distance code {other}")),
        };
        let params = HnswParams {
            m: u32_at(16) as usize,
            ef_construction: u32_at(20) as usize,
            ef_search: u32_at(24) as usize,
        };
        params.validate().map_err(|e| e.to_string())?;
        Ok(Description {
            distance,
            dim: u32_at(12) as usize,
            params,
            points: u64_at(32),
            graph: (u64_at(40), u32_at(48)),
            data: (u64_at(52), u32_at(60)),
        })
    }
}
