//! The filtered-search planner: how one graph (a memtable's or a segment's) answers a
//! query whose filter allows `allowed` of its `live` rows.
//!
//! The metadata index gives the exact count of allowed rows before any vector is
//! touched, so the choice is a cost estimate in distance computations:
//!
//! - **exact**: score every allowed row; costs `allowed`, always exact.
//! - **overfetch**: walk the graph as if unfiltered with a list wide enough to hold
//!   `k` allowed rows one and a half times over (`1.5k / selectivity`), then keep the
//!   allowed hits.
//!   The walk approximates the ball of the nearest rows around the query, and the
//!   nearest allowed rows are the allowed rows of that ball, however the filter and the
//!   vectors correlate; when the ball turns out to hold fewer than `k` of them the
//!   search runs again as a filtered walk. Costs about `width × WALK_COST`. The margin
//!   is a trade: at 10% selectivity and `k` 10 a list of 150 holds fewer than 10
//!   allowed rows for about one query in fifteen (a binomial tail), which pays the
//!   second walk, while the other queries walk a list a quarter shorter than with a
//!   margin of 2 (measured at 1M rows: p50 1.8x the unfiltered walk with 2).
//! - **filtered walk**: rows the filter rejects are walked through but never become
//!   results; the list fills with allowed rows only, so the walk reaches about
//!   `width / selectivity` nodes. What unfiltered queries use (the filter then only
//!   drops deleted or overwritten rows).
//!
//! The constants come from `quiver bench filter` (README): they put the switch between
//! the plans where their measured latencies cross, with recall@10 >= 0.95 on each side.

/// Distance computations one unit of walk width costs (neighbours scored per node the
/// walk expands, about half of the level-0 degree 2M at M 16, plus the cost of reaching
/// them in random order rather than in row order).
const WALK_COST: usize = 24;
/// An overfetching walk's list holds `OVERFETCH_NUM / OVERFETCH_DEN` times
/// `k / selectivity` rows.
const OVERFETCH_NUM: usize = 3;
const OVERFETCH_DEN: usize = 2;
/// The widest list an overfetching walk uses (the API's `ef` limit).
const MAX_WIDTH: usize = 4096;

/// How one graph search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Score every allowed row.
    Exact,
    /// Walk `width` wide ignoring the filter, keep the allowed hits (see module docs).
    Overfetch { width: usize },
    /// Walk `width` wide; rejected rows never become results.
    Filtered { width: usize },
}

/// The cheapest plan for `k` hits from `allowed` of `live` rows, `width` being the
/// query's search list (`ef`, at least `k`).
pub(crate) fn plan(allowed: usize, live: usize, k: usize, width: usize) -> Plan {
    if allowed >= live {
        return Plan::Filtered { width };
    }
    let exact = allowed;
    // width / selectivity, in integers: width × live / allowed.
    let filtered_width = width.saturating_mul(live) / allowed.max(1);
    let over_width = k
        .saturating_mul(OVERFETCH_NUM)
        .saturating_mul(live)
        .div_ceil(allowed.max(1).saturating_mul(OVERFETCH_DEN))
        .max(width);
    let mut best = (exact, Plan::Exact);
    if over_width <= MAX_WIDTH {
        let cost = over_width.saturating_mul(WALK_COST);
        if cost < best.0 {
            best = (cost, Plan::Overfetch { width: over_width });
        }
    }
    let cost = filtered_width.saturating_mul(WALK_COST);
    if cost < best.0 {
        best = (cost, Plan::Filtered { width });
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_selectivity() {
        // No filter: the plain walk.
        assert_eq!(plan(1000, 1000, 10, 64), Plan::Filtered { width: 64 });
        // A handful of rows: score them.
        assert_eq!(plan(200, 1_000_000, 10, 64), Plan::Exact);
        assert_eq!(plan(5_000, 1_000_000, 10, 64), Plan::Exact);
        // Half the rows: overfetching costs no more than the plain walk.
        assert_eq!(
            plan(500_000, 1_000_000, 10, 64),
            Plan::Overfetch { width: 64 }
        );
        // A tenth: a wider list.
        assert_eq!(
            plan(100_000, 1_000_000, 10, 64),
            Plan::Overfetch { width: 150 }
        );
        // Empty filters cost nothing to scan.
        assert_eq!(plan(0, 1_000_000, 10, 64), Plan::Exact);
    }
}
