//! A sealed segment's graph over its nodes (chunks, or rows without chunks; see
//! `Segment::nodes`): built once (`quiver_index::DenseIndex`), exported into a flat file beside
//! the segment's vectors (`segments/<id>/graph.qvg`, format in
//! `quiver_index::FlatGraph`'s `format` module), and from then on only mapped and
//! searched in place.
//!
//! Opening never rebuilds a good graph. A missing or damaged file, or one built with
//! other settings, is rebuilt from the segment's vectors with a warning; a segment
//! written by an earlier release, whose graph is an hnsw_rs dump in `hnsw/`, has that
//! dump converted once and the old directory removed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use quiver_core::CollectionConfig;
use quiver_index::{rescore, DenseIndex, FlatGraph, Hit, LoadOptions, RowFilter, VectorRows};
use quiver_storage::segment::Segment;

use crate::dense::{index_err, keep_allowed, params, SearchArgs, SegmentVectors, VecIndex};
use crate::plan::Plan;
use crate::Result;

/// File name of a sealed segment's graph inside its directory.
pub const GRAPH_FILE: &str = "graph.qvg";
/// Directory of the hnsw_rs dump segments of earlier releases kept their graph in.
pub const LEGACY_GRAPH_DIR: &str = "hnsw";

/// The graph file of the segment in `segment_dir`.
pub fn graph_path(segment_dir: &Path) -> PathBuf {
    segment_dir.join(GRAPH_FILE)
}

/// A sealed segment's graph and the settings its searches use.
#[derive(Debug)]
pub(crate) struct SegmentGraph {
    flat: FlatGraph,
    /// The collection's full vector length (the graph may hold a shorter prefix).
    dim: usize,
    ef_search: usize,
}

impl SegmentGraph {
    fn new(flat: FlatGraph, config: &CollectionConfig) -> Self {
        SegmentGraph {
            flat,
            dim: config.dim,
            ef_search: config.hnsw.ef_search,
        }
    }

    /// Builds the graph of a freshly written segment and saves it into the segment.
    /// Returns `None`, saving nothing, once `cancel` is set (checked between batches of
    /// inserts). The inserts run on the current rayon pool, so a caller bounds the cores
    /// a build takes by running it inside a smaller pool.
    pub(crate) fn build(
        segment: &Segment,
        config: &CollectionConfig,
        cancel: &AtomicBool,
    ) -> Result<Option<Self>> {
        let Some(index) = hnsw(segment, config, cancel)? else {
            return Ok(None);
        };
        let flat = export(&index, segment)?;
        Ok(Some(Self::new(save_and_map(flat, segment), config)))
    }

    /// The graph of a segment just written from vectors already in a built graph (a
    /// memtable's, keyed by write sequence, or a merged segment's): `node_of_key` gives
    /// the node of each key that became one. Exported without inserting anything again;
    /// falls back to a fresh build when the graph lacks a row or holds mostly nodes
    /// without a row (overwritten versions, deleted rows: leaving them out would leave
    /// too sparse a graph).
    pub(crate) fn from_graph(
        segment: &Segment,
        config: &CollectionConfig,
        graph: &VecIndex,
        node_of_key: &[Option<usize>],
    ) -> Result<Self> {
        let graph = graph.graph();
        if graph.len() <= segment.nodes().saturating_mul(2) {
            let rows = VectorRows::new(segment.node_vectors(), segment.dim());
            let row_of = |key: usize| node_of_key.get(key).copied().flatten();
            match FlatGraph::export_mapped(graph, rows, &row_of) {
                Ok(flat) => return Ok(Self::new(save_and_map(flat, segment), config)),
                Err(e) => {
                    tracing::warn!(segment = %segment.dir().display(), error = %e, "graph not reusable; building the segment's graph")
                }
            }
        }
        Self::build_whole(segment, config)
    }

    /// [`Self::build`] with nothing to cancel it.
    pub(crate) fn build_whole(segment: &Segment, config: &CollectionConfig) -> Result<Self> {
        let never = AtomicBool::new(false);
        let built = Self::build(segment, config, &never)?;
        built.ok_or_else(|| crate::EngineError::InvalidInput("graph build cancelled".into()))
    }

    /// Maps the saved graph of `segment`; converts an earlier release's dump, or
    /// rebuilds a graph that is missing, damaged or built with other settings.
    pub(crate) fn open(segment: &Segment, config: &CollectionConfig) -> Result<Self> {
        let path = graph_path(segment.dir());
        let reason = if path.exists() {
            match FlatGraph::open(&path) {
                Ok(g) if fits(&g, segment, config) => return Ok(Self::new(g, config)),
                Ok(_) => "built with other settings".to_string(),
                Err(e) => e.to_string(),
            }
        } else {
            "missing".to_string()
        };
        let graph = match convert_legacy(segment, config) {
            Some(flat) => Self::new(flat, config),
            None => {
                tracing::warn!(segment = %segment.dir().display(), %reason, "rebuilding HNSW graph");
                Self::build_whole(segment, config)?
            }
        };
        remove_legacy(segment);
        Ok(graph)
    }

    /// The best `k` rows the filter allows, best first, scored at full length, by the
    /// plan `args` calls for (see `plan`).
    ///
    /// `all_rows` is the segment's row count: when `args.allowed` says every row is
    /// allowed the filter is skipped.
    pub(crate) fn search(
        &self,
        args: &SearchArgs<'_>,
        filter: &dyn RowFilter,
        source: &SegmentVectors<'_>,
        all_rows: u64,
    ) -> Result<Vec<Hit>> {
        let segment = source.0;
        let distance = self.flat.distance();
        let rows = VectorRows::new(segment.node_vectors(), segment.dim());
        let prefix = self.flat.dim() < self.dim;
        // A walk `width` wide for `k` rows, rescored at full length when the graph
        // holds prefixes.
        let walk = |width: usize, k: usize, filter: Option<&dyn RowFilter>| {
            let wanted = if prefix { args.rescore.max(k) } else { k };
            let found = self
                .flat
                .search(rows, args.query, wanted, width.max(wanted), filter)
                .map_err(index_err)?;
            Ok::<_, crate::EngineError>(if prefix {
                rescore(distance, args.query, &found, k, source)
            } else {
                found
            })
        };
        match args.plan(self.ef_search) {
            Plan::Exact if prefix => {
                let rows: Vec<Hit> = args
                    .candidates(filter, all_rows)
                    .map(|row| Hit { row, score: 0.0 })
                    .collect();
                Ok(rescore(distance, args.query, &rows, args.k, source))
            }
            Plan::Exact => {
                let listed: Vec<u64> = args.candidates(filter, all_rows).collect();
                self.flat
                    .scan(rows, args.query, args.k, &listed)
                    .map_err(index_err)
            }
            Plan::Overfetch { width } => {
                match keep_allowed(walk(width, width, None)?, filter, args.k) {
                    Some(hits) => Ok(hits),
                    None => walk(width, args.k, Some(filter)),
                }
            }
            Plan::Filtered { width } => {
                let filter = (args.allowed != usize::try_from(all_rows).unwrap_or(usize::MAX))
                    .then_some(filter);
                walk(width, args.k, filter)
            }
        }
    }
}

/// Whether a saved graph belongs to `segment` under the collection's current settings.
fn fits(g: &FlatGraph, segment: &Segment, config: &CollectionConfig) -> bool {
    let p = params(config);
    g.len() == segment.nodes()
        && g.dim() == config.graph_dim()
        && g.stride() == segment.dim()
        && g.distance() == config.distance
        && g.build_params() == (p.m, p.ef_construction)
}

/// Rows inserted between two looks at the cancel flag.
const BUILD_CHUNK: usize = 2_048;

/// Inserts `rows` into `graph` in batches, in parallel on the current rayon pool;
/// returns false, leaving the rest out, once `cancel` is set.
pub(crate) fn insert_until_cancelled(
    graph: &VecIndex,
    rows: &[(u64, &[f32])],
    cancel: &AtomicBool,
) -> Result<bool> {
    for chunk in rows.chunks(BUILD_CHUNK) {
        if cancel.load(Ordering::Acquire) {
            return Ok(false);
        }
        graph.insert_batch(chunk)?;
    }
    Ok(true)
}

/// A graph over the segment's nodes (node numbers as keys); `None` once `cancel`
/// is set.
fn hnsw(
    segment: &Segment,
    config: &CollectionConfig,
    cancel: &AtomicBool,
) -> Result<Option<DenseIndex>> {
    let index = VecIndex::new(config)?;
    let rows: Vec<(u64, &[f32])> = (0..segment.nodes())
        .map(|n| (n as u64, segment.node_vector(n)))
        .collect();
    if !insert_until_cancelled(&index, &rows, cancel)? {
        return Ok(None);
    }
    Ok(Some(match index {
        VecIndex::Full(g) => g,
        VecIndex::Prefix(m) => m.into_graph(),
    }))
}

fn export(index: &DenseIndex, segment: &Segment) -> Result<FlatGraph> {
    FlatGraph::export(
        index,
        VectorRows::new(segment.node_vectors(), segment.dim()),
    )
    .map_err(index_err)
}

/// Saves `flat` into the segment and maps it back; a graph that cannot be saved stays
/// in memory (the segment is still searchable) and is rebuilt on the next open.
fn save_and_map(flat: FlatGraph, segment: &Segment) -> FlatGraph {
    let path = graph_path(segment.dir());
    match flat.save(&path).and_then(|()| FlatGraph::open(&path)) {
        Ok(mapped) => mapped,
        Err(e) => {
            tracing::warn!(segment = %segment.dir().display(), error = %e, "could not save HNSW graph; keeping it in memory");
            flat
        }
    }
}

/// Converts the hnsw_rs dump of a segment written by an earlier release, if it has a
/// good one, and removes the dump.
fn convert_legacy(segment: &Segment, config: &CollectionConfig) -> Option<FlatGraph> {
    let dir = segment.dir().join(LEGACY_GRAPH_DIR);
    if !dir.exists() {
        return None;
    }
    let converted = DenseIndex::load(&dir, LoadOptions { mmap: true })
        .map_err(index_err)
        .and_then(|g| {
            let p = params(config);
            let same = g.len() == segment.nodes()
                && g.dim() == config.graph_dim()
                && g.distance() == config.distance
                && (g.params().m, g.params().ef_construction) == (p.m, p.ef_construction);
            if same {
                export(&g, segment).map(Some)
            } else {
                Ok(None)
            }
        });
    let flat = match converted {
        Ok(Some(flat)) => save_and_map(flat, segment),
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(segment = %segment.dir().display(), error = %e, "earlier HNSW dump unreadable");
            return None;
        }
    };
    tracing::info!(segment = %segment.dir().display(), "converted HNSW dump to a flat graph");
    Some(flat)
}

/// Removes an earlier release's dump once the segment has its flat graph on disk.
fn remove_legacy(segment: &Segment) {
    let dir = segment.dir().join(LEGACY_GRAPH_DIR);
    if dir.exists() && graph_path(segment.dir()).exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove converted HNSW dump");
        }
    }
}
