//! Walking a growing graph: the greedy descent through upper levels and the best-first
//! search of one level, shared by inserts and queries.
//!
//! Nothing is allocated per walk. Each thread keeps one [`Scratch`]: an epoch-tagged
//! visited set (`Visited`, which grows when the graph grew during a walk), and heaps and
//! link buffers that keep their capacity.
//! Each hop collects the unvisited neighbours first and starts loading what their
//! distances read (see `score`), so the loads overlap instead of queueing behind each
//! distance.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::super::near::Near;
use super::super::visited::Visited;
use super::score::Score;
use super::Graph;

#[derive(Default)]
pub(super) struct Scratch {
    visited: Visited,
    /// Nodes to expand, closest first.
    pub(super) candidates: BinaryHeap<Reverse<Near>>,
    /// The best allowed nodes so far, worst on top.
    pub(super) results: BinaryHeap<Near>,
    /// Links of the node being expanded, then its unvisited ones.
    links: Vec<u32>,
    fresh: Vec<u32>,
    /// A free buffer for callers (neighbour selection).
    pub(super) picked: Vec<Near>,
}

impl Scratch {
    fn begin(&mut self, n: usize) {
        self.visited.begin(n);
        self.candidates.clear();
        self.results.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        // Only reachable if a filter walked a graph from inside a walk.
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Vector bytes requested as soon as a node is found unvisited.
const HEAD_LINES: usize = 2;
/// How many nodes ahead of scoring the rest of a vector is requested.
const AHEAD: usize = 3;

impl Graph {
    /// Greedy descent from `cur` through levels `top` down to `bottom + 1`: on each,
    /// moves to a closer neighbour until none is closer.
    pub(super) fn descend(
        &self,
        s: &mut Scratch,
        q: &impl Score,
        mut cur: Near,
        top: usize,
        bottom: usize,
    ) -> Near {
        for level in (bottom + 1..=top).rev() {
            let mut moved = true;
            while moved {
                moved = false;
                s.links.clear();
                self.store.links_into(cur.node, level, &mut s.links);
                for &nb in &s.links {
                    let d = q.dist(nb);
                    if d < cur.dist {
                        cur = Near { dist: d, node: nb };
                        moved = true;
                    }
                }
            }
        }
        cur
    }

    /// Best-first search of `level` from `start`, keeping the `ef` closest nodes that
    /// `allows` accepts in `s.results`. Rejected nodes are walked through but never
    /// take a result slot. Without a filter the walk stops at the first candidate
    /// farther than the worst result; with one it goes on while candidates remain, as
    /// the flat search does (see its module docs for why).
    pub(super) fn search_level(
        &self,
        s: &mut Scratch,
        q: &impl Score,
        start: Near,
        ef: usize,
        level: usize,
        allows: Option<&dyn Fn(u32) -> bool>,
    ) {
        s.begin(self.len());
        s.visited.insert(start.node);
        s.candidates.push(Reverse(start));
        if allows.is_none_or(|a| a(start.node)) {
            s.results.push(start);
        }
        let mut bound = s.results.peek().map_or(f32::INFINITY, |r| r.dist);
        while let Some(Reverse(c)) = s.candidates.pop() {
            if c.dist > bound && allows.is_none() {
                break;
            }
            s.links.clear();
            self.store.links_into(c.node, level, &mut s.links);
            s.fresh.clear();
            for i in 0..s.links.len() {
                let nb = s.links[i];
                if s.visited.insert(nb) {
                    s.fresh.push(nb);
                    q.warm(nb, 0, HEAD_LINES);
                }
            }
            for i in 0..s.fresh.len() {
                if let Some(&next) = s.fresh.get(i + AHEAD) {
                    q.warm(next, HEAD_LINES, usize::MAX);
                }
                let nb = s.fresh[i];
                let d = q.dist(nb);
                if s.results.len() < ef || d < bound {
                    let near = Near { dist: d, node: nb };
                    s.candidates.push(Reverse(near));
                    if level == 0 {
                        self.store.warm_links0(nb);
                    }
                    if allows.is_none_or(|a| a(nb)) {
                        s.results.push(near);
                        if s.results.len() > ef {
                            s.results.pop();
                        }
                    }
                    if let Some(worst) = s.results.peek() {
                        bound = worst.dist;
                    }
                }
            }
        }
    }
}
