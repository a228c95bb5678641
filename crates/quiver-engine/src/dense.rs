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
    exact_search, DenseIndex, Hit, HnswParams, MatryoshkaIndex, RowFilter, VectorSource,
};
use quiver_storage::segment::Segment;

use crate::{EngineError, Result};

/// Allowed-row counts at or below this many times the candidate list are scanned
/// exactly instead of walking the graph: a very selective filter leaves the graph
/// walk few reachable nodes, and a scan over so few rows is cheaper anyway.
pub(crate) const EXACT_SCAN_FACTOR: usize = 4;

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

/// Full vectors by row, for rescoring.
pub(crate) struct SegmentVectors<'a>(pub(crate) &'a Segment);

impl VectorSource for SegmentVectors<'_> {
    fn vector(&self, row: u64) -> Option<&[f32]> {
        let row = usize::try_from(row).ok()?;
        (row < self.0.len()).then(|| self.0.vector(row))
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
    /// Number of rows the filter allows, when known (enables the exact-scan plan).
    pub(crate) allowed: Option<usize>,
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
        let width = args.ef.unwrap_or(graph.params().ef_search).max(args.k);
        if args
            .allowed
            .is_some_and(|n| n <= width.saturating_mul(EXACT_SCAN_FACTOR))
        {
            let rows = (0..all_rows)
                .filter(|&r| filter.allows(r))
                .filter_map(|r| source.vector(r).map(|v| (r, v)));
            return Ok(exact_search(
                graph.distance(),
                args.query,
                args.k,
                rows,
                None,
            ));
        }
        match self {
            VecIndex::Full(g) => g.search(args.query, args.k, args.ef, Some(filter)),
            VecIndex::Prefix(m) => m.search(
                args.query,
                args.k,
                args.rescore,
                args.ef,
                Some(filter),
                source,
            ),
        }
        .map_err(index_err)
    }
}
