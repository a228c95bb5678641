//! Seeded synthetic data shared by the integration tests.
#![allow(dead_code)]

use quiver_core::Distance;
use quiver_index::{exact_search, Hit, RowFilter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A standard normal sample (Box-Muller).
pub fn gauss(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

pub fn normalize(v: &mut [f32]) {
    quiver_core::normalize(v);
}

/// `n` unit vectors around `clusters` gaussian centres, plus `queries` more drawn the
/// same way. `scale(i)` sets the spread of component `i` (1.0 everywhere for isotropic
/// data; a decaying profile mimics Matryoshka embeddings).
pub fn clustered(
    seed: u64,
    n: usize,
    queries: usize,
    dim: usize,
    clusters: usize,
    noise: f32,
    scale: impl Fn(usize) -> f32,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|i| gauss(&mut rng) * scale(i)).collect())
        .collect();
    let draw = |rng: &mut StdRng| {
        let c = &centres[rng.random_range(0..clusters)];
        let mut v: Vec<f32> = c
            .iter()
            .enumerate()
            .map(|(i, x)| x + noise * scale(i) * gauss(rng))
            .collect();
        normalize(&mut v);
        v
    };
    let data = (0..n).map(|_| draw(&mut rng)).collect();
    let qs = (0..queries).map(|_| draw(&mut rng)).collect();
    (data, qs)
}

/// Exact top-k over all rows (row = position).
pub fn truth(data: &[Vec<f32>], q: &[f32], k: usize, filter: Option<&dyn RowFilter>) -> Vec<Hit> {
    let rows = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()));
    exact_search(Distance::Cosine, q, k, rows, filter)
}

/// Fraction of `want`'s rows found in `got`.
pub fn recall(got: &[Hit], want: &[Hit]) -> f64 {
    if want.is_empty() {
        return 1.0;
    }
    let found = want
        .iter()
        .filter(|w| got.iter().any(|g| g.row == w.row))
        .count();
    found as f64 / want.len() as f64
}
