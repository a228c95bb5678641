//! Inserting into a growing graph, from any number of threads at once.
//!
//! The algorithm is HNSW's (Malkov and Yashunin), arranged as hnswlib arranges it: a
//! new node draws its top level, descends greedily to it, and on each level from there
//! down searches `ef_construction` candidates, keeps up to `M` of them chosen by the
//! diversity heuristic (a candidate is dropped when a kept one is closer to it than the
//! new node is), links to them, and links each of them back. A full neighbour list is
//! re-chosen by the same heuristic over its links plus the new one, so lists stay
//! bounded (`2M` on level 0, `M` above) and spread in direction. At 128 dimensions and
//! more the walks score the nodes' 8-bit codes and the kept candidates are scored again
//! exactly before the heuristic runs (see `codes`).
//!
//! Each node has its own lock, taken only to rewrite that node's links; walks take no
//! locks (see `store`). An insert that raises the top level holds the graph's `grow`
//! lock throughout, so two such inserts never race for the entry point.

use super::super::near::Near;
use super::score::{Coded, Exact, Score};
use super::walk::{with_scratch, Scratch};
use super::{Entry, Graph};

impl Graph {
    /// Inserts a prepared vector (graph length, normalized for cosine) under `key`.
    pub(crate) fn insert(&self, key: u64, vector: &[f32]) {
        let level = self.random_level();
        let node = self.allocate();
        self.store.create(node, key, vector, level);
        let entry = match self.entry() {
            Some(entry) => entry,
            None => {
                let mut e = self.entry.write();
                match *e {
                    Some(entry) => entry,
                    None => {
                        *e = Some(Entry { node, level });
                        return;
                    }
                }
            }
        };
        let (_grow, entry) = if level > entry.level {
            let guard = self.grow.lock();
            // Another insert may have raised the top level while this one waited.
            let now = self.entry().unwrap_or(entry);
            (Some(guard), now)
        } else {
            (None, entry)
        };
        with_scratch(|s| self.link_in(s, node, level, entry));
        if level > entry.level {
            let mut e = self.entry.write();
            if e.is_none_or(|cur| level > cur.level) {
                *e = Some(Entry { node, level });
            }
        }
    }

    fn link_in(&self, s: &mut Scratch, node: u32, level: usize, entry: Entry) {
        let q = self.store.vector(node);
        if self.store.coded() {
            self.link_in_by(s, &Coded::new(self, q), node, level, entry);
        } else {
            let exact = Exact {
                graph: self,
                query: q,
            };
            self.link_in_by(s, &exact, node, level, entry);
        }
    }

    /// Walks by `score`, then links `node` by exact distances to what the walks kept.
    fn link_in_by(
        &self,
        s: &mut Scratch,
        score: &impl Score,
        node: u32,
        level: usize,
        entry: Entry,
    ) {
        let q = self.store.vector(node);
        let start = Near {
            dist: score.dist(entry.node),
            node: entry.node,
        };
        let mut cur = self.descend(s, score, start, entry.level, level);
        let top = level.min(entry.level);
        // Links are chosen level by level from the top, but written from level 0 up:
        // a concurrent walk that reaches `node` on a level then always finds its links on
        // every level below. Written top-down, a walk could descend into `node` before
        // its level-0 links existed, see no neighbours there, and link its own node to
        // `node` alone, leaving it one in-link that a later re-choice could drop.
        let mut chosen_by_level: Vec<Vec<u32>> = Vec::with_capacity(top + 1);
        for l in (0..=top).rev() {
            self.search_level(s, score, cur, self.ef_construction, l, None);
            let mut found = std::mem::take(&mut s.picked);
            found.clear();
            found.extend(s.results.drain().filter(|n| n.node != node).map(|n| Near {
                dist: self.dist(q, self.store.vector(n.node)),
                node: n.node,
            }));
            found.sort_unstable();
            if let Some(&closest) = found.first() {
                cur = Near {
                    dist: score.dist(closest.node),
                    node: closest.node,
                };
            }
            let mut chosen = Vec::with_capacity(self.m);
            self.select(&found, self.m, &mut chosen);
            chosen_by_level.push(chosen);
            s.picked = found;
        }
        // `chosen_by_level` holds the top level first.
        for (l, chosen) in chosen_by_level.iter().rev().enumerate() {
            self.set_own_links(node, l, chosen);
            for &nb in chosen {
                self.link_back(nb, node, l);
            }
        }
    }

    /// The diversity heuristic: from `candidates` (closest first), keeps up to `m`,
    /// dropping each one that a kept candidate is closer to than the base node is.
    pub(super) fn select(&self, candidates: &[Near], m: usize, out: &mut Vec<u32>) {
        out.clear();
        for c in candidates {
            if out.len() == m {
                break;
            }
            let v = self.store.vector(c.node);
            let diverse = out
                .iter()
                .all(|&kept| self.dist(v, self.store.vector(kept)) >= c.dist);
            if diverse {
                out.push(c.node);
            }
        }
    }

    /// Gives the new `node` its `chosen` links on `level`. Another insert may already
    /// have linked to it there (it can start a walk from the new node, found through a
    /// level above, and pick it): those links are kept, not overwritten, or that node
    /// could be left with no way in. Over the cap, the union is re-chosen.
    fn set_own_links(&self, node: u32, level: usize, chosen: &[u32]) {
        let held = self.store.lock(node);
        let mut links = Vec::with_capacity(self.cap0 + chosen.len());
        self.store.links_into(node, level, &mut links);
        links.retain(|l| !chosen.contains(l));
        links.splice(0..0, chosen.iter().copied());
        self.cap_links(node, level, &mut links);
        self.store.set_links(&held, node, level, &links);
    }

    /// Adds `new` to the links of `nb` on `level`, re-choosing them when full.
    fn link_back(&self, nb: u32, new: u32, level: usize) {
        let held = self.store.lock(nb);
        if self.store.push_link(&held, nb, level, new) {
            return;
        }
        let mut links = Vec::with_capacity(self.cap0 + 1);
        self.store.links_into(nb, level, &mut links);
        links.push(new);
        self.cap_links(nb, level, &mut links);
        self.store.set_links(&held, nb, level, &links);
    }

    /// Re-chooses `links` of `node` on `level` by the heuristic when they exceed the
    /// level's cap (`2M` on level 0, `M` above).
    fn cap_links(&self, node: u32, level: usize, links: &mut Vec<u32>) {
        let cap = if level == 0 { self.cap0 } else { self.m };
        if links.len() <= cap {
            return;
        }
        let base = self.store.vector(node);
        let mut near: Vec<Near> = links
            .iter()
            .map(|&l| Near {
                dist: self.dist(base, self.store.vector(l)),
                node: l,
            })
            .collect();
        near.sort_unstable();
        self.select(&near, cap, links);
    }
}
