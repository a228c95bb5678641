//! How a walk scores nodes against its query: exactly, against the `f32` vectors
//! (searches), or approximately, against the nodes' 8-bit codes (inserts; see `codes`).

use quiver_core::Distance;

use super::Graph;
use crate::simd::prefetch;

/// A walk's distance from its query to a node, and how to start loading what that
/// distance will read.
pub(super) trait Score {
    fn dist(&self, node: u32) -> f32;
    /// Requests cache lines `from..to` of what `dist` reads for `node`.
    fn warm(&self, node: u32, from: usize, to: usize);
}

fn warm_lines(p: *const u8, bytes: usize, from: usize, to: usize) {
    for line in from..to.min(bytes.div_ceil(64)) {
        prefetch(p.wrapping_add(line * 64));
    }
}

/// Scores against the `f32` vectors.
pub(super) struct Exact<'a> {
    pub(super) graph: &'a Graph,
    pub(super) query: &'a [f32],
}

impl Score for Exact<'_> {
    #[inline]
    fn dist(&self, node: u32) -> f32 {
        self.graph.dist(self.query, self.graph.store.vector(node))
    }

    #[inline]
    fn warm(&self, node: u32, from: usize, to: usize) {
        let p = self.graph.store.vector_ptr(node).cast::<u8>();
        warm_lines(p, self.graph.dim * 4, from, to);
    }
}

/// Scores against the nodes' codes, on the scale of [`Graph::dist`].
pub(super) struct Coded<'a> {
    graph: &'a Graph,
    query: &'a [f32],
    /// `Σ q[i]` and `Σ q[i]²`.
    sum: f32,
    norm: f32,
}

impl<'a> Coded<'a> {
    pub(super) fn new(graph: &'a Graph, query: &'a [f32]) -> Coded<'a> {
        Coded {
            graph,
            query,
            sum: query.iter().sum(),
            norm: query.iter().map(|x| x * x).sum(),
        }
    }
}

impl Score for Coded<'_> {
    #[inline]
    fn dist(&self, node: u32) -> f32 {
        let r = self.graph.store.codes(node);
        let ip = r.lo() * self.sum + r.step() * self.graph.isa.dot_u8(self.query, r.codes());
        match self.graph.distance {
            Distance::L2 => self.norm + r.norm() - 2.0 * ip,
            Distance::Cosine | Distance::Dot => -ip,
        }
    }

    #[inline]
    fn warm(&self, node: u32, from: usize, to: usize) {
        let bytes = self.graph.store.codes(node).bytes();
        warm_lines(bytes.as_ptr(), bytes.len(), from, to);
    }
}
