//! The engine's vector indexes: an HNSW graph for each memtable, built from the
//! collection's settings, and the pieces sealed segments share with it (see
//! `segment_graph` for the flat graphs sealed segments search).
//!
//! A memtable graph's rows are memtable sequence numbers. When the collection sets
//! `index_dim`, graphs hold only that prefix of each vector and every search rescores its
//! top `rescore` candidates exactly at the full `dim`, reading full vectors from the
//! segment (memory-mapped) or the memtable.

use quiver_core::CollectionConfig;
use quiver_index::{
    exact_search, DenseIndex, Hit, HnswParams, MatryoshkaIndex, RowFilter, RowSet, VectorSource,
};
use quiver_storage::segment::Segment;

use crate::plan::{plan, Plan};
use crate::{EngineError, Result};

pub(crate) fn index_err(e: quiver_index::IndexError) -> EngineError {
    match e {
        quiver_index::IndexError::InvalidInput(m) => EngineError::InvalidInput(m),
        other => EngineError::Index(other),
    }
}

/// Graph parameters of a collection.
pub(crate) fn params(config: &CollectionConfig) -> HnswParams {
    HnswParams {
        m: config.hnsw.m,
        ef_construction: config.hnsw.ef_construction,
        ef_search: config.hnsw.ef_search,
    }
}

/// Full vectors by node (see `Segment::nodes`), for rescoring.
pub(crate) struct SegmentVectors<'a>(pub(crate) &'a Segment);

impl VectorSource for SegmentVectors<'_> {
    fn vector(&self, node: u64) -> Option<&[f32]> {
        let node = usize::try_from(node).ok()?;
        (node < self.0.nodes()).then(|| self.0.node_vector(node))
    }
}

/// An HNSW graph over full vectors or over a Matryoshka prefix of them.
#[derive(Debug)]
pub(crate) enum VecIndex {
    Full(DenseIndex),
    Prefix(MatryoshkaIndex),
}

/// How one graph search runs.
pub(crate) struct SearchArgs<'a> {
    /// Query at full length, already normalized for cosine collections.
    pub(crate) query: &'a [f32],
    pub(crate) k: usize,
    pub(crate) ef: Option<usize>,
    pub(crate) rescore: usize,
    /// Rows the filter allows (an estimate where it counts overwritten versions).
    pub(crate) allowed: usize,
    /// Rows of the graph that are live (not deleted or overwritten).
    pub(crate) live: usize,
    /// The allowed rows, when a filter compiled them (exact scans iterate them).
    pub(crate) rows: Option<&'a RowSet>,
}

impl SearchArgs<'_> {
    /// The plan for a graph whose list is `ef` unless the query sets it.
    pub(crate) fn plan(&self, ef_search: usize) -> Plan {
        let width = self.ef.unwrap_or(ef_search).max(self.k);
        plan(self.allowed, self.live, self.k, width)
    }

    /// The allowed rows below `all_rows`, in order: the filter's set or every row,
    /// each checked by `filter`.
    pub(crate) fn candidates<'f>(
        &'f self,
        filter: &'f dyn RowFilter,
        all_rows: u64,
    ) -> Box<dyn Iterator<Item = u64> + 'f> {
        match self.rows {
            Some(set) => Box::new(set.iter().filter(move |&r| filter.allows(r))),
            None => Box::new((0..all_rows).filter(move |&r| filter.allows(r))),
        }
    }
}

/// Keeps the allowed hits of an overfetching walk, the best `k`; `None` when fewer
/// than `k` were allowed (the caller walks again with the filter).
pub(crate) fn keep_allowed(hits: Vec<Hit>, filter: &dyn RowFilter, k: usize) -> Option<Vec<Hit>> {
    let mut kept: Vec<Hit> = hits.into_iter().filter(|h| filter.allows(h.row)).collect();
    if kept.len() < k {
        return None;
    }
    kept.truncate(k);
    Some(kept)
}

impl VecIndex {
    /// An empty graph for `config`; it grows as rows come.
    pub(crate) fn new(config: &CollectionConfig) -> Result<Self> {
        let graph = DenseIndex::new(config.graph_dim(), config.distance, params(config))
            .map_err(index_err)?;
        Self::wrap(graph, config)
    }

    fn wrap(graph: DenseIndex, config: &CollectionConfig) -> Result<Self> {
        if graph.dim() < config.dim {
            Ok(VecIndex::Prefix(
                MatryoshkaIndex::from_graph(graph, config.dim).map_err(index_err)?,
            ))
        } else {
            Ok(VecIndex::Full(graph))
        }
    }

    pub(crate) fn graph(&self) -> &DenseIndex {
        match self {
            VecIndex::Full(g) => g,
            VecIndex::Prefix(m) => m.graph(),
        }
    }

    /// Inserts one row given its full vector.
    pub(crate) fn insert(&self, row: u64, vector: &[f32]) -> Result<()> {
        match self {
            VecIndex::Full(g) => g.insert(row, vector),
            VecIndex::Prefix(m) => m.insert(row, vector),
        }
        .map_err(index_err)
    }

    /// Inserts many rows in parallel given their full vectors.
    pub(crate) fn insert_batch(&self, rows: &[(u64, &[f32])]) -> Result<()> {
        match self {
            VecIndex::Full(g) => g.insert_batch(rows),
            VecIndex::Prefix(m) => m.insert_batch(rows),
        }
        .map_err(index_err)
    }

    /// The best `k` rows the filter allows, best first, scored at full length.
    pub(crate) fn search(
        &self,
        args: &SearchArgs<'_>,
        filter: &dyn RowFilter,
        source: &dyn VectorSource,
        all_rows: u64,
    ) -> Result<Vec<Hit>> {
        let graph = self.graph();
        let walk = |width: usize, k: usize, filter: Option<&dyn RowFilter>| {
            match self {
                VecIndex::Full(g) => g.search(args.query, k, Some(width), filter),
                VecIndex::Prefix(m) => {
                    m.search(args.query, k, args.rescore, Some(width), filter, source)
                }
            }
            .map_err(index_err)
        };
        match args.plan(graph.params().ef_search) {
            Plan::Exact => {
                let rows = args
                    .candidates(filter, all_rows)
                    .filter_map(|r| source.vector(r).map(|v| (r, v)));
                Ok(exact_search(
                    graph.distance(),
                    args.query,
                    args.k,
                    rows,
                    None,
                ))
            }
            Plan::Overfetch { width } => {
                match keep_allowed(walk(width, width, None)?, filter, args.k) {
                    Some(hits) => Ok(hits),
                    None => walk(width, args.k, Some(filter)),
                }
            }
            Plan::Filtered { width } => walk(width, args.k, Some(filter)),
        }
    }
}
