//! A node and its distance to a query, ordered by distance (then node, so heaps of
//! them are deterministic); shared by the graph builder's walk and the flat search.

use std::cmp::Ordering;

/// A node and its distance to the query (lower is closer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Near {
    pub(crate) dist: f32,
    pub(crate) node: u32,
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.node.cmp(&other.node))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Near {}
