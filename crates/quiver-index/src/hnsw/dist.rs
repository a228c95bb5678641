//! The inner-product distance earlier releases built hnsw_rs graphs with, needed to read
//! their dumps (see `legacy`).
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

/// The raw inner-product distance, `g(-dot)` as described in the module table.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DotDist;

/// Maps the negated inner product to a positive, strictly increasing distance.
fn dot_to_dist(dot: f32) -> f32 {
    let x = -dot;
    if x >= 0.0 {
        1.0 + x
    } else {
        1.0 / (1.0 - x)
    }
}

impl AnnDistance<f32> for DotDist {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        dot_to_dist(crate::simd::dot(va, vb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_transform_orders_and_stays_positive() {
        let dots = [-1e6f32, -3.0, -0.5, 0.0, 0.25, 2.0, 1e6];
        for w in dots.windows(2) {
            assert!(dot_to_dist(w[0]) > dot_to_dist(w[1]), "{w:?}");
        }
        assert!(dots.iter().all(|&d| dot_to_dist(d) > 0.0));
        assert_eq!(DotDist.eval(&[1.0, 2.0], &[3.0, 4.0]), dot_to_dist(11.0));
    }
}
