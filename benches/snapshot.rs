//! Snapshot create and restore time and throughput.
//!
//! `cargo bench --bench snapshot` loads 100,000 documents of 384-dim vectors (sealed
//! into segments with their HNSW graphs, the last 10,000 left in the WAL), then times
//! creating a snapshot (plain tar and zstd) and restoring it into a new collection
//! (unpack, verify every SHA-256, open in staging, swap in). MB/s is archive bytes per
//! second. Files are in the page cache. Without `--bench` (as under
//! `cargo test --all-targets`) it runs a tiny smoke version.

use std::time::Instant;

use quiver_core::{CollectionConfig, Document, Metadata, SyncPolicy};
use quiver_engine::snapshot::{Compression, RestoreLimits, SnapshotScope};
use quiver_engine::{CollectionOptions, Database, DbOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Size {
    docs: usize,
    tail: usize,
    dim: usize,
    batch: usize,
}

fn options() -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows: usize::MAX,
            seal_bytes: usize::MAX,
            background_compaction: false,
            ..CollectionOptions::default()
        },
    }
}

fn load(db: &Database, size: &Size) -> Result<(), String> {
    // Graph quality does not matter here, only its files: a narrow build keeps the
    // load short (m, and so the graph's size on disk, stays the default).
    let mut config = CollectionConfig::new(size.dim);
    config.hnsw.ef_construction = 40;
    let c = db
        .create_collection("bench", config)
        .map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(7);
    let sealed = size.docs - size.tail;
    let mut i = 0;
    while i < size.docs {
        let end = (i + size.batch).min(size.docs);
        let end = if i < sealed { end.min(sealed) } else { end };
        let docs: Vec<Document> = (i..end)
            .map(|n| Document {
                id: format!("doc-{n:08}"),
                text: format!("document number {n} about topic {}", n % 97),
                metadata: Metadata::new(),
                vector: (0..size.dim).map(|_| rng.random_range(-1.0..1.0)).collect(),
            })
            .collect();
        c.upsert(docs).map_err(|e| e.to_string())?;
        i = end;
        if i == sealed {
            c.seal().map_err(|e| e.to_string())?;
        }
    }
    c.sync().map_err(|e| e.to_string())
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs
}

fn run(size: &Size) -> Result<(), String> {
    println!(
        "snapshot: {} docs x {} dims, {} left in the WAL",
        size.docs, size.dim, size.tail
    );
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = Database::open(dir.path(), options()).map_err(|e| e.to_string())?;
    let t = Instant::now();
    load(&db, size)?;
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
        Size {
            docs: 100_000,
            tail: 10_000,
            dim: 384,
            batch: 500,
        }
    } else {
        Size {
            docs: 300,
            tail: 50,
            dim: 8,
            batch: 50,
        }
    };
    if let Err(e) = run(&size) {
        eprintln!("snapshot bench failed: {e}");
        std::process::exit(1);
    }
}
