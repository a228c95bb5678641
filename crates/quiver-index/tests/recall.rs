//! HNSW recall against exact search on 20,000 clustered 384-dim vectors, unfiltered,
//! with 10% of rows deleted, and with a filter keeping 10% of rows; plus converting an
//! earlier release's hnsw_rs dump.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::{clustered, recall, truth};
use quiver_core::Distance;
use quiver_index::{write_legacy_dump, DenseIndex, HnswParams, LoadOptions, RowFilter, RowSet};

const N: usize = 20_000;
const DIM: usize = 384;
const K: usize = 10;

struct Fixture {
    data: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    index: DenseIndex,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (data, queries) = clustered(7, N, 100, DIM, 100, 0.6, |_| 1.0);
        let index = DenseIndex::new(DIM, Distance::Cosine, HnswParams::default()).unwrap();
        let rows: Vec<(u64, &[f32])> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v.as_slice()))
            .collect();
        index.insert_batch(&rows).unwrap();
        assert_eq!(index.len(), N);
        Fixture {
            data,
            queries,
            index,
        }
    })
}

fn mean_recall(f: &Fixture, filter: Option<&dyn RowFilter>) -> f64 {
    let total: f64 = f
        .queries
        .iter()
        .map(|q| {
            let got = f.index.search(q, K, None, filter).unwrap();
            if let Some(flt) = filter {
                assert!(
                    got.iter().all(|h| flt.allows(h.row)),
                    "filtered row returned"
                );
            }
            recall(&got, &truth(&f.data, q, K, filter))
        })
        .sum();
    total / f.queries.len() as f64
}

#[test]
fn recall_unfiltered() {
    let r = mean_recall(fixture(), None);
    println!("HNSW recall@10, no filter: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
}

#[test]
fn recall_with_ten_percent_deleted() {
    let f = fixture();
    // Every tenth row is deleted: the filter is "alive", consulted during the walk.
    let mut alive = RowSet::full(N as u64);
    alive.subtract(&(0..N as u64).filter(|r| r % 10 == 3).collect());
    assert_eq!(alive.len(), N - N / 10);
    let r = mean_recall(f, Some(&alive));
    println!("HNSW recall@10, 10% deleted: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
}

#[test]
fn recall_with_filter_keeping_ten_percent() {
    let f = fixture();
    // A pseudo-random 10% that is unrelated to the clusters.
    let keep =
        |row: u64| row.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60 < 2 && !row.is_multiple_of(5);
    let set: RowSet = (0..N as u64).filter(|r| keep(*r)).collect();
    let share = set.len() as f64 / N as f64;
    assert!((0.08..0.13).contains(&share), "kept {share}");
    let r = mean_recall(f, Some(&set));
    println!(
        "HNSW recall@10, filter keeping {:.1}%: {r:.4}",
        share * 100.0
    );
    assert!(r >= 0.95, "recall {r}");
}

/// Writes the fixture's rows as an earlier release's hnsw_rs dump.
fn legacy_dump(f: &Fixture, dir: &std::path::Path) {
    let rows: Vec<(u64, Vec<f32>)> = f
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.clone()))
        .collect();
    write_legacy_dump(dir, Distance::Cosine, HnswParams::default(), &rows).unwrap();
}

#[test]
fn earlier_dumps_convert_with_their_recall() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    legacy_dump(f, dir.path());
    for mmap in [false, true] {
        let loaded = DenseIndex::load(dir.path(), LoadOptions { mmap }).unwrap();
        assert_eq!(loaded.len(), N);
        assert_eq!(loaded.dim(), DIM);
        assert_eq!(loaded.params(), f.index.params());
        let total: f64 = f
            .queries
            .iter()
            .map(|q| {
                recall(
                    &loaded.search(q, K, None, None).unwrap(),
                    &truth(&f.data, q, K, None),
                )
            })
            .sum();
        let r = total / f.queries.len() as f64;
        println!("converted dump recall@10 (mmap={mmap}): {r:.4}");
        assert!(r >= 0.95, "recall {r}");
    }
}

#[test]
fn damaged_dump_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<(u64, Vec<f32>)> = (0..10u64)
        .map(|i| (i, (0..8).map(|j| (i * 8 + j) as f32).collect()))
        .collect();
    assert!(
        write_legacy_dump(dir.path(), Distance::L2, HnswParams::default(), &[]).is_err(),
        "an empty graph is not dumped"
    );
    write_legacy_dump(dir.path(), Distance::L2, HnswParams::default(), &rows).unwrap();
    let loaded = DenseIndex::load(dir.path(), LoadOptions::default()).unwrap();
    assert_eq!(loaded.search(&rows[3].1, 1, None, None).unwrap()[0].row, 3);
    let data = dir.path().join("graph.hnsw.data");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&data, bytes).unwrap();
    let err = DenseIndex::load(dir.path(), LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}
