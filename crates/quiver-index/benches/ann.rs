//! ANN benchmark: HNSW build time, memory and single-threaded QPS / recall@10 per `ef`.
//!
//! `cargo bench -p quiver-index --bench ann` runs the full sets (20,000 clustered
//! 384-dim vectors, then 100,000); without `--bench` (as under `cargo test`) it runs a
//! tiny smoke set and exits.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{clustered, recall, truth};
use quiver_core::Distance;
use quiver_index::{DenseIndex, HnswParams};

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn run(name: &str, n: usize, dim: usize, clusters: usize, queries: usize, efs: &[usize]) {
    let (data, qs) = clustered(7, n, queries, dim, clusters, 0.6, |_| 1.0);
    let truths: Vec<_> = qs.iter().map(|q| truth(&data, q, 10, None)).collect();
    let rows: Vec<(u64, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    let before = rss_bytes();
    let start = Instant::now();
    let index = DenseIndex::new(dim, Distance::Cosine, HnswParams::default()).expect("index");
    index.insert_batch(&rows).expect("insert");
    let build = start.elapsed();
    let grown = match (before, rss_bytes()) {
        (Some(b), Some(a)) => format!("{:.1} MiB", a.saturating_sub(b) as f64 / (1 << 20) as f64),
        _ => "n/a".to_string(),
    };
    let raw = (n * dim * 4) as f64 / (1 << 20) as f64;
    println!(
        "{name}: n={n} dim={dim} M=16 ef_construction=200, build {:.1} s on {} threads, RSS +{grown} (raw vectors {raw:.1} MiB)",
        build.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |p| p.get()),
    );
    println!("| ef | QPS (1 thread) | recall@10 |");
    println!("|----|----------------|-----------|");
    for &ef in efs {
        let start = Instant::now();
        let mut total = 0.0;
        for (q, want) in qs.iter().zip(&truths) {
            let got = index.search(q, 10, Some(ef), None).expect("search");
            total += recall(&got, want);
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| {ef} | {:.0} | {:.4} |",
            qs.len() as f64 / secs,
            total / qs.len() as f64
        );
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let efs = [16, 32, 64, 128, 256];
    if !full {
        run("smoke", 2_000, 64, 20, 20, &efs);
        return;
    }
    run("clustered-20k", 20_000, 384, 100, 1_000, &efs);
    run("clustered-100k", 100_000, 384, 500, 1_000, &efs);
}
