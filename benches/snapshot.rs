//! Snapshot create and restore time and throughput.
//!
//! `cargo bench --bench snapshot` loads 100,000 documents of 384-dim vectors (sealed
//! into segments with their HNSW graphs, the last 10,000 left in the WAL), then times
//! creating a snapshot (plain tar and zstd) and restoring it into a new collection
//! (unpack, verify every SHA-256, open in staging, swap in). MB/s is archive bytes per
//! second. Files are in the page cache. Without `--bench` (as under
//! `cargo test --all-targets`) it runs a tiny smoke version.

use std::time::Instant;

use quiver_core::CollectionConfig;
use quiver_engine::snapshot::{Compression, RestoreLimits, SnapshotScope};
use quiver_engine::Database;

mod common;

use common::{load, options, Load};

fn fill(db: &Database, size: &Load) -> Result<(), String> {
    // Graph quality does not matter here, only its files: a narrow build keeps the
    // load short (m, and so the graph's size on disk, stays the default).
    let mut config = CollectionConfig::new(size.dim);
    config.hnsw.ef_construction = 40;
    let c = db
        .create_collection("bench", config)
        .map_err(|e| e.to_string())?;
    load(&c, size)
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs
}

fn run(size: &Load) -> Result<(), String> {
    println!(
        "snapshot: {} docs x {} dims, {} left in the WAL",
        size.docs, size.dim, size.tail
    );
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = Database::open(dir.path(), options(usize::MAX)).map_err(|e| e.to_string())?;
    let t = Instant::now();
    fill(&db, size)?;
    println!("load: {:.1} s", t.elapsed().as_secs_f64());
    let scope = SnapshotScope::Collection("bench".into());
    for (i, comp) in [Compression::None, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let name = format!("s{i}");
        let t = Instant::now();
        let snap = db
            .create_snapshot(&scope, Some(&name), comp)
            .map_err(|e| e.to_string())?;
        let create = t.elapsed().as_secs_f64();
        let target = format!("restored{i}");
        let t = Instant::now();
        let out = db
            .restore_snapshot(&scope, &name, Some(&target), &RestoreLimits::default())
            .map_err(|e| e.to_string())?;
        let restore = t.elapsed().as_secs_f64();
        if out[0].documents != size.docs {
            return Err(format!(
                "restored {} docs, wrote {}",
                out[0].documents, size.docs
            ));
        }
        println!(
            "{comp:?}: archive {:.1} MiB | create {:.2} s ({:.0} MB/s) | restore {:.2} s ({:.0} MB/s)",
            snap.size as f64 / (1 << 20) as f64,
            create,
            mb_s(snap.size, create),
            restore,
            mb_s(snap.size, restore)
        );
    }
    Ok(())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let size = if full {
        Load {
            docs: 100_000,
            tail: 10_000,
            dim: 384,
            batch: 500,
            seal: true,
        }
    } else {
        Load {
            docs: 300,
            tail: 50,
            dim: 8,
            batch: 50,
            seal: true,
        }
    };
    if let Err(e) = run(&size) {
        eprintln!("snapshot bench failed: {e}");
        std::process::exit(1);
    }
}
