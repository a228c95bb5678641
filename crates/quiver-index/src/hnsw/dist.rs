//! The distances the HNSW graph runs on, and how they map back to Quiver scores.
//!
//! hnsw_rs needs a non-negative dissimilarity (it asserts as much while searching), but
//! Quiver ranks by scores where higher is closer. The graph only compares distances, so
//! any strictly increasing transform of the true dissimilarity builds and searches the
//! same graph. We pick transforms that never go negative under rounding:
//!
//! | collection | graph distance | score from distance |
//! |------------|----------------|---------------------|
//! | cosine (unit vectors) | Euclidean `d` (`d² = 2 - 2 cos`) | `1 - d²/2` |
//! | L2 | Euclidean `d` | `-d²` |
//! | dot | `g(-dot)`, `g(x) = 1 + x` for `x >= 0`, `1 / (1 - x)` below | inverse of `g` |
//!
//! A plain `1 - dot` (hnsw_rs's own dot distance) is wrong for raw inner products and
//! panics on unit vectors whose dot product rounds above one, hence the cosine-as-L2 rule.

use hnsw_rs::prelude::Distance as AnnDistance;
use quiver_core::Distance;

/// The raw inner-product distance, `g(-dot)` as described in the module table.
#[derive(Debug, Default, Clone, Copy)]
pub struct DotDist;

/// Maps the negated inner product to a positive, strictly increasing distance.
fn dot_to_dist(dot: f32) -> f32 {
    let x = -dot;
    if x >= 0.0 {
        1.0 + x
    } else {
        1.0 / (1.0 - x)
    }
}

fn dist_to_dot(dist: f32) -> f32 {
    if dist >= 1.0 {
        1.0 - dist
    } else {
        // dist = 1 / (1 + dot)  =>  dot = 1/dist - 1
        1.0 / dist - 1.0
    }
}

impl AnnDistance<f32> for DotDist {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        dot_to_dist(crate::simd::dot(va, vb))
    }
}

/// Converts a graph distance into the collection's score (higher is closer).
pub(crate) fn score_from_dist(distance: Distance, dist: f32) -> f32 {
    match distance {
        Distance::Cosine => 1.0 - dist * dist / 2.0,
        Distance::L2 => -(dist * dist),
        Distance::Dot => dist_to_dot(dist),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dot_transform_round_trips_and_orders() {
        let dots = [-1e6f32, -3.0, -0.5, 0.0, 0.25, 2.0, 1e6];
        for w in dots.windows(2) {
            assert!(dot_to_dist(w[0]) > dot_to_dist(w[1]), "{w:?}");
        }
        for d in dots {
            let back = dist_to_dot(dot_to_dist(d));
            assert!((back - d).abs() <= 1e-3 * d.abs().max(1.0), "{d} -> {back}");
            assert!(dot_to_dist(d) > 0.0);
        }
        assert_eq!(DotDist.eval(&[1.0, 2.0], &[3.0, 4.0]), dot_to_dist(11.0));
    }

    #[test]
    fn scores_from_distances() {
        assert!((score_from_dist(Distance::Cosine, 0.0) - 1.0).abs() < 1e-6);
        assert!((score_from_dist(Distance::Cosine, 2.0) + 1.0).abs() < 1e-6);
        assert_eq!(score_from_dist(Distance::L2, 5.0), -25.0);
    }
}
