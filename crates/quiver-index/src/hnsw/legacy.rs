//! Graphs of earlier releases: hnsw_rs dumps, read once and converted.
//!
//! Earlier releases kept each segment's graph as an hnsw_rs dump: hnsw_rs's graph file
//! (`graph.hnsw.graph`) and vector file (`graph.hnsw.data`), whose fields are native-endian
//! `usize`, wrapped by a small description file that is explicit little-endian, versioned
//! and checksummed and records a CRC32 of each hnsw_rs file. [`DenseIndex::load`] checks
//! every checksum, lets hnsw_rs parse the files (on 64-bit little-endian hosts only, the
//! only ones whose layout matches), and copies nodes, vectors and links into Quiver's own
//! graph, keeping the graph as it was built. Quiver no longer writes dumps; the
//! `legacy-dump` feature writes one, for tests of the conversion.
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

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
#[cfg(feature = "legacy-dump")]
use std::io::Write;
use std::path::{Path, PathBuf};

use hnsw_rs::prelude::{DistL2, Hnsw, HnswIo, ReloadOptions};
use quiver_core::Distance;

use super::dist::DotDist;
use super::{DenseIndex, HnswParams};
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
    /// Memory-map hnsw_rs's vector file while converting instead of reading it in.
    pub mmap: bool,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> IndexError {
    IndexError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
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

fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{BASENAME}.hnsw.graph")),
        dir.join(format!("{BASENAME}.hnsw.data")),
    )
}

/// Copies an hnsw_rs graph into `index` (empty, same dim and distance): every point
/// with its vector, origin id as key, and links, the entry point on the top level.
fn convert<D>(hnsw: &Hnsw<'_, f32, D>, index: &DenseIndex) -> Result<()>
where
    D: hnsw_rs::prelude::Distance<f32> + Send + Sync,
{
    let points = hnsw.get_point_indexation();
    let top = usize::from(points.get_max_level_observed());
    let mut all = Vec::with_capacity(hnsw.get_nb_point());
    for level in (0..=top).rev() {
        all.extend(points.get_layer_iterator(level));
    }
    let node_of: HashMap<usize, u32> = all
        .iter()
        .enumerate()
        .map(|(i, p)| (p.get_origin_id(), i as u32))
        .collect();
    let mut nodes = Vec::with_capacity(all.len());
    for p in &all {
        if p.get_v().len() != index.dim() {
            return Err(IndexError::Graph(format!(
                "dump holds a vector of {} floats, the graph {}",
                p.get_v().len(),
                index.dim()
            )));
        }
        let links: Vec<Vec<u32>> = p
            .get_neighborhood_id()
            .iter()
            .map(|layer| {
                layer
                    .iter()
                    .filter_map(|nb| node_of.get(&nb.d_id).copied())
                    .collect()
            })
            .collect();
        let own_level = usize::from(p.get_point_id().0);
        let links = links.into_iter().take(own_level + 1).collect();
        nodes.push((p.get_origin_id() as u64, p.get_v(), links));
    }
    // Points come top level first, so the first one is on the top level.
    index.graph.restore(&nodes, 0);
    Ok(())
}

impl DenseIndex {
    /// Reads a graph an earlier release dumped, checking every checksum first, and
    /// converts it into Quiver's own graph.
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
        let mut io = HnswIo::new_with_options(
            dir,
            BASENAME,
            ReloadOptions::default().set_mmap(options.mmap),
        );
        let failed =
            |e: &dyn std::fmt::Display| IndexError::Graph(format!("load {}: {e}", dir.display()));
        let index = DenseIndex::new(desc.dim, desc.distance, desc.params)?;
        match desc.distance {
            Distance::Cosine | Distance::L2 => {
                let hnsw = io.load_hnsw::<f32, DistL2>().map_err(|e| failed(&e))?;
                convert(&hnsw, &index)?;
            }
            Distance::Dot => {
                let hnsw = io.load_hnsw::<f32, DotDist>().map_err(|e| failed(&e))?;
                convert(&hnsw, &index)?;
            }
        }
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

/// Writes `rows` as an earlier release did: an hnsw_rs graph dump and its description.
/// Only for tests of the conversion (feature `legacy-dump`).
#[cfg(feature = "legacy-dump")]
pub fn write_legacy_dump(
    dir: &Path,
    distance: Distance,
    params: HnswParams,
    rows: &[(u64, Vec<f32>)],
) -> Result<()> {
    use hnsw_rs::prelude::AnnT;
    let Some(dim) = rows.first().map(|(_, v)| v.len()) else {
        return Err(IndexError::InvalidInput(
            "cannot dump an empty graph".into(),
        ));
    };
    let prepared: Vec<(Vec<f32>, usize)> = rows
        .iter()
        .map(|(row, v)| {
            let mut v = v.clone();
            if distance.normalizes() {
                quiver_core::normalize(&mut v);
            }
            (v, *row as usize)
        })
        .collect();
    let slices: Vec<(&[f32], usize)> = prepared.iter().map(|(v, id)| (&v[..], *id)).collect();
    fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
    // One row at a time: hnsw_rs's parallel insert can leave a row with no in-links (seen
    // on a few collinear points), and these dumps feed tests that search them.
    let (m, ef, n) = (params.m, params.ef_construction, rows.len());
    let dumped = match distance {
        Distance::Cosine | Distance::L2 => {
            let g = Hnsw::<f32, DistL2>::new(m, n, 16, ef, DistL2);
            slices.iter().for_each(|&row| g.insert_slice(row));
            g.file_dump(dir, BASENAME)
        }
        Distance::Dot => {
            let g = Hnsw::<f32, DotDist>::new(m, n, 16, ef, DotDist);
            slices.iter().for_each(|&row| g.insert_slice(row));
            g.file_dump(dir, BASENAME)
        }
    };
    dumped.map_err(|e| IndexError::Graph(format!("dump to {}: {e}", dir.display())))?;
    let (graph_path, data_path) = files(dir);
    let (graph_len, graph_crc) = checksum_file(&graph_path)?;
    let (data_len, data_crc) = checksum_file(&data_path)?;
    let code = match distance {
        Distance::Cosine => 0u8,
        Distance::Dot => 1,
        Distance::L2 => 2,
    };
    let mut meta = Vec::with_capacity(META_LEN);
    meta.extend_from_slice(MAGIC);
    meta.extend_from_slice(&VERSION.to_le_bytes());
    meta.extend_from_slice(&[code, 0, 0, 0]);
    for word in [dim, m, ef, params.ef_search, 0] {
        meta.extend_from_slice(&(word as u32).to_le_bytes());
    }
    meta.extend_from_slice(&(n as u64).to_le_bytes());
    meta.extend_from_slice(&graph_len.to_le_bytes());
    meta.extend_from_slice(&graph_crc.to_le_bytes());
    meta.extend_from_slice(&data_len.to_le_bytes());
    meta.extend_from_slice(&data_crc.to_le_bytes());
    let crc = crc32fast::hash(&meta);
    meta.extend_from_slice(&crc.to_le_bytes());
    let path = dir.join(META_FILE);
    File::create(&path)
        .and_then(|mut f| f.write_all(&meta).and_then(|()| f.sync_all()))
        .map_err(|e| IndexError::io(&path, e))
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
