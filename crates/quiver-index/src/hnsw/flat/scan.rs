//! Scoring a given list of rows without walking the graph: how a filtered query that
//! allows few rows is answered.
//!
//! Where the graph has codes, every listed row is first ranked by code distance (a
//! quarter of the bytes of its `f32` row, loaded a few rows ahead), and only the best
//! few times `k` are scored against the rows; without codes each row is scored against
//! its `f32` row directly, also loaded ahead.

use std::collections::BinaryHeap;

use quiver_core::Distance;

use super::super::near::Near;
use super::codes::CodeQuery;
use super::search::{Rows, AHEAD};
use super::{FlatGraph, VectorRows};
use crate::exact::sort_hits;
use crate::simd::Isa;
use crate::{Hit, IndexError, Result};

/// Rows ranked by code distance that are scored exactly: enough that a true neighbour
/// whose code distance came out a little too far still is among them.
fn rescored(k: usize) -> usize {
    3 * k + 16
}

impl FlatGraph {
    /// The `k` best of `candidates` (rows of this graph) for `query`, best first, with
    /// the scores [`FlatGraph::search`] gives.
    pub fn scan(
        &self,
        rows: VectorRows<'_>,
        query: &[f32],
        k: usize,
        candidates: &[u64],
    ) -> Result<Vec<Hit>> {
        let l = &self.layout;
        if rows.stride != l.stride || rows.data.len() < l.n * l.stride || query.len() < l.dim {
            return Err(IndexError::InvalidInput(
                "scan: rows or query do not fit the graph".into(),
            ));
        }
        if let Some(&bad) = candidates.iter().find(|&&r| r >= l.n as u64) {
            return Err(IndexError::InvalidInput(format!(
                "scan: row {bad} is not in a graph of {} rows",
                l.n
            )));
        }
        let isa = Isa::detect();
        let (dim, stride) = (l.dim, rows.stride);
        let mut q = query[..dim].to_vec();
        if l.distance.normalizes() {
            quiver_core::normalize(&mut q);
        }
        let norms = self.norms();
        let exact = |n: u32| {
            let at = n as usize * stride;
            let row = &rows.data[at..at + dim];
            match (l.distance, norms) {
                (Distance::L2, _) => isa.l2sq(&q, row),
                (Distance::Cosine, Some(norms)) => {
                    -isa.dot(&q, row) * f32::from_bits(norms[n as usize])
                }
                _ => -isa.dot(&q, row),
            }
        };
        let vectors = Rows {
            base: rows.data.as_ptr().cast(),
            stride: stride * 4,
            len: dim * 4,
        };
        // Rows fit u32: the graph holds them as node ids.
        let nodes = candidates.iter().map(|&r| r as u32);
        let kept: Vec<u32> = match self.codes() {
            None => nodes.collect(),
            Some(codes) => {
                let mut cq = CodeQuery::default();
                cq.prepare(&codes, &q, l.distance);
                let coded = Rows {
                    base: codes.row_ptr(0),
                    stride: dim,
                    len: dim,
                };
                let keep = rescored(k);
                let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(keep + 1);
                for (i, node) in nodes.enumerate() {
                    if let Some(&next) = candidates.get(i + AHEAD) {
                        coded.warm(next as u32, 0, usize::MAX);
                    }
                    let dist = cq.dist(isa, codes.row(node));
                    if best.len() < keep || best.peek().is_some_and(|w| dist < w.dist) {
                        best.push(Near { dist, node });
                        if best.len() > keep {
                            best.pop();
                        }
                    }
                }
                best.into_iter().map(|n| n.node).collect()
            }
        };
        let mut hits: Vec<Hit> = Vec::with_capacity(kept.len());
        for (i, &node) in kept.iter().enumerate() {
            if let Some(&next) = kept.get(i + AHEAD) {
                vectors.warm(next, 0, usize::MAX);
            }
            hits.push(Hit {
                row: u64::from(node),
                score: -exact(node),
            });
        }
        sort_hits(&mut hits);
        hits.truncate(k);
        Ok(hits)
    }
}
