//! The flat graph against the built graph's own search over the very same links: equal or better
//! recall at equal `ef`, with deleted rows and filters, for every distance and for a
//! Matryoshka prefix, compared as floats and (128 dimensions and up) through codes; plus
//! its file: round trip and refusal of damage anywhere.
#![allow(clippy::unwrap_used)]

mod common;

use common::{clustered, recall};
use quiver_core::Distance;
use quiver_index::{
    exact_search, DenseIndex, FlatGraph, Hit, HnswParams, IndexError, MatryoshkaIndex, RowFilter,
    VectorRows,
};

const K: usize = 10;

fn params(m: usize) -> HnswParams {
    HnswParams {
        m,
        ef_construction: 80,
        ef_search: 32,
    }
}

fn build(data: &[Vec<f32>], distance: Distance, m: usize) -> DenseIndex {
    let index = DenseIndex::new(data[0].len(), distance, params(m)).unwrap();
    let rows: Vec<(u64, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    index.insert_batch(&rows).unwrap();
    index
}

fn flatten(data: &[Vec<f32>]) -> Vec<f32> {
    data.iter().flatten().copied().collect()
}

fn truth(
    distance: Distance,
    data: &[Vec<f32>],
    q: &[f32],
    filter: Option<&dyn RowFilter>,
) -> Vec<Hit> {
    let rows = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()));
    exact_search(distance, q, K, rows, filter)
}

/// Rows kept by the three filter cases: everything, all but deleted rows, a subset.
fn filters() -> Vec<(&'static str, Option<Box<dyn RowFilter>>)> {
    vec![
        ("none", None),
        ("deleted 10%", Some(Box::new(|r: u64| r % 10 != 3))),
        (
            "filter 30%",
            Some(Box::new(|r: u64| r.wrapping_mul(2_654_435_761) % 10 < 3)),
        ),
    ]
}

/// Mean recall@10 of the flat search and of the built graph's search over the same links.
fn compare(distance: Distance, data: &[Vec<f32>], queries: &[Vec<f32>], m: usize) {
    let index = build(data, distance, m);
    let stored = flatten(data);
    let rows = VectorRows::new(&stored, data[0].len());
    let flat = FlatGraph::export(&index, rows).unwrap();
    assert_eq!((flat.len(), flat.dim()), (data.len(), data[0].len()));
    assert_eq!(flat.has_codes(), data[0].len() >= 128);
    for (name, filter) in filters() {
        let filter = filter.as_deref();
        for ef in [10, 24, 64] {
            let (mut ours, mut theirs) = (0.0, 0.0);
            for q in queries {
                let want = truth(distance, data, q, filter);
                let got = flat.search(rows, q, K, ef, filter).unwrap();
                assert!(got.len() <= K);
                assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
                for h in &got {
                    assert!(
                        filter.is_none_or(|f| f.allows(h.row)),
                        "{name}: rejected row"
                    );
                    let exact = truth(distance, &data[h.row as usize..=h.row as usize], q, None);
                    let tol = 1e-4 * exact[0].score.abs().max(1.0);
                    assert!((exact[0].score - h.score).abs() <= tol, "{name}: score");
                }
                ours += recall(&got, &want);
                theirs += recall(&index.search(q, K, Some(ef), filter).unwrap(), &want);
            }
            let (ours, theirs) = (ours / queries.len() as f64, theirs / queries.len() as f64);
            println!("{distance:?} {name} ef {ef}: flat {ours:.4}, built {theirs:.4}");
            assert!(
                ours >= theirs - 0.005,
                "{distance:?} {name} ef {ef}: flat recall {ours:.4} < built {theirs:.4}"
            );
        }
    }
}

#[test]
fn cosine_recall_matches_the_built_graph() {
    let (data, queries) = clustered(11, 6_000, 300, 48, 40, 0.7, |_| 1.0);
    compare(Distance::Cosine, &data, &queries, 12);
}

/// L2 and dot over unnormalized rows of varied length, so they rank differently from
/// cosine.
fn compare_l2_and_dot(seed: u64, n: usize, queries: usize, dim: usize) {
    let (mut data, queries) = clustered(seed, n, queries, dim, 30, 0.8, |_| 1.0);
    for (i, v) in data.iter_mut().enumerate() {
        let s = 0.5 + (i % 7) as f32 * 0.25;
        v.iter_mut().for_each(|x| *x *= s);
    }
    compare(Distance::L2, &data, &queries, 8);
    compare(Distance::Dot, &data, &queries, 8);
}

#[test]
fn l2_and_dot_recall_match_the_built_graph() {
    compare_l2_and_dot(12, 4_000, 200, 33);
}

#[test]
fn coded_graphs_match_the_built_graph_recall() {
    // 128 dimensions and up: the walk compares 8-bit codes, then rescores exactly.
    let (data, queries) = clustered(15, 4_000, 300, 160, 30, 0.7, |_| 1.0);
    compare(Distance::Cosine, &data, &queries, 12);
    compare_l2_and_dot(16, 3_000, 300, 131);
}

#[test]
fn matryoshka_prefix_scores_are_prefix_cosines() {
    // The smaller prefix is compared as floats, the larger through codes of the
    // normalized prefix.
    for (seed, full_dim, dim) in [(13, 48, 16), (17, 256, 128)] {
        let scale = move |i: usize| 1.0 / (1.0 + i as f32 / (dim as f32 / 2.0));
        let (full, queries) = clustered(seed, 3_000, 50, full_dim, 20, 0.6, scale);
        let index = MatryoshkaIndex::new(full_dim, dim, Distance::Cosine, params(8)).unwrap();
        let rows: Vec<(u64, &[f32])> = full
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v.as_slice()))
            .collect();
        index.insert_batch(&rows).unwrap();
        let stored = flatten(&full);
        let flat = FlatGraph::export(index.graph(), VectorRows::new(&stored, full_dim)).unwrap();
        assert_eq!((flat.dim(), flat.stride()), (dim, full_dim));
        assert_eq!(flat.has_codes(), dim >= 128);
        let prefixes: Vec<Vec<f32>> = full
            .iter()
            .map(|v| {
                let mut p = v[..dim].to_vec();
                quiver_core::normalize(&mut p);
                p
            })
            .collect();
        let mut total = 0.0;
        for q in &queries {
            let got = flat
                .search(VectorRows::new(&stored, full_dim), q, K, 64, None)
                .unwrap();
            let want = truth(Distance::Cosine, &prefixes, &q[..dim], None);
            for h in &got {
                let one = &prefixes[h.row as usize..=h.row as usize];
                let exact = truth(Distance::Cosine, one, &q[..dim], None)[0].score;
                assert!((exact - h.score).abs() < 1e-4, "{exact} vs {}", h.score);
            }
            total += recall(&got, &want);
        }
        let total = total / queries.len() as f64;
        assert!(total > 0.9, "prefix {dim} of {full_dim}: recall {total}");
    }
}

#[test]
fn searches_graphs_of_different_sizes_on_one_thread() {
    let (big, queries) = clustered(14, 2_000, 20, 24, 10, 0.6, |_| 1.0);
    let small = big[..50].to_vec();
    let (sb, ss) = (flatten(&big), flatten(&small));
    let gb =
        FlatGraph::export(&build(&big, Distance::Cosine, 8), VectorRows::new(&sb, 24)).unwrap();
    let gs = FlatGraph::export(
        &build(&small, Distance::Cosine, 8),
        VectorRows::new(&ss, 24),
    )
    .unwrap();
    for q in &queries {
        for (g, data, rows) in [(&gb, &big, &sb), (&gs, &small, &ss), (&gb, &big, &sb)] {
            let got = g
                .search(VectorRows::new(rows, 24), q, K, 200, None)
                .unwrap();
            let want = truth(Distance::Cosine, data, q, None);
            assert!(recall(&got, &want) >= 0.9);
        }
    }
    assert!(gs
        .search(VectorRows::new(&ss, 24), &queries[0], 0, 10, None)
        .unwrap()
        .is_empty());
    let short = gs.search(VectorRows::new(&ss[..24], 24), &queries[0], K, 10, None);
    assert!(matches!(short, Err(IndexError::InvalidInput(_))));
}

#[test]
fn file_round_trip_and_damage_is_refused() {
    let (data, queries) = clustered(15, 3_000, 10, 16, 10, 0.6, |_| 1.0);
    let stored = flatten(&data);
    let rows = VectorRows::new(&stored, 16);
    let graph = FlatGraph::export(&build(&data, Distance::Cosine, 4), rows).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.qvg");
    graph.save(&path).unwrap();
    let opened = FlatGraph::open(&path).unwrap();
    assert!(opened.is_mapped());
    assert_eq!(
        opened.byte_len() as u64,
        std::fs::metadata(&path).unwrap().len()
    );
    for q in &queries {
        assert_eq!(
            opened.search(rows, q, K, 32, None).unwrap(),
            graph.search(rows, q, K, 32, None).unwrap()
        );
    }
    let good = std::fs::read(&path).unwrap();
    // Header fields, the header checksum, level 0's first and middle records, the upper
    // levels near the end, and the last byte.
    let len = good.len();
    for at in [0, 8, 20, 60, 70, 128, 129, len / 2, len - 300, len - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let got = FlatGraph::open(&path);
        assert!(
            matches!(got, Err(IndexError::Corrupt { .. })),
            "byte {at}: {got:?}"
        );
    }
    for cut in [len - 4, 128, 64, 0] {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert!(
            matches!(FlatGraph::open(&path), Err(IndexError::Corrupt { .. })),
            "cut {cut}"
        );
    }
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(FlatGraph::open(&path), Err(IndexError::Io { .. })));
}

/// A memtable's graph: nodes keyed by write sequence, a fifth of them overwritten
/// versions that the segment leaves out, rows in another order than the keys. The
/// exported graph searches as well as a graph built afresh over the kept rows, at equal
/// `ef`; a mapping that misses or repeats a row is refused.
#[test]
fn mapped_export_leaves_out_overwritten_versions() {
    let (data, queries) = clustered(21, 5_000, 300, 40, 30, 0.7, |_| 1.0);
    let index = build(&data, Distance::Cosine, 12);
    let overwritten = |key: usize| key % 5 == 2;
    let kept: Vec<usize> = (0..data.len()).filter(|&k| !overwritten(k)).collect();
    // Row r holds key kept[n - 1 - r]: reversed, so keys and rows differ.
    let n = kept.len();
    let rows_data: Vec<Vec<f32>> = (0..n).map(|r| data[kept[n - 1 - r]].clone()).collect();
    let mut row_of_key = vec![None; data.len()];
    for (r, &key) in kept.iter().rev().enumerate() {
        row_of_key[key] = Some(r);
    }
    let stored = flatten(&rows_data);
    let rows = VectorRows::new(&stored, data[0].len());
    let flat = FlatGraph::export_mapped(&index, rows, &|k| row_of_key[k]).unwrap();
    assert_eq!(flat.len(), n);
    let fresh = FlatGraph::export(&build(&rows_data, Distance::Cosine, 12), rows).unwrap();
    for ef in [16, 48] {
        let (mut ours, mut theirs) = (0.0, 0.0);
        for q in &queries {
            let want = truth(Distance::Cosine, &rows_data, q, None);
            ours += recall(&flat.search(rows, q, K, ef, None).unwrap(), &want);
            theirs += recall(&fresh.search(rows, q, K, ef, None).unwrap(), &want);
        }
        let (ours, theirs) = (ours / queries.len() as f64, theirs / queries.len() as f64);
        println!("mapped ef {ef}: mapped {ours:.4}, built afresh {theirs:.4}");
        assert!(ours >= theirs - 0.01, "ef {ef}: {ours:.4} < {theirs:.4}");
    }
    let missing = |k: usize| row_of_key[k].filter(|&r| r != 7);
    assert!(FlatGraph::export_mapped(&index, rows, &missing).is_err());
    let twice = |k: usize| row_of_key[k].map(|r| r.min(n - 2));
    assert!(FlatGraph::export_mapped(&index, rows, &twice).is_err());
}

/// Scanning a list of rows (the planner's answer to a selective filter) finds what exact
/// search over the same rows finds, with codes (128 dimensions) and without (16).
#[test]
fn scan_of_listed_rows_matches_exact_search() {
    for (dim, distance) in [
        (128, Distance::Cosine),
        (16, Distance::L2),
        (128, Distance::Dot),
    ] {
        let (data, queries) = clustered(3, 2_000, 30, dim, 20, 0.7, |_| 1.0);
        let stored = flatten(&data);
        let rows = VectorRows::new(&stored, dim);
        let flat = FlatGraph::export(&build(&data, distance, 8), rows).unwrap();
        let listed: Vec<u64> = (0..2_000).filter(|r| r % 7 == 2).collect();
        let only_listed = |r: u64| r % 7 == 2;
        let mut found = 0.0;
        for q in &queries {
            let got = flat.scan(rows, q, K, &listed).unwrap();
            assert!(got.iter().all(|h| only_listed(h.row)));
            let want = truth(distance, &data, q, Some(&only_listed));
            found += recall(&got, &want);
            // Scores are exact: those of rows both lists hold agree.
            for h in &got {
                if let Some(w) = want.iter().find(|w| w.row == h.row) {
                    assert!((h.score - w.score).abs() < 1e-4, "{dim} {distance:?}");
                }
            }
        }
        let mean = found / queries.len() as f64;
        assert!(mean >= 0.99, "{dim} {distance:?}: recall {mean}");
        assert!(flat.scan(rows, &queries[0], K, &[5_000]).is_err());
    }
}
