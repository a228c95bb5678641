//! Exact brute-force search: the ground truth recall is measured against, and the plan
//! of choice when a filter leaves only a few rows.

use std::cmp::Ordering;

use quiver_core::Distance;

use crate::RowFilter;

/// One search result: a row and its score (higher is closer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub row: u64,
    pub score: f32,
}

/// Best first; equal scores go to the lower row so results are deterministic.
pub(crate) fn hit_order(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.row.cmp(&b.row))
}

pub(crate) fn sort_hits(hits: &mut [Hit]) {
    hits.sort_by(hit_order);
}

/// Keeps the `k` best of `hits`, sorted best first.
pub(crate) fn top_k(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    if k == 0 {
        return Vec::new();
    }
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, hit_order);
        hits.truncate(k);
    }
    sort_hits(&mut hits);
    hits
}

/// Scores every allowed row against `query` and returns the `k` best.
///
/// For cosine the query is normalized here and the rows are expected to be unit vectors
/// already (collections store them that way), so scores equal [`crate::DenseIndex`]'s.
pub fn exact_search<'a, I>(
    distance: Distance,
    query: &[f32],
    k: usize,
    rows: I,
    filter: Option<&dyn RowFilter>,
) -> Vec<Hit>
where
    I: IntoIterator<Item = (u64, &'a [f32])>,
{
    let mut q = query.to_vec();
    if distance.normalizes() {
        quiver_core::normalize(&mut q);
    }
    let hits = rows
        .into_iter()
        .filter(|(row, _)| filter.is_none_or(|f| f.allows(*row)))
        .map(|(row, v)| Hit {
            row,
            score: match distance {
                Distance::Cosine | Distance::Dot => crate::simd::dot(&q, v),
                Distance::L2 => distance.score(&q, v),
            },
        })
        .collect();
    top_k(hits, k)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_breaks_ties_by_row() {
        let rows: Vec<Vec<f32>> = vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 0.0],
            vec![0.6, 0.8],
        ];
        let it = rows
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v.as_slice()));
        let hits = exact_search(Distance::Cosine, &[2.0, 0.0], 3, it, None);
        let order: Vec<u64> = hits.iter().map(|h| h.row).collect();
        assert_eq!(order, vec![0, 2, 3]);
        assert!((hits[2].score - 0.6).abs() < 1e-6);
        let only_odd = |r: u64| r % 2 == 1;
        let it = rows
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v.as_slice()));
        let hits = exact_search(Distance::L2, &[0.0, 1.0], 5, it, Some(&only_odd));
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), vec![1, 3]);
        assert!((hits[1].score + (0.36 + 0.04)).abs() < 1e-6);
    }
}
