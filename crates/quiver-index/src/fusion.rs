//! Hybrid fusion: merging the dense and the sparse candidate lists into one ranking.
//!
//! Two methods:
//! - Reciprocal rank fusion: `score = Σ 1 / (k + rank)` over the lists a hit appears in
//!   (ranks start at 1, `k` defaults to 60). It ignores score scales entirely.
//! - Weighted: each list's scores are min-max normalized to `[0, 1]` (a list whose scores
//!   are all equal normalizes to 1), then `alpha * dense + (1 - alpha) * sparse`; a hit
//!   missing from a list gets 0 from it.
//!
//! Every fused hit keeps its rank and raw score in each list (`explain`). Ties are broken
//! by the best single-list rank, then by key, so the order is deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{IndexError, Result};

/// Default RRF constant.
pub const DEFAULT_RRF_K: f32 = 60.0;

/// How two ranked lists are combined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum Fusion {
    /// Reciprocal rank fusion with constant `k`.
    Rrf {
        #[serde(default = "default_k")]
        k: f32,
    },
    /// Min-max normalized scores mixed by `alpha` (weight of the dense list).
    Weighted { alpha: f32 },
}

fn default_k() -> f32 {
    DEFAULT_RRF_K
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: DEFAULT_RRF_K }
    }
}

/// A hit's place in one input list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StageHit {
    /// 1-based position in the list.
    pub rank: usize,
    /// The score the list gave it.
    pub score: f32,
}

/// One fused result with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fused<K> {
    pub key: K,
    /// The fused score, higher is better.
    pub score: f32,
    /// Where the dense search put it, if it found it.
    pub dense: Option<StageHit>,
    /// Where the sparse search put it, if it found it.
    pub sparse: Option<StageHit>,
}

impl<K> Fused<K> {
    fn best_rank(&self) -> usize {
        let d = self.dense.map_or(usize::MAX, |s| s.rank);
        let s = self.sparse.map_or(usize::MAX, |s| s.rank);
        d.min(s)
    }
}

impl Fusion {
    /// Rejects a non-positive `k` or an `alpha` outside `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Fusion::Rrf { k } if !(k.is_finite() && k > 0.0) => Err(IndexError::InvalidInput(
                format!("rrf k must be a positive number, got {k}"),
            )),
            Fusion::Weighted { alpha } if !(0.0..=1.0).contains(&alpha) => Err(
                IndexError::InvalidInput(format!("alpha must be in [0, 1], got {alpha}")),
            ),
            _ => Ok(()),
        }
    }

    /// Fuses two lists, each given best first as `(key, score)`. A key listed twice in
    /// one list counts at its first (best) position.
    pub fn fuse<K: Ord + Clone>(
        &self,
        dense: &[(K, f32)],
        sparse: &[(K, f32)],
    ) -> Result<Vec<Fused<K>>> {
        self.validate()?;
        let mut merged: BTreeMap<K, Fused<K>> = BTreeMap::new();
        for (is_dense, list) in [(true, dense), (false, sparse)] {
            for (i, (key, score)) in list.iter().enumerate() {
                let entry = merged.entry(key.clone()).or_insert_with(|| Fused {
                    key: key.clone(),
                    score: 0.0,
                    dense: None,
                    sparse: None,
                });
                let slot = if is_dense {
                    &mut entry.dense
                } else {
                    &mut entry.sparse
                };
                if slot.is_none() {
                    *slot = Some(StageHit {
                        rank: i + 1,
                        score: *score,
                    });
                }
            }
        }
        let dense_range = min_max(dense);
        let sparse_range = min_max(sparse);
        let mut out: Vec<Fused<K>> = merged.into_values().collect();
        for hit in &mut out {
            hit.score = match *self {
                Fusion::Rrf { k } => [hit.dense, hit.sparse]
                    .iter()
                    .flatten()
                    .map(|s| 1.0 / (k + s.rank as f32))
                    .sum(),
                Fusion::Weighted { alpha } => {
                    let d = hit.dense.map_or(0.0, |s| normalize(s.score, dense_range));
                    let s = hit.sparse.map_or(0.0, |s| normalize(s.score, sparse_range));
                    alpha * d + (1.0 - alpha) * s
                }
            };
        }
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.best_rank().cmp(&b.best_rank()))
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(out)
    }
}

fn min_max<K>(list: &[(K, f32)]) -> (f32, f32) {
    list.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (_, s)| {
            (lo.min(*s), hi.max(*s))
        })
}

fn normalize(score: f32, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo {
        (score - lo) / (hi - lo)
    } else {
        1.0
    }
}
