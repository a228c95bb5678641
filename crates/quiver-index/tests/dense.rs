//! Dense index behaviour beyond recall: each distance, incremental inserts, scores,
//! filters, input validation, and Matryoshka rescoring.
#![allow(clippy::unwrap_used)]

mod common;

use common::{clustered, gauss, recall};
use quiver_core::Distance;
use quiver_index::{exact_search, DenseIndex, HnswParams, MatryoshkaIndex, RowSet};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn raw_vectors(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            // Varying norms matter for dot and L2.
            let scale = 1.0 + (i % 4) as f32 * 0.1;
            (0..dim).map(|_| gauss(&mut rng) * scale).collect()
        })
        .collect()
}

#[test]
fn every_distance_agrees_with_exact_search() {
    let data = raw_vectors(1, 1_000, 32);
    let queries = raw_vectors(2, 20, 32);
    for distance in [Distance::Cosine, Distance::Dot, Distance::L2] {
        let index = DenseIndex::new(32, distance, HnswParams::default()).unwrap();
        // Incremental inserts, as the mutable segment does them.
        for (i, v) in data.iter().enumerate() {
            index.insert(i as u64, v).unwrap();
        }
        let stored: Vec<Vec<f32>> = data
            .iter()
            .map(|v| {
                let mut v = v.clone();
                if distance.normalizes() {
                    quiver_core::normalize(&mut v);
                }
                v
            })
            .collect();
        let mut total = 0.0;
        for q in &queries {
            let got = index.search(q, 10, Some(128), None).unwrap();
            let rows = stored
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u64, v.as_slice()));
            let want = exact_search(distance, q, 10, rows, None);
            total += recall(&got, &want);
            for h in &got {
                let mut qn = q.clone();
                if distance.normalizes() {
                    quiver_core::normalize(&mut qn);
                }
                let exact = distance.score(&qn, &stored[h.row as usize]);
                let tol = 1e-3 * exact.abs().max(1.0);
                assert!(
                    (h.score - exact).abs() <= tol,
                    "{distance:?}: {} vs {exact}",
                    h.score
                );
            }
            assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
        }
        let r = total / queries.len() as f64;
        assert!(r >= 0.95, "{distance:?} recall {r}");
    }
}

#[test]
fn filters_apply_during_search() {
    let data = raw_vectors(3, 1_000, 16);
    let index = DenseIndex::new(16, Distance::L2, HnswParams::default()).unwrap();
    let rows: Vec<(u64, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64 * 3, v.as_slice()))
        .collect();
    index.insert_batch(&rows).unwrap();
    let only: RowSet = [30, 300, 2_997].into_iter().collect();
    let hits = index.search(&data[5], 10, None, Some(&only)).unwrap();
    let mut got: Vec<u64> = hits.iter().map(|h| h.row).collect();
    got.sort();
    assert_eq!(got, vec![30, 300, 2_997]);
    let none = RowSet::new();
    assert!(index
        .search(&data[5], 10, None, Some(&none))
        .unwrap()
        .is_empty());
    let even = |r: u64| r.is_multiple_of(2);
    let hits = index.search(&data[5], 20, None, Some(&even)).unwrap();
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| h.row.is_multiple_of(2)));
}

#[test]
fn rejects_bad_input() {
    assert!(DenseIndex::new(0, Distance::Cosine, HnswParams::default()).is_err());
    let bad = HnswParams {
        m: 1,
        ..HnswParams::default()
    };
    assert!(DenseIndex::new(4, Distance::Cosine, bad).is_err());
    let index = DenseIndex::new(4, Distance::Cosine, HnswParams::default()).unwrap();
    assert!(index.search(&[1.0; 4], 5, None, None).unwrap().is_empty());
    assert!(index.insert(0, &[1.0; 3]).is_err());
    assert!(index.insert(0, &[1.0, f32::NAN, 0.0, 0.0]).is_err());
    index.insert(0, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    assert!(index.search(&[1.0; 5], 1, None, None).is_err());
    let hits = index.search(&[2.0, 0.0, 0.0, 0.0], 3, None, None).unwrap();
    assert_eq!(hits.len(), 1);
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    let params: HnswParams = serde_json::from_str(r#"{"m": 8}"#).unwrap();
    assert_eq!(
        params,
        HnswParams {
            m: 8,
            ..HnswParams::default()
        }
    );
}

#[test]
fn matryoshka_rescoring_recall() {
    const N: usize = 20_000;
    const DIM: usize = 384;
    // Matryoshka-like data: leading components carry more of the signal.
    let (data, queries) = clustered(11, N, 100, DIM, 50, 0.6, |i| 1.0 / (1.0 + i as f32 / 64.0));
    let index = MatryoshkaIndex::new(DIM, 128, Distance::Cosine, HnswParams::default()).unwrap();
    assert_eq!(index.index_dim(), 128);
    let rows: Vec<(u64, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    index.insert_batch(&rows).unwrap();
    let mut total = 0.0;
    for q in &queries {
        let got = index.search(q, 10, 100, None, None, &data).unwrap();
        let want = common::truth(&data, q, 10, None);
        for (g, w) in got.iter().zip(&want) {
            if g.row == w.row {
                assert!((g.score - w.score).abs() < 1e-5, "full-dim score is exact");
            }
        }
        total += recall(&got, &want);
    }
    let r = total / queries.len() as f64;
    println!("Matryoshka 128/384 recall@10 with 100 rescored candidates: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
    assert!(MatryoshkaIndex::new(64, 65, Distance::Cosine, HnswParams::default()).is_err());
}

/// A memtable's graph: writers insert from several threads while readers search. Every
/// search returns only inserted rows, each once, in score order; once the writers are
/// done the graph holds every row and finds each row's own vector first.
#[test]
fn searches_while_many_threads_insert() {
    let (data, _) = clustered(9, 6_000, 0, 48, 60, 0.6, |_| 1.0);
    let index = DenseIndex::new(48, Distance::Cosine, HnswParams::default()).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (index, data) = (&index, &data);
                s.spawn(move || {
                    for (i, v) in data.iter().enumerate().filter(|(i, _)| i % 3 == w) {
                        index.insert(i as u64, v).unwrap();
                    }
                })
            })
            .collect();
        let reader = s.spawn(|| {
            let mut searches = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let q = &data[searches % data.len()];
                let hits = index.search(q, 10, Some(32), None).unwrap();
                let mut rows: Vec<u64> = hits.iter().map(|h| h.row).collect();
                assert!(rows.iter().all(|&r| (r as usize) < data.len()));
                assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
                rows.sort_unstable();
                rows.dedup();
                assert_eq!(rows.len(), hits.len(), "a row returned twice");
                searches += 1;
            }
            searches
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(index.len(), data.len());
    let found = data
        .iter()
        .enumerate()
        .filter(|(i, v)| index.search(v, 1, Some(64), None).unwrap()[0].row == *i as u64)
        .count();
    assert!(
        found * 100 >= data.len() * 99,
        "{found} of {} found themselves",
        data.len()
    );
}

/// Parallel inserts leave no node without a way in: on small clustered graphs every
/// row's own vector finds that row. (An insert that started its walk at a node still
/// being inserted, and linked to it, used to have that link overwritten.)
#[test]
fn parallel_inserts_leave_every_node_reachable() {
    for spread in [0.1f32, 0.3, 0.6] {
        for seed in 1..8 {
            let (data, _) = clustered(seed, 500, 0, 16, 5, spread, |_| 1.0);
            let index = DenseIndex::new(16, Distance::Cosine, HnswParams::default()).unwrap();
            let rows: Vec<(u64, &[f32])> = data
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u64, v.as_slice()))
                .collect();
            index.insert_batch(&rows).unwrap();
            for (i, v) in data.iter().enumerate() {
                let hits = index.search(v, 1, Some(200), None).unwrap();
                assert_eq!(
                    hits[0].row, i as u64,
                    "spread {spread} seed {seed}: row {i} not found"
                );
            }
        }
    }
}
