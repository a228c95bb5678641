//! The search loop over a [`FlatGraph`]: a greedy descent through the upper levels, then
//! a best-first walk of level 0 with a bounded result list.
//!
//! Nothing is allocated per query. Each thread keeps one [`Scratch`]: the visited set is
//! an array of `u16` epoch tags, one per node, where "visited" means "tagged with this
//! query's epoch", so starting a query is one increment and the array is cleared only
//! when the epoch wraps, every 65,535 queries; the two heaps and the batch buffer keep
//! their capacity between queries.
//!
//! Each hop first collects the node's unvisited neighbours and prefetches their vectors,
//! then scores them, so the memory loads overlap instead of queueing behind each other.
//! Rows the filter rejects (deleted or filtered out) are still walked through, so they
//! keep the graph connected, but never take a result slot. Without a filter the walk
//! stops at the first candidate farther than the worst result, as in hnswlib. With one
//! it goes on until no candidate is left (candidates still only enter while they beat
//! the worst result), as hnsw_rs does: stopping early there costs recall at small `ef`
//! when rejected rows crowd the neighbourhood, and a filtered query's cost is the
//! planner's concern (very selective filters are scanned exactly instead).

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use quiver_core::Distance;

use super::format::HEADER_WORDS;
use super::{FlatGraph, VectorRows};
use crate::exact::sort_hits;
use crate::simd::{prefetch, Isa};
use crate::{Hit, IndexError, Result, RowFilter};

/// A node and its distance to the query (lower is closer).
#[derive(Debug, Clone, Copy)]
struct Near {
    dist: f32,
    node: u32,
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

/// Per-thread buffers reused by every search on that thread.
#[derive(Debug, Default)]
struct Scratch {
    tags: Vec<u16>,
    epoch: u16,
    /// Nodes to expand, closest first.
    candidates: BinaryHeap<Reverse<Near>>,
    /// The best allowed nodes so far, worst on top.
    results: BinaryHeap<Near>,
    /// Unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
    query: Vec<f32>,
}

impl Scratch {
    /// Starts a query over `n` nodes: a new epoch, empty heaps.
    fn begin(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.fill(0);
            self.epoch = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Cache lines of a vector prefetched ahead of scoring it; the hardware prefetcher
/// streams the rest.
const PREFETCH_LINES: usize = 4;

impl FlatGraph {
    /// The `k` best rows for `query` among those `filter` allows, best first (ties by
    /// lower row), with scores as [`crate::exact_search`] gives them for the graph's
    /// prefix. `rows` must be the vector file the graph was exported over; `query` holds
    /// at least the graph's dim floats (a longer one is cut to its prefix). `ef` is the
    /// candidate list width, raised to `k`.
    pub fn search(
        &self,
        rows: VectorRows<'_>,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn RowFilter>,
    ) -> Result<Vec<Hit>> {
        self.search_with(Isa::detect(), rows, query, k, ef, filter)
    }

    pub(super) fn search_with(
        &self,
        isa: Isa,
        rows: VectorRows<'_>,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn RowFilter>,
    ) -> Result<Vec<Hit>> {
        let l = &self.layout;
        if rows.stride != l.stride || rows.data.len() < l.n * l.stride {
            return Err(IndexError::InvalidInput(format!(
                "graph over {} rows of {} floats searched over {} floats of stride {}",
                l.n,
                l.stride,
                rows.data.len(),
                rows.stride
            )));
        }
        if query.len() < l.dim {
            return Err(IndexError::InvalidInput(format!(
                "query has {} floats, the graph compares {}",
                query.len(),
                l.dim
            )));
        }
        if k == 0 || l.n == 0 {
            return Ok(Vec::new());
        }
        let ef = ef.max(k);
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => Ok(self.run(&mut scratch, isa, rows, query, k, ef, filter)),
            // Only reachable if a filter searched again from inside a search.
            Err(_) => Ok(self.run(&mut Scratch::default(), isa, rows, query, k, ef, filter)),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        s: &mut Scratch,
        isa: Isa,
        rows: VectorRows<'_>,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn RowFilter>,
    ) -> Vec<Hit> {
        let (dim, stride) = (self.layout.dim, rows.stride);
        let mut q = std::mem::take(&mut s.query);
        q.clear();
        q.extend_from_slice(&query[..dim]);
        if self.layout.distance.normalizes() {
            quiver_core::normalize(&mut q);
        }
        let row = |node: u32| {
            let at = node as usize * stride;
            &rows.data[at..at + dim]
        };
        let hits = match (self.layout.distance, self.norms()) {
            (Distance::L2, _) => self.walk(s, rows, ef, filter, |n| isa.l2sq(&q, row(n))),
            (Distance::Cosine, Some(norms)) => self.walk(s, rows, ef, filter, |n| {
                -isa.dot(&q, row(n)) * f32::from_bits(norms[n as usize])
            }),
            _ => self.walk(s, rows, ef, filter, |n| -isa.dot(&q, row(n))),
        };
        s.query = q;
        let mut hits = hits;
        sort_hits(&mut hits);
        hits.truncate(k);
        hits
    }

    fn norms(&self) -> Option<&[u32]> {
        let at = self.layout.norms?;
        Some(&self.words()[at..at + self.layout.n])
    }

    /// Links of `node` on level 0.
    fn links0(&self, node: u32) -> &[u32] {
        let rec = 1 + self.layout.cap0;
        let at = HEADER_WORDS + node as usize * rec;
        let w = &self.words()[at..at + rec];
        &w[1..=w[0] as usize]
    }

    /// Links of `node` on `level` >= 1 (none when it is not on that level).
    fn links_up(&self, level: usize, node: u32) -> &[u32] {
        let up = self.layout.uppers[level - 1];
        let w = self.words();
        let Ok(i) = w[up.ids..up.ids + up.len].binary_search(&node) else {
            return &[];
        };
        let rec = 1 + self.layout.capu;
        let r = &w[up.links + i * rec..up.links + (i + 1) * rec];
        &r[1..=r[0] as usize]
    }

    fn walk(
        &self,
        s: &mut Scratch,
        rows: VectorRows<'_>,
        ef: usize,
        filter: Option<&dyn RowFilter>,
        dist: impl Fn(u32) -> f32,
    ) -> Vec<Hit> {
        let allows = |node: u32| filter.is_none_or(|f| f.allows(u64::from(node)));
        let mut cur = self.layout.entry;
        let mut cur_dist = dist(cur);
        for level in (1..=self.layout.uppers.len()).rev() {
            let mut moved = true;
            while moved {
                moved = false;
                for &nb in self.links_up(level, cur) {
                    let d = dist(nb);
                    if d < cur_dist {
                        (cur, cur_dist) = (nb, d);
                        moved = true;
                    }
                }
            }
        }

        s.begin(self.layout.n);
        let Scratch {
            tags,
            epoch,
            candidates,
            results,
            fresh,
            ..
        } = s;
        let epoch = *epoch;
        tags[cur as usize] = epoch;
        let start = Near {
            dist: cur_dist,
            node: cur,
        };
        candidates.push(Reverse(start));
        if allows(cur) {
            results.push(start);
        }
        let mut bound = results.peek().map_or(f32::INFINITY, |r| r.dist);
        let lines = (self.layout.dim * 4).div_ceil(64).min(PREFETCH_LINES);
        let base = rows.data.as_ptr();
        while let Some(Reverse(c)) = candidates.pop() {
            if c.dist > bound && filter.is_none() {
                break;
            }
            fresh.clear();
            for &nb in self.links0(c.node) {
                let tag = &mut tags[nb as usize];
                if *tag != epoch {
                    *tag = epoch;
                    fresh.push(nb);
                    let p = base.wrapping_add(nb as usize * rows.stride);
                    for line in 0..lines {
                        prefetch(p.wrapping_add(line * 16));
                    }
                }
            }
            for &nb in fresh.iter() {
                let d = dist(nb);
                if results.len() < ef || d < bound {
                    let near = Near { dist: d, node: nb };
                    candidates.push(Reverse(near));
                    if allows(nb) {
                        results.push(near);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                    if let Some(worst) = results.peek() {
                        bound = worst.dist;
                    }
                }
            }
        }
        results
            .drain()
            .map(|r| Hit {
                row: u64::from(r.node),
                score: -r.dist,
            })
            .collect()
    }
}
