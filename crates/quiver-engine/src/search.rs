//! Exact top-k selection shared by brute-force search.
//!
//! Hits rank by score, higher first; equal scores rank by id ascending so results are
//! deterministic across segment layouts.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
}

/// A candidate ordered so that the heap's maximum is the worst kept hit.
#[derive(Debug)]
struct Cand<'a> {
    score: f32,
    id: &'a str,
}

impl Ord for Cand<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // "Greater" means worse: lower score, or same score and larger id.
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.id.cmp(other.id))
    }
}

impl PartialOrd for Cand<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Cand<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Cand<'_> {}

/// Keeps the best `k` of the candidates pushed into it.
#[derive(Debug)]
pub(crate) struct TopK<'a> {
    k: usize,
    heap: BinaryHeap<Cand<'a>>,
}

impl<'a> TopK<'a> {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(4096)),
        }
    }

    pub(crate) fn push(&mut self, id: &'a str, score: f32) {
        if self.k == 0 {
            return;
        }
        let cand = Cand { score, id };
        if self.heap.len() < self.k {
            self.heap.push(cand);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if cand < *worst {
                *worst = cand;
            }
        }
    }

    /// The kept hits, best first.
    pub(crate) fn into_hits(self) -> Vec<Hit> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|c| Hit {
                id: c.id.to_string(),
                score: c.score,
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_k_with_id_tiebreak() {
        let mut t = TopK::new(3);
        for (id, s) in [
            ("e", 0.1),
            ("d", 0.9),
            ("c", 0.5),
            ("b", 0.5),
            ("a", -1.0),
            ("f", 0.5),
        ] {
            t.push(id, s);
        }
        let hits: Vec<(String, f32)> = t.into_hits().into_iter().map(|h| (h.id, h.score)).collect();
        assert_eq!(
            hits,
            vec![("d".into(), 0.9), ("b".into(), 0.5), ("c".into(), 0.5)]
        );
        let mut none = TopK::new(0);
        none.push("x", 1.0);
        assert!(none.into_hits().is_empty());
    }
}
