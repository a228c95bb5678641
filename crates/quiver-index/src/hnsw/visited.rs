//! The visited set of one graph walk: a `u16` epoch tag per node, where "visited" means
//! "tagged with this walk's epoch". Starting a walk is one increment; the tags are
//! cleared only when the epoch wraps, every 65,535 walks. Each thread keeps one set and
//! reuses it, so a walk allocates nothing once the set covers the graph.

#[derive(Debug, Default)]
pub(crate) struct Visited {
    tags: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Starts a walk over a graph of `n` nodes: nothing is visited.
    pub(crate) fn begin(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `node` visited; false when it already was. A node past the size given to
    /// `begin` (a graph that grew during the walk) grows the set.
    #[inline]
    pub(crate) fn insert(&mut self, node: u32) -> bool {
        let i = node as usize;
        if i >= self.tags.len() {
            self.tags.resize(i + 1 + i / 8, 0);
        }
        let fresh = self.tags[i] != self.epoch;
        self.tags[i] = self.epoch;
        fresh
    }
}
