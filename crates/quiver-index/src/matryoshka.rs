//! Matryoshka search: index a prefix of each vector, rescore exactly at full length.
//!
//! Matryoshka-trained embeddings keep most of their meaning in the leading components,
//! so the graph holds only the first `index_dim` of them (renormalized for cosine: the
//! prefix of a unit vector is not a unit vector). A query walks that smaller graph for
//! `candidates` rows, then each candidate is scored exactly at the full `dim` from the
//! stored full vectors, which the caller provides through a [`VectorSource`].

use quiver_core::Distance;

use crate::exact::top_k;
use crate::{DenseIndex, Hit, HnswParams, IndexError, Result, RowFilter};

/// Gives the full stored vector of a row (unit length for cosine collections).
pub trait VectorSource {
    /// The row's vector, or `None` when the row is unknown.
    fn vector(&self, row: u64) -> Option<&[f32]>;
}

/// Rows numbered by their position in the list.
impl VectorSource for [Vec<f32>] {
    fn vector(&self, row: u64) -> Option<&[f32]> {
        self.get(usize::try_from(row).ok()?).map(Vec::as_slice)
    }
}

impl VectorSource for Vec<Vec<f32>> {
    fn vector(&self, row: u64) -> Option<&[f32]> {
        self.as_slice().vector(row)
    }
}

/// A graph over vector prefixes plus the full-length rescoring step.
#[derive(Debug)]
pub struct MatryoshkaIndex {
    graph: DenseIndex,
    dim: usize,
}

impl MatryoshkaIndex {
    /// An empty index for `dim`-long vectors searched at `index_dim`.
    pub fn new(
        dim: usize,
        index_dim: usize,
        distance: Distance,
        params: HnswParams,
    ) -> Result<Self> {
        if index_dim == 0 || index_dim > dim {
            return Err(IndexError::InvalidInput(format!(
                "index_dim must be in 1..={dim}, got {index_dim}"
            )));
        }
        Ok(MatryoshkaIndex {
            graph: DenseIndex::new(index_dim, distance, params)?,
            dim,
        })
    }

    /// Wraps a graph built (or loaded) over prefixes of `dim`-long vectors.
    pub fn from_graph(graph: DenseIndex, dim: usize) -> Result<Self> {
        if graph.dim() > dim {
            return Err(IndexError::InvalidInput(format!(
                "graph dim {} exceeds full dim {dim}",
                graph.dim()
            )));
        }
        Ok(MatryoshkaIndex { graph, dim })
    }

    /// The prefix graph (to dump it, for example).
    pub fn graph(&self) -> &DenseIndex {
        &self.graph
    }

    /// The prefix graph, giving up the full-length rescoring.
    pub fn into_graph(self) -> DenseIndex {
        self.graph
    }

    /// Full vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Indexed prefix length.
    pub fn index_dim(&self) -> usize {
        self.graph.dim()
    }

    fn prefix<'v>(&self, full: &'v [f32]) -> Result<&'v [f32]> {
        quiver_core::validate_vector(full, self.dim)?;
        // The graph renormalizes cosine prefixes itself: truncate first, then normalize.
        Ok(&full[..self.graph.dim()])
    }

    /// Inserts a row given its full vector.
    pub fn insert(&self, row: u64, full: &[f32]) -> Result<()> {
        self.graph.insert(row, self.prefix(full)?)
    }

    /// Inserts many rows in parallel given their full vectors.
    pub fn insert_batch(&self, rows: &[(u64, &[f32])]) -> Result<()> {
        let prefixes = rows
            .iter()
            .map(|(row, v)| Ok((*row, self.prefix(v)?)))
            .collect::<Result<Vec<_>>>()?;
        self.graph.insert_batch(&prefixes)
    }

    /// The `k` best rows at full length among `candidates` (raised to `k`) found in the
    /// prefix graph. Scores are exact full-length scores; rows the source does not know
    /// are dropped.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        candidates: usize,
        ef: Option<usize>,
        filter: Option<&dyn RowFilter>,
        source: &dyn VectorSource,
    ) -> Result<Vec<Hit>> {
        let prefix = self.prefix(query)?;
        let wanted = candidates.max(k);
        let found = self
            .graph
            .search(prefix, wanted, Some(ef.unwrap_or(0).max(wanted)), filter)?;
        Ok(rescore(self.graph.distance(), query, &found, k, source))
    }
}

/// The `k` best of `candidates` rescored exactly at the full length of `query`, best
/// first. Rows the source does not know, or holds at another length, are dropped.
pub fn rescore(
    distance: Distance,
    query: &[f32],
    candidates: &[Hit],
    k: usize,
    source: &dyn VectorSource,
) -> Vec<Hit> {
    let mut q = query.to_vec();
    if distance.normalizes() {
        quiver_core::normalize(&mut q);
    }
    let rescored = candidates
        .iter()
        .filter_map(|h| {
            let v = source.vector(h.row)?;
            (v.len() == q.len()).then(|| Hit {
                row: h.row,
                score: match distance {
                    Distance::Cosine | Distance::Dot => crate::simd::dot(&q, v),
                    Distance::L2 => -crate::simd::l2sq(&q, v),
                },
            })
        })
        .collect();
    top_k(rescored, k)
}
