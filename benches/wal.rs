//! WAL append throughput per sync policy, with 1 and 8 concurrent writers.
//!
//! `cargo bench --bench wal` runs each cell for a few seconds (`QUIVER_BENCH_SECS`,
//! default 3) and prints a table; without `--bench` (as under `cargo test
//! --all-targets`) it runs a tiny smoke version. Records carry a 1024-byte payload
//! (1041 bytes on disk with the frame). The log lives in a temp directory on the
//! default temp filesystem (`TMPDIR`); files are checkpointed away as the run goes so
//! disk use stays bounded, as a running engine would.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use quiver_core::SyncPolicy;
use quiver_storage::wal::{Wal, WalOptions};

const PAYLOAD: usize = 1024;
const FRAME: usize = 17;

struct Cell {
    records: u64,
    secs: f64,
    syncs: u64,
}

/// Runs one cell: `writers` threads append until `limit` says stop.
fn run_cell(sync: SyncPolicy, writers: usize, limit: Limit) -> Result<Cell, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let opts = WalOptions {
        sync,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir.path(), opts, 0).map_err(|e| e.to_string())?;
    let wal = Arc::new(wal);
    let start = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|t| {
            let (wal, start) = (Arc::clone(&wal), Arc::clone(&start));
            thread::spawn(move || -> Result<u64, String> {
                let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i * 7 + t) as u8).collect();
                start.wait();
                let began = Instant::now();
                let mut n = 0u64;
                while !limit.done(n, began) {
                    let lsn = wal.append(1, &payload).map_err(|e| e.to_string())?;
                    n += 1;
                    // Checkpoint now and then so old files are deleted.
                    if t == 0 && n.is_multiple_of(8192) {
                        wal.remove_before(lsn).map_err(|e| e.to_string())?;
                    }
                }
                Ok(n)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut records = 0;
    for h in handles {
        records += h.join().map_err(|_| "writer panicked".to_string())??;
    }
    let secs = began.elapsed().as_secs_f64();
    let syncs = wal.sync_count();
    Ok(Cell {
        records,
        secs,
        syncs,
    })
}

#[derive(Clone, Copy)]
enum Limit {
    Time(Duration),
    Count(u64),
}

impl Limit {
    fn done(self, n: u64, began: Instant) -> bool {
        match self {
            Limit::Time(d) => began.elapsed() >= d,
            Limit::Count(c) => n >= c,
        }
    }
}

fn main() -> Result<(), String> {
    let full = std::env::args().any(|a| a == "--bench");
    let limit = if full {
        let secs = std::env::var("QUIVER_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0);
        Limit::Time(Duration::from_secs_f64(secs))
    } else {
        Limit::Count(20)
    };
    println!(
        "WAL append, payload {PAYLOAD} B ({} B per record on disk), {}",
        PAYLOAD + FRAME,
        if full { "full run" } else { "smoke run" }
    );
    println!(
        "| {:<16} | {:>7} | {:>9} | {:>11} | {:>8} | {:>8} | {:>13} |",
        "policy", "writers", "records", "records/s", "MB/s", "syncs", "records/sync"
    );
    println!(
        "|{:-<18}|{:-<9}|{:-<11}|{:-<13}|{:-<10}|{:-<10}|{:-<15}|",
        "", "", "", "", "", "", ""
    );
    let policies = [
        ("always", SyncPolicy::Always),
        ("interval_ms 10", SyncPolicy::IntervalMs(10)),
        ("never", SyncPolicy::Never),
    ];
    for (name, policy) in policies {
        for writers in [1usize, 8] {
            let cell = run_cell(policy, writers, limit)?;
            let rate = cell.records as f64 / cell.secs;
            let mb = rate * (PAYLOAD + FRAME) as f64 / 1e6;
            let per_sync = if cell.syncs == 0 {
                "-".to_string()
            } else {
                format!("{:.1}", cell.records as f64 / cell.syncs as f64)
            };
            println!(
                "| {:<16} | {:>7} | {:>9} | {:>11.0} | {:>8.1} | {:>8} | {:>13} |",
                name, writers, cell.records, rate, mb, cell.syncs, per_sync
            );
        }
    }
    Ok(())
}
