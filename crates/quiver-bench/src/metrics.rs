//! Retrieval-quality metrics over graded judgments, and latency percentiles.
//!
//! - nDCG@k: gain is the judgment grade itself (linear gain, as trec_eval and BEIR use),
//!   discounted by `log2(rank + 1)`; the ideal ordering sorts every judged grade.
//!   Grades at or below zero give nothing.
//! - Recall@k: relevant documents (grade above zero) found in the top k over all relevant.
//! - MRR@k: reciprocal rank of the first relevant document in the top k, 0 if none.
//!
//! Scores are per query; a run's figure is the mean over its queries.

use std::time::Duration;

use crate::beir::Judgments;

fn gain(judged: &Judgments, id: &str) -> f64 {
    judged.get(id).map_or(0.0, |&g| f64::from(g.max(0)))
}

/// nDCG at `k` of `ranking` (document ids, best first).
pub fn ndcg_at(ranking: &[String], judged: &Judgments, k: usize) -> f64 {
    let discount = |i: usize| 1.0 / ((i + 2) as f64).log2();
    let dcg: f64 = ranking
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| gain(judged, id) * discount(i))
        .sum();
    let mut ideal: Vec<f64> = judged.values().map(|&g| f64::from(g.max(0))).collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| g * discount(i))
        .sum();
    if idcg > 0.0 {
        dcg / idcg
    } else {
        0.0
    }
}

/// Recall at `k`: the share of relevant documents that appear in the top `k`.
pub fn recall_at(ranking: &[String], judged: &Judgments, k: usize) -> f64 {
    let relevant = judged.values().filter(|&&g| g > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranking
        .iter()
        .take(k)
        .filter(|id| judged.get(id.as_str()).is_some_and(|&g| g > 0))
        .count();
    found as f64 / relevant as f64
}

/// Reciprocal rank of the first relevant document within the top `k`.
pub fn mrr_at(ranking: &[String], judged: &Judgments, k: usize) -> f64 {
    ranking
        .iter()
        .take(k)
        .position(|id| judged.get(id.as_str()).is_some_and(|&g| g > 0))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// The three figures of a run, means over its queries.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Quality {
    pub ndcg_at_10: f64,
    pub recall_at_100: f64,
    pub mrr_at_10: f64,
}

/// Scores a run: `(ranking, judgments)` per query.
pub fn quality<'a>(runs: impl IntoIterator<Item = (&'a [String], &'a Judgments)>) -> Quality {
    let (mut sum, mut n) = (Quality::default(), 0usize);
    for (ranking, judged) in runs {
        sum.ndcg_at_10 += ndcg_at(ranking, judged, 10);
        sum.recall_at_100 += recall_at(ranking, judged, 100);
        sum.mrr_at_10 += mrr_at(ranking, judged, 10);
        n += 1;
    }
    if n == 0 {
        return sum;
    }
    let n = n as f64;
    Quality {
        ndcg_at_10: sum.ndcg_at_10 / n,
        recall_at_100: sum.recall_at_100 / n,
        mrr_at_10: sum.mrr_at_10 / n,
    }
}

/// Recall of `got` against the true top-k ids `want` (|got ∩ want| / |want|).
pub fn overlap_recall<T: PartialEq>(got: &[T], want: &[T]) -> f64 {
    if want.is_empty() {
        return 1.0;
    }
    want.iter().filter(|w| got.contains(w)).count() as f64 / want.len() as f64
}

/// Mean [`overlap_recall`] of each query's ids in `got` against its true ids in
/// `truth` (parallel lists; 1 when there are no queries).
pub fn mean_recall<T: PartialEq>(got: &[Vec<T>], truth: &[Vec<T>]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    truth
        .iter()
        .zip(got)
        .map(|(w, g)| overlap_recall(g, w))
        .sum::<f64>()
        / truth.len() as f64
}

/// Nearest-rank percentile `p` (0..=100) of `samples`, in milliseconds; 0 when empty.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted: Vec<Duration> = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

/// Latency of a set of requests: nearest-rank p50 and p99, the slowest, and how many
/// times the p50 the slowest took (0 when there is no p50).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub max_over_p50: f64,
}

impl Latency {
    pub fn of(samples: &[Duration]) -> Latency {
        let p50_ms = percentile_ms(samples, 50.0);
        let max_ms = percentile_ms(samples, 100.0);
        Latency {
            p50_ms,
            p99_ms: percentile_ms(samples, 99.0),
            max_ms,
            max_over_p50: if p50_ms > 0.0 { max_ms / p50_ms } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn judged() -> Judgments {
        [("d1", 3), ("d3", 2), ("d4", 1), ("d9", 0), ("d8", -1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn ndcg_matches_hand_computed_values() {
        // DCG = 3/log2(2) + 0 + 2/log2(4) = 4; IDCG = 3 + 2/log2(3) + 1/log2(4).
        let j = judged();
        let got = ndcg_at(&ids(&["d1", "d9", "d3"]), &j, 10);
        assert!((got - 0.840_007_983).abs() < 1e-8, "{got}");
        // Only d4 (grade 1) at rank 2: (1/log2(3)) / IDCG.
        let got = ndcg_at(&ids(&["x", "d4"]), &j, 10);
        assert!((got - 0.132_496_507).abs() < 1e-8, "{got}");
        // The ideal ordering scores 1; a cut-off below the hit scores 0.
        assert!((ndcg_at(&ids(&["d1", "d3", "d4"]), &j, 10) - 1.0).abs() < 1e-12);
        assert_eq!(ndcg_at(&ids(&["x", "d1"]), &j, 1), 0.0);
        // Negative grades never subtract.
        assert_eq!(ndcg_at(&ids(&["d8"]), &j, 10), 0.0);
    }

    #[test]
    fn recall_and_mrr_match_hand_computed_values() {
        let j = judged();
        assert!((recall_at(&ids(&["d1", "d9", "d3"]), &j, 100) - 2.0 / 3.0).abs() < 1e-12);
        assert!((recall_at(&ids(&["d1", "d9", "d3"]), &j, 1) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(mrr_at(&ids(&["d1", "d3"]), &j, 10), 1.0);
        assert!((mrr_at(&ids(&["x", "d9", "d4"]), &j, 10) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(mrr_at(&ids(&["x", "d9", "d4"]), &j, 2), 0.0);
        assert_eq!(recall_at(&ids(&["d1"]), &Judgments::new(), 100), 0.0);
    }

    #[test]
    fn quality_averages_over_queries() {
        let j = judged();
        let a = ids(&["d1", "d3", "d4"]);
        let b = ids(&["x"]);
        let q = quality([(&a[..], &j), (&b[..], &j)]);
        assert!((q.ndcg_at_10 - 0.5).abs() < 1e-12);
        assert!((q.recall_at_100 - 0.5).abs() < 1e-12);
        assert!((q.mrr_at_10 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let s: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&s, 50.0), 50.0);
        assert_eq!(percentile_ms(&s, 99.0), 99.0);
        assert_eq!(percentile_ms(&s, 100.0), 100.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
        assert_eq!(overlap_recall(&[1, 2, 3], &[3, 4]), 0.5);
    }

    #[test]
    fn latency_summary_names_the_slowest_against_the_median() {
        let mut s: Vec<Duration> = (1..=99).map(|_| Duration::from_millis(10)).collect();
        s.push(Duration::from_millis(250));
        let l = Latency::of(&s);
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (10.0, 10.0, 250.0));
        assert_eq!(l.max_over_p50, 25.0);
        assert_eq!(Latency::of(&[]), Latency::default());
    }
}
