//! Measures the engine's dense query path against the index searches inside it.
//!
//! Builds a collection of clustered random vectors in several sealed segments (plus a
//! few memtable rows), runs dense queries and prints the summed `dense` and
//! `dense_index` timings, their ratio, and per-query percentiles. The acceptance for
//! the query path is `dense <= 1.2 x dense_index`: everything outside the graph searches
//! (merging, ids, locks) must stay small.
//!
//! ```text
//! cargo run --release -p quiver-engine --example dense_path -- \
//!     [docs 40000] [dim 64] [segments 8] [queries 3000] [top_k 10] [ef 64]
//! ```

use std::time::{Duration, Instant};

use quiver_core::{CollectionConfig, Document, HnswConfig, Metadata, SyncPolicy};
use quiver_engine::{CollectionOptions, Database, DbOptions, Query};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn point(rng: &mut StdRng, centre: &[f32]) -> Vec<f32> {
    centre
        .iter()
        .map(|c| c + rng.random_range(-0.4f32..0.4))
        .collect()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (docs, dim, segments) = (arg(1, 40_000), arg(2, 64), arg(3, 8).max(1));
    let (queries, top_k, ef) = (arg(4, 3_000), arg(5, 10), arg(6, 64));
    let dir = tempfile::tempdir()?;
    let per_segment = docs.div_ceil(segments);
    let opts = DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows: per_segment,
            background_compaction: false,
            ..CollectionOptions::default()
        },
    };
    let db = Database::open(dir.path(), opts)?;
    let config = CollectionConfig {
        hnsw: HnswConfig {
            m: 16,
            ef_construction: 100,
            ef_search: ef,
        },
        ..CollectionConfig::new(dim)
    };
    let c = db.create_collection("bench", config)?;
    let mut rng = StdRng::seed_from_u64(42);
    let centres: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let t = Instant::now();
    let ids: Vec<usize> = (0..docs).collect();
    for chunk in ids.chunks(1_000) {
        let batch = chunk
            .iter()
            .map(|&i| Document {
                chunks: Vec::new(),
                id: format!("doc-{i}"),
                text: String::new(),
                metadata: Metadata::new(),
                vector: point(&mut rng, &centres[i % centres.len()]),
            })
            .collect();
        c.upsert(batch)?;
    }
    // Leave a few rows in the memtable, as a live collection has.
    c.upsert(
        (0..50)
            .map(|i| Document {
                chunks: Vec::new(),
                id: format!("late-{i}"),
                text: String::new(),
                metadata: Metadata::new(),
                vector: point(&mut rng, &centres[i % centres.len()]),
            })
            .collect(),
    )?;
    let stats = c.stats();
    println!(
        "built {} docs, dim {dim}: {} sealed segments, {} memtable rows, {:.1} s",
        docs + 50,
        stats.segments,
        stats.memtable_entries,
        t.elapsed().as_secs_f64()
    );

    let qs: Vec<Vec<f32>> = (0..queries)
        .map(|i| point(&mut rng, &centres[i % centres.len()]))
        .collect();
    // Warm the mapped files and caches once.
    for q in qs.iter().take(100) {
        c.query(&Query::dense(q.clone(), top_k))?;
    }
    let (mut dense, mut index) = (Vec::new(), Vec::new());
    let t = Instant::now();
    for q in &qs {
        let r = c.query(&Query::dense(q.clone(), top_k))?;
        dense.push(r.timings.dense);
        index.push(r.timings.dense_index);
    }
    let wall = t.elapsed();
    let sum = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64() * 1e3;
    let (d, x) = (sum(&dense), sum(&index));
    dense.sort();
    index.sort();
    println!(
        "{queries} queries, top_k {top_k}, ef {ef}: {:.0} queries/s single thread",
        queries as f64 / wall.as_secs_f64()
    );
    println!(
        "dense       total {d:9.1} ms  p50 {:.3} ms  p99 {:.3} ms",
        pct(&dense, 50.0),
        pct(&dense, 99.0)
    );
    println!(
        "dense_index total {x:9.1} ms  p50 {:.3} ms  p99 {:.3} ms",
        pct(&index, 50.0),
        pct(&index, 99.0)
    );
    println!(
        "dense / dense_index = {:.3} (acceptance: <= 1.2)",
        d / x.max(1e-9)
    );
    Ok(())
}
