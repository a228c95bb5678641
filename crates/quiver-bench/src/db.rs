//! `quiver bench db`: the database-level benchmark. A real `quiver serve` on a scratch data
//! directory, loaded and queried over HTTP, against Chroma and LanceDB on the same vectors.
//!
//! The run, in order:
//! 1. Vectors come from the same sources as `bench ann` ([`crate::ann::Source`]); they are
//!    L2-normalized, and the exact top-10 per query is computed here with
//!    [`quiver_index::exact_search`] (the ground truth for every system).
//! 2. The current executable is started as `quiver serve` ([`crate::server`]). A
//!    collection with the given `m` / `ef_construction` gets every vector upserted by
//!    `clients` threads in batches of `batch`, each document carrying
//!    `{"i": n, "group": n % 10}` as metadata. Ingest docs/s is documents over the time from
//!    the first request to the last acknowledgement.
//! 3. The harness then flushes and polls `GET /collections/{name}` until the row count is
//!    complete and the answer (segment and memtable counts, checkpoint) has stopped
//!    changing (sealing and compaction run in the background), so queries see the data as
//!    the server keeps it at rest.
//! 4. Per `ef` of the sweep, `mode: dense, top_k: 10` queries with a per-query `ef`: one
//!    client (p50/p99 latency, recall@10, and the server's `timings_ms.dense` and, where the
//!    server reports it, `timings_ms.dense_index`, averaged), then `query_clients` clients at
//!    once (QPS only).
//! 5. Disk bytes per vector (the collection directory) and the server's resident memory
//!    (`VmRSS` of its process) after the sweep.
//!
//! Peers ([`crate::db_peers`]) run in `scripts/peers/run db`: Chroma and LanceDB, embedded,
//! one client in process, on the same files; their ids are scored here.
//!
//! `results` in the JSON: `{n, dim, queries, ingest: {documents, seconds, docs_per_s,
//! settle_seconds, clients, batch, wal_sync}, segments, memtable_entries, disk_bytes,
//! disk_bytes_per_vector, server_rss_bytes, server_rss_bytes_per_vector, sweep: [{ef,
//! recall_at_10, qps_1c, qps_mc, p50_ms, p99_ms, dense_ms, dense_index_ms}]}`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use quiver_client::Client;
use serde::Serialize;
use serde_json::{json, Value};

use crate::ann::{dir_bytes, ground_truth, load, Source, TARGET_RECALL};
use crate::db_peers;
use crate::machine;
use crate::metrics::{overlap_recall, percentile_ms};
use crate::peers::Peers;
use crate::report::{fmt_num, table, Report};
use crate::server::{create_and_upsert, plain_metadata, settle, spawn, Spawned};
use crate::vectors::Vectors;
use crate::{BenchError, Result};

/// Results per query.
pub const K: usize = 10;
/// The collection every run creates.
const COLLECTION: &str = "bench_db";
/// Longest wait for sealing and compaction to settle after the last upsert.
const SETTLE_LIMIT: Duration = Duration::from_secs(900);

/// What `quiver bench db` was asked to do.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub source: Source,
    /// The `quiver` executable to start as the server.
    pub exe: PathBuf,
    pub m: usize,
    pub ef_construction: usize,
    pub efs: Vec<usize>,
    /// Concurrent upsert clients.
    pub clients: usize,
    /// Documents per upsert request.
    pub batch: usize,
    /// Concurrent clients of the multi-client query runs.
    pub query_clients: usize,
    /// WAL sync policy of the server (`always`, `interval`, `never`).
    pub wal_sync: String,
    pub peers: Option<Peers>,
}

impl DbOptions {
    pub fn new(source: Source, exe: PathBuf) -> Self {
        DbOptions {
            source,
            exe,
            m: 16,
            ef_construction: 200,
            efs: vec![16, 32, 64, 128, 256],
            clients: 4,
            batch: 1_000,
            query_clients: 4,
            wal_sync: "always".into(),
            peers: None,
        }
    }
}

/// One `ef` of Quiver's sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DbPoint {
    pub ef: usize,
    pub recall_at_10: f64,
    /// Queries per second, one client, one query in flight.
    pub qps_1c: f64,
    /// Queries per second with `query_clients` clients.
    pub qps_mc: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Mean server-reported `timings_ms.dense`.
    pub dense_ms: f64,
    /// Mean server-reported `timings_ms.dense_index`, when the server reports it.
    pub dense_index_ms: Option<f64>,
}

/// Best single-client QPS among points at or above [`TARGET_RECALL`], with that point's p99.
pub fn best_at_target(points: &[(f64, f64, f64)]) -> Option<(f64, f64)> {
    points
        .iter()
        .filter(|(recall, _, _)| *recall >= TARGET_RECALL)
        .map(|&(_, qps, p99)| (qps, p99))
        .reduce(|a, b| if b.0 > a.0 { b } else { a })
}

/// Resident memory of process `pid` in bytes (Linux `VmRSS`).
pub fn process_rss(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

fn query_body(q: &[f32], ef: usize) -> Value {
    json!({"vector": q, "mode": "dense", "top_k": K, "ef": ef})
}

/// Row numbers of a query answer's hits (ids are the row numbers as strings).
fn hit_rows(answer: &Value) -> Result<Vec<u64>> {
    answer["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            h["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| BenchError::Server(format!("unexpected hit {h}")))
        })
        .collect()
}

fn sweep_point(
    http: &Client,
    queries: &Vectors,
    truth: &[Vec<u64>],
    ef: usize,
    clients: usize,
) -> Result<DbPoint> {
    let path = format!("/collections/{COLLECTION}/query");
    let mut lat = Vec::with_capacity(queries.len());
    let (mut recall, mut dense, mut dense_index, mut index_seen) = (0.0, 0.0, 0.0, 0usize);
    let start = Instant::now();
    for (i, want) in truth.iter().enumerate() {
        let t = Instant::now();
        let answer = http.call("POST", &path, Some(&query_body(queries.row(i), ef)))?;
        lat.push(t.elapsed());
        recall += overlap_recall(&hit_rows(&answer)?, want);
        let timings = &answer["timings_ms"];
        dense += timings["dense"].as_f64().unwrap_or(0.0);
        if let Some(v) = timings["dense_index"].as_f64() {
            dense_index += v;
            index_seen += 1;
        }
    }
    let single = start.elapsed().as_secs_f64();
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients.max(1))
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= queries.len() {
                        return Ok(());
                    }
                    http.call("POST", &path, Some(&query_body(queries.row(i), ef)))?;
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(BenchError::Server("query thread panicked".into())))
        })
    })?;
    let multi = start.elapsed().as_secs_f64();
    let nq = queries.len() as f64;
    Ok(DbPoint {
        ef,
        recall_at_10: recall / nq,
        qps_1c: nq / single.max(1e-12),
        qps_mc: nq / multi.max(1e-12),
        p50_ms: percentile_ms(&lat, 50.0),
        p99_ms: percentile_ms(&lat, 99.0),
        dense_ms: dense / nq,
        dense_index_ms: (index_seen > 0).then(|| dense_index / index_seen as f64),
    })
}

/// Quiver's side of the run: everything measured against the spawned server.
struct Measured {
    ingest_seconds: f64,
    settle_seconds: f64,
    info: Value,
    disk_bytes: u64,
    rss_bytes: Option<u64>,
    sweep: Vec<DbPoint>,
}

fn measure_quiver(
    opts: &DbOptions,
    base: &Vectors,
    queries: &Vectors,
    truth: &[Vec<u64>],
) -> Result<Measured> {
    // No models are needed: the data directory given to spawn has none to link.
    let server: Spawned = spawn(&opts.exe, Path::new("/nonexistent"), &opts.wal_sync, None)?;
    let http = Client::new(&server.url, None);
    let ingest_seconds = create_and_upsert(
        &http,
        COLLECTION,
        base,
        (opts.m, opts.ef_construction),
        (opts.batch, opts.clients),
        "db",
        &plain_metadata,
    )?
    .seconds;
    eprintln!(
        "db: ingested in {ingest_seconds:.1} s; flushing, then waiting for sealing to settle"
    );
    // Every vector in a sealed segment, as after any bulk load: the sweep measures the
    // segments' flat graphs, not the in-memory segment's.
    let flush_start = Instant::now();
    http.call("POST", &format!("/collections/{COLLECTION}/flush"), None)?;
    let flush_seconds = flush_start.elapsed().as_secs_f64();
    let settled = settle(&http, COLLECTION, base.len(), SETTLE_LIMIT)?;
    if !settled.settled {
        eprintln!(
            "db: the collection did not settle in {SETTLE_LIMIT:?}; measuring as it is: {}",
            settled.last
        );
    }
    let (settle_seconds, info) = (settled.waited + flush_seconds, settled.last);
    eprintln!(
        "db: settled after {settle_seconds:.1} s: {} segments, {} in the memtable",
        info["segments"], info["memtable_entries"]
    );
    // Warm-up: page in the segments the sweep will search.
    let warm = queries.len().min(100);
    for i in 0..warm {
        let body = query_body(queries.row(i), opts.efs.iter().copied().max().unwrap_or(64));
        http.call(
            "POST",
            &format!("/collections/{COLLECTION}/query"),
            Some(&body),
        )?;
    }
    let mut sweep = Vec::with_capacity(opts.efs.len());
    for &ef in &opts.efs {
        let p = sweep_point(&http, queries, truth, ef, opts.query_clients)?;
        eprintln!(
            "db: quiver ef={ef}: recall@10 {:.4}, {:.0} QPS 1 client, {:.0} QPS {} clients",
            p.recall_at_10, p.qps_1c, p.qps_mc, opts.query_clients
        );
        sweep.push(p);
    }
    let rss_bytes = process_rss(server.child.id());
    let disk_bytes = dir_bytes(&server.dir.path().join("collections").join(COLLECTION));
    Ok(Measured {
        ingest_seconds,
        settle_seconds,
        info,
        disk_bytes,
        rss_bytes,
        sweep,
    })
}

/// Runs the benchmark.
pub fn run(opts: &DbOptions) -> Result<Report> {
    if opts.efs.is_empty() {
        return Err(BenchError::InvalidInput(
            "the ef sweep needs at least one value".into(),
        ));
    }
    let (mut base, mut queries, what) = load(&opts.source)?;
    base.normalize();
    queries.normalize();
    let (n, dim) = (base.len(), base.dim);
    eprintln!(
        "db: {what}; {} queries; computing exact top-{K}",
        queries.len()
    );
    let truth = ground_truth(&base, &queries, machine::cores());
    let ours = measure_quiver(opts, &base, &queries, &truth)?;

    let peer_runs = match &opts.peers {
        Some(peers) => Some(db_peers::run(peers, &base, &queries, &truth, opts)?),
        None => None,
    };

    let nf = n as f64;
    let ours_best = best_at_target(
        &ours
            .sweep
            .iter()
            .map(|p| (p.recall_at_10, p.qps_1c, p.p99_ms))
            .collect::<Vec<_>>(),
    );
    let ingest_rate = nf / ours.ingest_seconds.max(1e-9);
    let disk_per_vec = ours.disk_bytes as f64 / nf;
    let mut comparison = Vec::new();
    if let Some((_, runs)) = &peer_runs {
        for r in runs {
            comparison.extend(db_peers::compare(
                r,
                ours_best,
                ingest_rate,
                disk_per_vec,
                ours.rss_bytes,
                n,
            ));
        }
    }

    let rows: Vec<Vec<String>> = ours
        .sweep
        .iter()
        .map(|p| {
            vec![
                p.ef.to_string(),
                format!("{:.4}", p.recall_at_10),
                fmt_num(p.qps_1c),
                fmt_num(p.qps_mc),
                format!("{:.3}", p.p50_ms),
                format!("{:.3}", p.p99_ms),
                format!("{:.3}", p.dense_ms),
                p.dense_index_ms.map_or("n/a".into(), |v| format!("{v:.3}")),
            ]
        })
        .collect();
    let mib = |b: Option<u64>| {
        b.map_or("n/a".into(), |b| {
            format!("{:.0}", b as f64 / (1u64 << 20) as f64)
        })
    };
    let mut md = format!(
        "Vectors: {what}; {n} x {dim}, {} queries, cosine, M={}, ef_construction={}, top_k {K}\n\
         Quiver over HTTP (`quiver serve`, WAL sync {}): ingest {} docs/s ({} clients, batches of {}, {:.1} s; \
         then {:.1} s until sealing settled: {} segments, {} rows in the memtable); \
         disk {disk_per_vec:.0} bytes/vector; server RSS {} MiB after the sweep\n\
         QPS at recall@10 >= {TARGET_RECALL}, 1 client: {}\n\n",
        queries.len(),
        opts.m,
        opts.ef_construction,
        opts.wal_sync,
        fmt_num(ingest_rate),
        opts.clients,
        opts.batch,
        ours.ingest_seconds,
        ours.settle_seconds,
        ours.info["segments"],
        ours.info["memtable_entries"],
        mib(ours.rss_bytes),
        ours_best.map_or("not reached".into(), |(q, p99)| format!("{} (p99 {p99:.3} ms)", fmt_num(q))),
    );
    md.push_str(&table(
        &[
            "ef",
            "recall@10",
            "QPS 1 client",
            &format!("QPS {} clients", opts.query_clients),
            "p50 ms",
            "p99 ms",
            "server dense ms",
            "server dense_index ms",
        ],
        &rows,
    ));
    if let Some((_, runs)) = &peer_runs {
        md.push_str(&db_peers::markdown(runs, n));
    }
    let results = json!({
        "n": n, "dim": dim, "queries": queries.len(),
        "ingest": {"documents": n, "seconds": ours.ingest_seconds, "docs_per_s": ingest_rate,
            "settle_seconds": ours.settle_seconds, "clients": opts.clients, "batch": opts.batch,
            "wal_sync": opts.wal_sync},
        "segments": ours.info["segments"], "memtable_entries": ours.info["memtable_entries"],
        "disk_bytes": ours.disk_bytes, "disk_bytes_per_vector": disk_per_vec,
        "server_rss_bytes": ours.rss_bytes,
        "server_rss_bytes_per_vector": ours.rss_bytes.map(|b| b as f64 / nf),
        "qps_1c_at_target": ours_best.map(|b| b.0), "p99_ms_at_target": ours_best.map(|b| b.1),
        "sweep": ours.sweep,
    });
    let parameters = json!({
        "source": what, "m": opts.m, "ef_construction": opts.ef_construction, "efs": opts.efs,
        "k": K, "clients": opts.clients, "batch": opts.batch, "query_clients": opts.query_clients,
        "wal_sync": opts.wal_sync, "distance": "cosine", "target_recall": TARGET_RECALL,
    });
    Ok(Report::new(
        "db",
        parameters,
        results,
        peer_runs.map(|(v, _)| v),
        &comparison,
        md,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hit_rows_read_numeric_ids_and_refuse_others() {
        let ok = json!({"hits": [{"id": "7"}, {"id": "42"}]});
        assert_eq!(hit_rows(&ok).unwrap(), vec![7, 42]);
        assert!(hit_rows(&json!({"hits": [{"id": "x"}]})).is_err());
        assert!(hit_rows(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn best_at_target_takes_the_fastest_point_above_the_recall() {
        let pts = [(0.9, 900.0, 1.0), (0.96, 500.0, 2.0), (0.99, 300.0, 3.0)];
        assert_eq!(best_at_target(&pts), Some((500.0, 2.0)));
        assert_eq!(best_at_target(&pts[..1]), None);
    }

    #[test]
    fn own_rss_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_rss(std::process::id()).unwrap() > 0);
        }
    }
}
