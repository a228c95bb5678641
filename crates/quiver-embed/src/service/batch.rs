//! Choosing which queued items run together: a pure function over token counts, kept apart
//! from the queue so its rules can be tested on their own.
//!
//! A batch costs what its padded shape costs: `items × longest item` tokens, because every
//! row is padded to the longest. So items are sorted by length and a batch is a run of
//! neighbours in that order, which keeps padding small. The run always contains the oldest
//! item, so a long text is never starved by a stream of short ones.

/// Picks a batch among candidates given in arrival order (index 0 is the oldest).
///
/// `tokens[i]` is candidate `i`'s length. The batch holds candidate 0, grows one neighbour
/// (in length order) at a time, choosing the side that adds fewer padding tokens, while the
/// padded size stays within `budget` and the count within `max_items`. An oldest item over
/// the budget on its own still runs, alone. Returns candidate indices, shortest first.
pub(crate) fn pick(tokens: &[usize], budget: usize, max_items: usize) -> Vec<usize> {
    if tokens.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    // Ties keep arrival order, so equal-length items are served oldest first.
    order.sort_by_key(|&i| (tokens[i], i));
    let anchor = order.iter().position(|&i| i == 0).unwrap_or(0);
    // The batch is order[lo..hi]; its longest member is order[hi - 1].
    let (mut lo, mut hi) = (anchor, anchor + 1);
    let padded = |count: usize, longest: usize| count.saturating_mul(longest.max(1));
    while hi - lo < max_items.max(1) {
        let count = hi - lo;
        let longest = tokens[order[hi - 1]];
        // Adding a shorter item pads it up to the current longest.
        let left = (lo > 0)
            .then(|| tokens[order[lo - 1]])
            .filter(|_| padded(count + 1, longest) <= budget)
            .map(|t| longest - t);
        // Adding a longer item pads every current member up to it.
        let right = (hi < order.len())
            .then(|| tokens[order[hi]])
            .filter(|&t| padded(count + 1, t) <= budget)
            .map(|t| count * (t - longest));
        match (left, right) {
            (Some(l), Some(r)) if r < l => hi += 1,
            (Some(_), _) => lo -= 1,
            (None, Some(_)) => hi += 1,
            (None, None) => break,
        }
    }
    order[lo..hi].to_vec()
}

#[cfg(test)]
mod tests {
    use super::pick;

    fn padded(tokens: &[usize], batch: &[usize]) -> usize {
        batch.len() * batch.iter().map(|&i| tokens[i]).max().unwrap_or(0)
    }

    #[test]
    fn oldest_is_always_in_and_budget_holds() {
        let tokens = [50, 3, 4, 60, 5, 49, 51, 200];
        let batch = pick(&tokens, 200, 16);
        assert!(batch.contains(&0));
        assert!(padded(&tokens, &batch) <= 200, "{batch:?}");
        // Items near 50 tokens go with the oldest, not the short ones.
        assert_eq!(batch, vec![5, 0, 6]);
    }

    #[test]
    fn short_items_fill_up_when_budget_allows() {
        let tokens = [10, 9, 8, 30, 7];
        assert_eq!(pick(&tokens, 40, 16), vec![4, 2, 1, 0]);
        assert_eq!(pick(&tokens, 1000, 16), vec![4, 2, 1, 0, 3]);
        assert_eq!(pick(&tokens, 1000, 2), vec![1, 0]);
    }

    #[test]
    fn oversized_oldest_runs_alone() {
        assert_eq!(pick(&[500, 1, 1], 100, 16), vec![0]);
        assert!(pick(&[], 100, 16).is_empty());
    }

    #[test]
    fn equal_lengths_go_oldest_first() {
        assert_eq!(pick(&[5, 5, 5, 5], 10, 16), vec![0, 1]);
    }
}
