//! The search loop over a [`FlatGraph`]: a greedy descent through the upper levels, then
//! a best-first walk of level 0 with a bounded result list.
//!
//! Nothing is allocated per query. Each thread keeps one [`Scratch`]: an epoch-tagged
//! visited set (`Visited`: starting a query is one increment), and two heaps and a batch
//! buffer that keep their capacity between queries.
//!
//! A search waits on memory far more than it computes: every distance reads a row no
//! cache holds, and every expansion a link record. So each hop first collects the
//! node's unvisited neighbours and starts loading what scoring them reads (their codes,
//! or the first lines of their rows, with the rest of a row requested a few neighbours
//! before it is scored), and a node that enters the candidate list has its links
//! requested then, well before it is expanded; the loads overlap instead of queueing.
//! Graphs with codes (see `codes`) are walked by code distance and their results scored
//! again against the rows, together with the best few rows the list pushed out.
//! Rows the filter rejects (deleted or filtered out) are still walked through, so they
//! keep the graph connected, but never take a result slot. Without a filter the walk
//! stops at the first candidate farther than the worst result, as in hnswlib. With one
//! it goes on until no candidate is left (candidates still only enter while they beat
//! the worst result), as hnsw_rs did: stopping early there costs recall at small `ef`
//! when rejected rows crowd the neighbourhood, and a filtered query's cost is the
//! planner's concern (very selective filters are scanned exactly instead).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use quiver_core::Distance;

use super::super::near::Near;
use super::super::visited::Visited;
use super::codes::{CodeQuery, Codes};
use super::format::HEADER_WORDS;
use super::{FlatGraph, VectorRows};
use crate::exact::sort_hits;
use crate::simd::{prefetch, Isa};
use crate::{Hit, IndexError, Result, RowFilter};

/// Per-thread buffers reused by every search on that thread.
#[derive(Debug, Default)]
struct Scratch {
    visited: Visited,
    /// Nodes to expand, closest first.
    candidates: BinaryHeap<Reverse<Near>>,
    /// The best allowed nodes so far, worst on top.
    results: BinaryHeap<Near>,
    /// The best of the nodes pushed out of `results`, worst on top (code walks only).
    evicted: BinaryHeap<Near>,
    /// Unvisited neighbours of the node being expanded.
    fresh: Vec<u32>,
    query: Vec<f32>,
    code_query: CodeQuery,
}

impl Scratch {
    /// Starts a query over `n` nodes: a new epoch, empty heaps.
    fn begin(&mut self, n: usize) {
        self.visited.begin(n);
        self.candidates.clear();
        self.results.clear();
        self.evicted.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Equally long rows of bytes at a fixed stride (vectors or codes), for prefetching.
#[derive(Clone, Copy)]
pub(super) struct Rows {
    pub(super) base: *const u8,
    pub(super) stride: usize,
    pub(super) len: usize,
}

impl Rows {
    /// Requests cache lines `from..to` of row `node` (clipped to the row).
    #[inline]
    pub(super) fn warm(self, node: u32, from: usize, to: usize) {
        let p = self.base.wrapping_add(node as usize * self.stride);
        for line in from..to.min(self.len.div_ceil(64)) {
            prefetch(p.wrapping_add(line * 64));
        }
    }
}

/// Cache lines of a row requested as soon as its node is found unvisited.
const HEAD_LINES: usize = 2;
/// How many nodes before scoring one the rest of its row is requested. Requesting
/// whole rows for every neighbour at once was slower: the loads crowd each other out.
pub(super) const AHEAD: usize = 3;

impl FlatGraph {
    /// The `k` best rows for `query` among those `filter` allows, best first (ties by
    /// lower row), with scores as [`crate::exact_search`] gives them for the graph's
    /// prefix. `rows` must be the vector file the graph was exported over; `query` holds
    /// at least the graph's dim floats (a longer one is cut to its prefix). `ef` is the
    /// candidate list width, raised to `k` (to `k + k/2` when the walk compares codes).
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
        let norms = self.norms();
        let exact = |n: u32| match (self.layout.distance, norms) {
            (Distance::L2, _) => isa.l2sq(&q, row(n)),
            (Distance::Cosine, Some(norms)) => {
                -isa.dot(&q, row(n)) * f32::from_bits(norms[n as usize])
            }
            _ => -isa.dot(&q, row(n)),
        };
        let vectors = Rows {
            base: rows.data.as_ptr().cast(),
            stride: stride * 4,
            len: dim * 4,
        };
        let mut hits = match self.codes() {
            None => self.walk(
                s,
                ef,
                0,
                filter,
                exact,
                |n| vectors.warm(n, 0, HEAD_LINES),
                |n| vectors.warm(n, HEAD_LINES, usize::MAX),
            ),
            Some(codes) => {
                let mut cq = std::mem::take(&mut s.code_query);
                cq.prepare(&codes, &q, self.layout.distance);
                let coded = Rows {
                    base: codes.row_ptr(0),
                    stride: dim,
                    len: dim,
                };
                // Code distances blur near-ties at the edge of the list, where a true
                // neighbour ranked just outside it would be lost: the list is kept at
                // least half again as wide as `k`, and the best `k` rows it pushed out
                // are rescored too.
                let mut hits = self.walk(
                    s,
                    ef.max(k + k / 2),
                    k,
                    filter,
                    |n| cq.dist(isa, codes.row(n)),
                    |n| coded.warm(n, 0, HEAD_LINES),
                    |n| coded.warm(n, HEAD_LINES, usize::MAX),
                );
                s.code_query = cq;
                // The walk ranked by codes; score what it kept against the rows.
                for h in hits.iter().take(AHEAD) {
                    vectors.warm(h.row as u32, 0, usize::MAX);
                }
                for i in 0..hits.len() {
                    if let Some(next) = hits.get(i + AHEAD) {
                        vectors.warm(next.row as u32, 0, usize::MAX);
                    }
                    hits[i].score = -exact(hits[i].row as u32);
                }
                hits
            }
        };
        s.query = q;
        sort_hits(&mut hits);
        hits.truncate(k);
        hits
    }

    pub(super) fn codes(&self) -> Option<Codes<'_>> {
        let at = self.layout.codes?;
        Some(Codes::new(
            &self.words()[at..],
            self.layout.n,
            self.layout.dim,
        ))
    }

    pub(super) fn norms(&self) -> Option<&[u32]> {
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

    /// Starts loading the level-0 link record of `node`.
    #[inline]
    fn warm_links0(&self, node: u32) {
        let rec = (1 + self.layout.cap0) * 4;
        let level0 = Rows {
            base: self.words()[HEADER_WORDS..].as_ptr().cast(),
            stride: rec,
            len: rec,
        };
        level0.warm(node, 0, usize::MAX);
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

    /// The best-first walk. `dist` ranks nodes; `warm(node)` starts loading what `dist`
    /// reads of a node as soon as the node is found unvisited, and `warm_rest(node)`
    /// the remainder, a few nodes before it is scored.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        s: &mut Scratch,
        ef: usize,
        keep_evicted: usize,
        filter: Option<&dyn RowFilter>,
        dist: impl Fn(u32) -> f32,
        warm: impl Fn(u32),
        warm_rest: impl Fn(u32),
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
            visited,
            candidates,
            results,
            evicted,
            fresh,
            ..
        } = s;
        visited.insert(cur);
        let start = Near {
            dist: cur_dist,
            node: cur,
        };
        candidates.push(Reverse(start));
        if allows(cur) {
            results.push(start);
        }
        let mut bound = results.peek().map_or(f32::INFINITY, |r| r.dist);
        while let Some(Reverse(c)) = candidates.pop() {
            if c.dist > bound && filter.is_none() {
                break;
            }
            fresh.clear();
            for &nb in self.links0(c.node) {
                if visited.insert(nb) {
                    fresh.push(nb);
                    warm(nb);
                }
            }
            for (i, &nb) in fresh.iter().enumerate() {
                if let Some(&next) = fresh.get(i + AHEAD) {
                    warm_rest(next);
                }
                let d = dist(nb);
                if results.len() < ef || d < bound {
                    let near = Near { dist: d, node: nb };
                    candidates.push(Reverse(near));
                    // Its links are read when it is expanded; load them now.
                    self.warm_links0(nb);
                    if allows(nb) {
                        results.push(near);
                        if results.len() > ef {
                            if let Some(out) = results.pop() {
                                if keep_evicted > 0 {
                                    evicted.push(out);
                                    if evicted.len() > keep_evicted {
                                        evicted.pop();
                                    }
                                }
                            }
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
            .chain(evicted.drain())
            .map(|r| Hit {
                row: u64::from(r.node),
                score: -r.dist,
            })
            .collect()
    }
}
