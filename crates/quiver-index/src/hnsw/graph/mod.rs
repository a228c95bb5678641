//! Quiver's own HNSW graph for vectors still being written: a memtable's graph, and the
//! graph a seal or compaction builds before exporting it flat (see `flat`).
//!
//! It grows under concurrent inserts while it is searched. Nodes are numbered in the
//! order they are created and stored in fixed-stride chunks that never move (`store`);
//! each carries the caller's `u64` key, which is what searches return and filters see.
//! Distances are "lower is closer": squared Euclidean for L2, the negated inner product
//! for dot and for cosine (whose vectors are unit length, where that ranks exactly as
//! Euclidean distance does), so a hit's score is the negated distance and equals
//! [`crate::exact_search`]'s.

mod codes;
mod insert;
mod score;
mod store;
mod walk;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use quiver_core::Distance;

use self::score::Exact;
use self::store::Store;
use self::walk::with_scratch;
use super::near::Near;
use crate::simd::Isa;

/// Levels above 0 a node may reach; the flat format has room for this many.
pub(crate) const MAX_UPPER: usize = 15;

/// The node every walk starts from, on the graph's top level.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    node: u32,
    level: usize,
}

/// One node as read out for export: its key and its links (as keys) on each of its
/// levels, from 0 up.
pub(crate) struct NodeLinks {
    pub(crate) key: u64,
    pub(crate) links: Vec<Vec<u64>>,
}

/// A node read from elsewhere: key, vector, and links on each level from 0 up (as
/// indexes into the list of nodes being restored).
pub(crate) type RestoredNode<'a> = (u64, &'a [f32], Vec<Vec<u32>>);

/// A growing HNSW graph; see the module docs.
pub(crate) struct Graph {
    store: Store,
    dim: usize,
    distance: Distance,
    isa: Isa,
    m: usize,
    cap0: usize,
    ef_construction: usize,
    level_mult: f64,
    created: AtomicU32,
    entry: RwLock<Option<Entry>>,
    grow: Mutex<()>,
    rng: AtomicU64,
}

impl Graph {
    pub(crate) fn new(dim: usize, distance: Distance, m: usize, ef_construction: usize) -> Graph {
        let cap0 = 2 * m;
        Graph {
            store: Store::new(dim, cap0, m, dim >= codes::MIN_DIM),
            dim,
            distance,
            isa: Isa::detect(),
            m,
            cap0,
            ef_construction,
            level_mult: 1.0 / (m.max(2) as f64).ln(),
            created: AtomicU32::new(0),
            entry: RwLock::new(None),
            grow: Mutex::new(()),
            rng: AtomicU64::new(0x5EED_0F09_C1E5_u64),
        }
    }

    /// Nodes created so far (inserts in flight included).
    pub(crate) fn len(&self) -> usize {
        self.created.load(Ordering::Acquire) as usize
    }

    fn entry(&self) -> Option<Entry> {
        *self.entry.read()
    }

    fn allocate(&self) -> u32 {
        let node = self.created.fetch_add(1, Ordering::AcqRel);
        assert!(
            node < u32::MAX,
            "an HNSW graph holds at most 2^32 - 1 nodes"
        );
        node
    }

    /// A level drawn from the geometric distribution HNSW uses (`P(l) ~ M^-l`).
    fn random_level(&self) -> usize {
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // In (0, 1]: never ln(0).
        let u = 1.0 - (z >> 11) as f64 / (1u64 << 53) as f64;
        ((-u.ln() * self.level_mult) as usize).min(MAX_UPPER)
    }

    #[inline]
    pub(super) fn dist(&self, a: &[f32], b: &[f32]) -> f32 {
        match self.distance {
            Distance::L2 => self.isa.l2sq(a, b),
            Distance::Cosine | Distance::Dot => -self.isa.dot(a, b),
        }
    }

    /// The `ef` nearest nodes to a prepared query that `allows` accepts (by key), as
    /// (key, distance), in no particular order.
    pub(crate) fn search(
        &self,
        q: &[f32],
        ef: usize,
        allows: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        let Some(entry) = self.entry() else {
            return Vec::new();
        };
        let by_node = allows.map(|a| move |node: u32| a(self.store.key(node)));
        let by_node = by_node.as_ref().map(|f| f as &dyn Fn(u32) -> bool);
        let exact = Exact {
            graph: self,
            query: q,
        };
        with_scratch(|s| {
            let start = Near {
                dist: self.dist(q, self.store.vector(entry.node)),
                node: entry.node,
            };
            let cur = self.descend(s, &exact, start, entry.level, 0);
            self.search_level(s, &exact, cur, ef, 0, by_node);
            s.results
                .drain()
                .map(|n| (self.store.key(n.node), n.dist))
                .collect()
        })
    }

    /// Every node with its links, the entry point first, then by level, highest first.
    /// Call with no insert in flight.
    pub(crate) fn nodes(&self) -> Vec<NodeLinks> {
        let n = self.len() as u32;
        let mut order: Vec<u32> = (0..n).collect();
        let entry = self.entry().map(|e| e.node);
        order.sort_by_key(|&node| {
            (
                Some(node) != entry,
                std::cmp::Reverse(self.store.level(node)),
            )
        });
        let mut buf = Vec::new();
        order
            .into_iter()
            .map(|node| NodeLinks {
                key: self.store.key(node),
                links: (0..=self.store.level(node))
                    .map(|l| {
                        buf.clear();
                        self.store.links_into(node, l, &mut buf);
                        buf.iter().map(|&nb| self.store.key(nb)).collect()
                    })
                    .collect(),
            })
            .collect()
    }

    /// Rebuilds a graph from nodes read elsewhere (an earlier release's dump): node `i`
    /// of `nodes` gets key, vector and links (as indexes into `nodes`) as given; `entry`
    /// is the index of the entry node.
    pub(crate) fn restore(&self, nodes: &[RestoredNode<'_>], entry: u32) {
        for (i, (key, vector, links)) in nodes.iter().enumerate() {
            let node = self.allocate();
            debug_assert_eq!(node as usize, i);
            let level = links.len().saturating_sub(1).min(MAX_UPPER);
            self.store.create(node, *key, vector, level);
        }
        for (i, (_, _, links)) in nodes.iter().enumerate() {
            let held = self.store.lock(i as u32);
            for (l, level_links) in links.iter().enumerate().take(MAX_UPPER + 1) {
                self.store.set_links(&held, i as u32, l, level_links);
            }
        }
        if (entry as usize) < nodes.len() {
            let level = self.store.level(entry);
            *self.entry.write() = Some(Entry { node: entry, level });
        }
    }
}
