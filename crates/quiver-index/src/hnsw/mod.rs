//! Dense vector search: one HNSW graph (hnsw_rs) per segment.
//!
//! [`DenseIndex`] owns a graph over rows identified by caller-chosen `u64` keys. It takes
//! incremental inserts (for the mutable segment) and batch inserts (parallel, for sealing
//! and tests), searches with a [`RowFilter`] that hnsw_rs consults while it walks the
//! graph, so deleted and filtered-out rows never take a result slot, and dumps to and
//! loads from a directory without rebuilding (see [`persist`]).
//!
//! Cosine collections get their vectors normalized here as well, so a caller that forgets
//! cannot corrupt the graph; for unit vectors this is a no-op.

mod dist;
pub mod flat;
pub mod persist;

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use hnsw_rs::prelude::{DistL2, FilterT, Hnsw, HnswIo, Neighbour};
use quiver_core::Distance;
use serde::{Deserialize, Serialize};

use crate::{Hit, IndexError, Result, RowFilter};
pub(crate) use dist::score_from_dist;
pub use dist::DotDist;

/// Graph construction and search settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswParams {
    /// Links kept per node and layer (`M`); layer 0 keeps twice as many.
    pub m: usize,
    /// Candidate list width while inserting; higher builds a better graph, slower.
    pub ef_construction: usize,
    /// Default candidate list width while searching; raised to `k` when smaller.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

impl HnswParams {
    /// Rejects settings hnsw_rs cannot work with.
    pub fn validate(&self) -> Result<()> {
        if !(2..=128).contains(&self.m) {
            return Err(invalid(format!("m must be in 2..=128, got {}", self.m)));
        }
        if self.ef_construction == 0 || self.ef_construction > 4096 {
            return Err(invalid("ef_construction must be in 1..=4096"));
        }
        if self.ef_search == 0 || self.ef_search > 4096 {
            return Err(invalid("ef_search must be in 1..=4096"));
        }
        Ok(())
    }
}

impl From<quiver_core::HnswConfig> for HnswParams {
    fn from(c: quiver_core::HnswConfig) -> Self {
        HnswParams {
            m: c.m,
            ef_construction: c.ef_construction,
            ef_search: c.ef_search,
        }
    }
}

fn invalid(msg: impl Into<String>) -> IndexError {
    IndexError::InvalidInput(msg.into())
}

/// Layers in the graph; hnsw_rs caps it at 16 and a few suffice for billions of rows.
const MAX_LAYER: usize = 16;

/// The graph, typed by the distance it runs on (see the table in `dist`).
pub(crate) enum Graph {
    /// Cosine (on unit vectors) and L2 both search by Euclidean distance.
    L2(Hnsw<'static, f32, DistL2>),
    Dot(Hnsw<'static, f32, DotDist>),
}

macro_rules! with_graph {
    ($graph:expr, $g:ident => $body:expr) => {
        match $graph {
            Graph::L2($g) => $body,
            Graph::Dot($g) => $body,
        }
    };
}
pub(crate) use with_graph;

/// Lets hnsw_rs ask a [`RowFilter`] about its data ids during the graph walk.
struct FilterAdapter<'a>(&'a dyn RowFilter);

impl FilterT for FilterAdapter<'_> {
    fn hnsw_filter(&self, id: &usize) -> bool {
        self.0.allows(*id as u64)
    }
}

/// An HNSW graph over one segment's vectors.
pub struct DenseIndex {
    /// Dropped by hand before `io`, which it may borrow (memory-mapped vectors).
    graph: ManuallyDrop<Graph>,
    /// The loader a dumped graph was read with; owned here, freed in `Drop`.
    io: Option<NonNull<HnswIo>>,
    distance: Distance,
    dim: usize,
    params: HnswParams,
}

// SAFETY: `io` is a uniquely owned heap allocation only touched again in `Drop`; HnswIo
// holds an mmap and plain data, and the graph itself is Send + Sync (it locks inside).
unsafe impl Send for DenseIndex {}
// SAFETY: as above; no method reaches `io` through `&self`.
unsafe impl Sync for DenseIndex {}

impl Drop for DenseIndex {
    fn drop(&mut self) {
        // SAFETY: `graph` is dropped exactly once, here, before the loader it borrows.
        unsafe { ManuallyDrop::drop(&mut self.graph) };
        if let Some(io) = self.io.take() {
            // SAFETY: `io` came from `Box::into_raw` in `persist::load` and nothing
            // borrows it any more now that the graph is gone.
            drop(unsafe { Box::from_raw(io.as_ptr()) });
        }
    }
}

impl std::fmt::Debug for DenseIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseIndex")
            .field("distance", &self.distance)
            .field("dim", &self.dim)
            .field("params", &self.params)
            .field("len", &self.len())
            .finish()
    }
}

impl DenseIndex {
    /// An empty graph for `dim`-long vectors; `capacity` is a sizing hint only.
    pub fn new(
        dim: usize,
        distance: Distance,
        params: HnswParams,
        capacity: usize,
    ) -> Result<Self> {
        params.validate()?;
        if dim == 0 {
            return Err(invalid("dim must be positive"));
        }
        let (m, ef, cap) = (params.m, params.ef_construction, capacity.max(1));
        let graph = match distance {
            Distance::Cosine | Distance::L2 => Graph::L2(Hnsw::new(m, cap, MAX_LAYER, ef, DistL2)),
            Distance::Dot => Graph::Dot(Hnsw::new(m, cap, MAX_LAYER, ef, DotDist)),
        };
        Ok(Self::from_parts(graph, None, distance, dim, params))
    }

    pub(crate) fn from_parts(
        graph: Graph,
        io: Option<NonNull<HnswIo>>,
        distance: Distance,
        dim: usize,
        params: HnswParams,
    ) -> Self {
        DenseIndex {
            graph: ManuallyDrop::new(graph),
            io,
            distance,
            dim,
            params,
        }
    }

    pub(crate) fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Vector length the graph holds.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How the graph compares vectors.
    pub fn distance(&self) -> Distance {
        self.distance
    }

    /// The settings the graph was built with.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Rows inserted so far.
    pub fn len(&self) -> usize {
        with_graph!(&*self.graph, g => g.get_nb_point())
    }

    /// Whether no row was inserted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self, vector: &[f32]) -> Result<()> {
        quiver_core::validate_vector(vector, self.dim)?;
        Ok(())
    }

    /// The vector as the graph stores it (unit length for cosine).
    fn prepare<'v>(&self, vector: &'v [f32]) -> std::borrow::Cow<'v, [f32]> {
        if self.distance.normalizes() {
            let mut v = vector.to_vec();
            quiver_core::normalize(&mut v);
            std::borrow::Cow::Owned(v)
        } else {
            std::borrow::Cow::Borrowed(vector)
        }
    }

    fn data_id(row: u64) -> Result<usize> {
        usize::try_from(row).map_err(|_| invalid(format!("row {row} exceeds this platform")))
    }

    /// Inserts one row. Rows must be unique: an updated document gets a new row and the
    /// old one is excluded through the search filter.
    pub fn insert(&self, row: u64, vector: &[f32]) -> Result<()> {
        self.check(vector)?;
        let id = Self::data_id(row)?;
        let v = self.prepare(vector);
        with_graph!(&*self.graph, g => g.insert_slice((&v, id)));
        Ok(())
    }

    /// Inserts many rows using every core (hnsw_rs parallel insertion).
    pub fn insert_batch(&self, rows: &[(u64, &[f32])]) -> Result<()> {
        let mut prepared = Vec::with_capacity(rows.len());
        for (row, vector) in rows {
            self.check(vector)?;
            prepared.push((self.prepare(vector), Self::data_id(*row)?));
        }
        let slices: Vec<(&[f32], usize)> = prepared.iter().map(|(v, id)| (&v[..], *id)).collect();
        with_graph!(&*self.graph, g => g.parallel_insert_slice(&slices));
        Ok(())
    }

    /// The `k` best rows for `query`, best first, ties broken by lower row.
    ///
    /// `ef` overrides the configured search width (it is raised to `k`). Rows the filter
    /// rejects are skipped while the graph is walked, so they never push allowed rows out
    /// of the candidate list. Scores match [`crate::exact_search`] up to float rounding.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&dyn RowFilter>,
    ) -> Result<Vec<Hit>> {
        self.check(query)?;
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let q = self.prepare(query);
        // hnsw_rs seeds its result list with the entry point even when the filter rejects
        // it, and may then return fewer than asked; asking for `ef` results and cutting to
        // `k` afterwards keeps that from costing recall. ef >= 2 avoids an empty list.
        let ef = ef.unwrap_or(self.params.ef_search).max(k).max(2);
        let adapter = filter.map(FilterAdapter);
        let filter_t = adapter.as_ref().map(|a| a as &dyn FilterT);
        let found: Vec<Neighbour> =
            with_graph!(&*self.graph, g => g.search_filter(&q, ef, ef, filter_t));
        let mut hits: Vec<Hit> = found
            .iter()
            .map(|n| Hit {
                row: n.d_id as u64,
                score: score_from_dist(self.distance, n.distance),
            })
            .filter(|h| filter.is_none_or(|f| f.allows(h.row)))
            .collect();
        crate::exact::sort_hits(&mut hits);
        hits.truncate(k);
        Ok(hits)
    }
}
