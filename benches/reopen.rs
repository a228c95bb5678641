//! Time to reopen a collection: sealed segments are memory-mapped and checksummed,
//! only the WAL tail past the checkpoint is replayed.
//!
//! `cargo bench --bench reopen` builds 100,000 documents of 384-dim vectors (90,000
//! sealed into segments, 10,000 left in the WAL), then reopens the database several
//! times and prints each reopen's time, the rows mapped and the rows replayed. As a
//! peer in the same run it also reopens the same 100,000 documents held entirely in
//! the WAL, so the ratio shows what sealing saves. Files are in the page cache (warm
//! reopen). Without `--bench` (as under `cargo test --all-targets`) it runs a tiny
//! smoke version.

use std::path::Path;
use std::time::Instant;

use quiver_core::CollectionConfig;
use quiver_engine::Database;

mod common;

use common::{load, options, Load};

struct Size {
    docs: usize,
    tail: usize,
    dim: usize,
    batch: usize,
    reopens: usize,
}

/// Loads `size.docs` documents; the last `size.tail` stay in the WAL when
/// `seal_rows` is below the sealed count, all of them when it is above.
fn fill(dir: &Path, size: &Size, seal_rows: usize) -> Result<(), String> {
    let db = Database::open(dir, options(seal_rows)).map_err(|e| e.to_string())?;
    let c = db
        .create_collection("bench", CollectionConfig::new(size.dim))
        .map_err(|e| e.to_string())?;
    let plan = Load {
        docs: size.docs,
        tail: size.tail,
        dim: size.dim,
        batch: size.batch,
        seal: seal_rows <= size.docs - size.tail,
    };
    load(&c, &plan)
}

fn reopen(dir: &Path, size: &Size, seal_rows: usize, label: &str) -> Result<f64, String> {
    let mut best = f64::MAX;
    for round in 0..size.reopens {
        let t = Instant::now();
        let db = Database::open(dir, options(seal_rows)).map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        let c = db.collection("bench").map_err(|e| e.to_string())?;
        let s = c.stats();
        if c.count() != size.docs {
            return Err(format!(
                "{label}: reopened {} docs, wrote {}",
                c.count(),
                size.docs
            ));
        }
        let q: Vec<f32> = (0..size.dim).map(|i| (i as f32).sin()).collect();
        let t = Instant::now();
        let hits = c.search_exact(&q, 10).map_err(|e| e.to_string())?;
        let search = t.elapsed().as_secs_f64();
        println!(
            "{label:<14} reopen {round}: {:>8.1} ms | segments {:>2}, rows mapped {:>7}, WAL records replayed {:>4}, rows replayed {:>7} | first exact search {:>6.1} ms ({} hits)",
            secs * 1e3,
            s.segments,
            s.mapped_rows,
            s.replayed_records,
            s.replayed_rows,
            search * 1e3,
            hits.len()
        );
        best = best.min(secs);
    }
    Ok(best)
}

fn run(size: &Size) -> Result<(), String> {
    println!(
        "reopen: {} docs x {} dims, {} left in the WAL, batches of {}",
        size.docs, size.dim, size.tail, size.batch
    );
    let sealed_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let seal_rows = (size.docs - size.tail).div_ceil(3);
    let t = Instant::now();
    fill(sealed_dir.path(), size, seal_rows)?;
    println!("load (sealed + tail): {:.1} s", t.elapsed().as_secs_f64());
    let sealed = reopen(sealed_dir.path(), size, seal_rows, "sealed+tail")?;
    drop(sealed_dir);

    let wal_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let never = usize::MAX;
    fill(wal_dir.path(), size, never)?;
    let wal_only = reopen(wal_dir.path(), size, never, "all-in-WAL")?;
    println!(
        "best reopen: sealed+tail {:.1} ms, all-in-WAL {:.1} ms (ratio {:.1}x)",
        sealed * 1e3,
        wal_only * 1e3,
        wal_only / sealed
    );
    Ok(())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let size = if full {
        Size {
            docs: 100_000,
            tail: 10_000,
            dim: 384,
            batch: 500,
            reopens: 3,
        }
    } else {
        Size {
            docs: 600,
            tail: 100,
            dim: 8,
            batch: 50,
            reopens: 1,
        }
    };
    if let Err(e) = run(&size) {
        eprintln!("reopen bench failed: {e}");
        std::process::exit(1);
    }
}
