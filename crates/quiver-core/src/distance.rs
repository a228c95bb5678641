//! Vector distances and the scores they produce.
//!
//! Every search ranks by a score where higher is better: cosine and dot return the
//! similarity, L2 returns the negated squared Euclidean distance. Cosine collections
//! store unit vectors, so their score is a plain dot product.

use serde::{Deserialize, Serialize};

/// How a collection compares vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Cosine similarity; vectors are L2-normalized on write.
    #[default]
    Cosine,
    /// Raw inner product.
    Dot,
    /// Euclidean distance (scored as its negated square).
    L2,
}

impl Distance {
    /// Similarity of two vectors of equal length, higher is closer.
    ///
    /// For `Cosine` both vectors are expected to be normalized already.
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Distance::Cosine | Distance::Dot => dot(a, b),
            Distance::L2 => -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>(),
        }
    }

    /// Whether vectors are normalized before they are stored or searched.
    pub fn normalizes(self) -> bool {
        self == Distance::Cosine
    }
}

/// Inner product of two equal-length slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales `v` to unit length in place; a zero vector stays zero.
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_rank_closer_higher() {
        let q = [1.0, 0.0];
        let near = [0.9, 0.1];
        let far = [-1.0, 0.0];
        for d in [Distance::Cosine, Distance::Dot, Distance::L2] {
            assert!(d.score(&q, &near) > d.score(&q, &far), "{d:?}");
        }
        assert_eq!(Distance::L2.score(&[0.0, 0.0], &[3.0, 4.0]), -25.0);
    }

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = [3.0, 4.0];
        normalize(&mut v);
        assert!((dot(&v, &v) - 1.0).abs() < 1e-6);
        let mut z = [0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
    }
}
