//! Dense vector search: one HNSW graph per segment.
//!
//! [`DenseIndex`] owns a graph over rows identified by caller-chosen `u64` keys. It takes
//! inserts from any number of threads (a memtable's writers, or a parallel batch when a
//! segment is built) while it is searched, and searches with a [`RowFilter`] consulted
//! during the walk, so deleted and filtered-out rows never take a result slot. The graph
//! is Quiver's own (`graph`); a sealed segment's is exported into the flat format
//! ([`flat`]) and searched from its file. `legacy` reads earlier releases' hnsw_rs dumps.
//!
//! Cosine collections get their vectors normalized here as well, so a caller that forgets
//! cannot corrupt the graph; for unit vectors this is a no-op.

mod dist;
pub mod flat;
mod graph;
pub mod legacy;
mod near;
mod visited;

use quiver_core::Distance;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use self::graph::Graph;
use crate::{Hit, IndexError, Result, RowFilter};

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
    /// Rejects settings outside the supported ranges.
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

/// An HNSW graph over one segment's vectors.
pub struct DenseIndex {
    graph: Graph,
    distance: Distance,
    dim: usize,
    params: HnswParams,
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
    /// An empty graph for `dim`-long vectors. Its storage grows in chunks as rows come.
    pub fn new(dim: usize, distance: Distance, params: HnswParams) -> Result<Self> {
        params.validate()?;
        if dim == 0 {
            return Err(invalid("dim must be positive"));
        }
        Ok(DenseIndex {
            graph: Graph::new(dim, distance, params.m, params.ef_construction),
            distance,
            dim,
            params,
        })
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

    /// Rows inserted so far (inserts in flight included).
    pub fn len(&self) -> usize {
        self.graph.len()
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

    /// Inserts one row. Rows must be unique: an updated document gets a new row and the
    /// old one is excluded through the search filter.
    pub fn insert(&self, row: u64, vector: &[f32]) -> Result<()> {
        self.check(vector)?;
        self.graph.insert(row, &self.prepare(vector));
        Ok(())
    }

    /// Inserts many rows in parallel on the current rayon pool; inserts nothing unless
    /// every vector is valid.
    pub fn insert_batch(&self, rows: &[(u64, &[f32])]) -> Result<()> {
        for (_, vector) in rows {
            self.check(vector)?;
        }
        rows.par_iter()
            .for_each(|(row, vector)| self.graph.insert(*row, &self.prepare(vector)));
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
        let ef = ef.unwrap_or(self.params.ef_search).max(k);
        let allows = filter.map(|f| move |row: u64| f.allows(row));
        let allows = allows.as_ref().map(|a| a as &dyn Fn(u64) -> bool);
        let mut hits: Vec<Hit> = self
            .graph
            .search(&q, ef, allows)
            .into_iter()
            .map(|(row, dist)| Hit { row, score: -dist })
            .collect();
        crate::exact::sort_hits(&mut hits);
        hits.truncate(k);
        Ok(hits)
    }
}
