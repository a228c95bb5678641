//! The peers of `quiver bench db`: Chroma and LanceDB, embedded, run by
//! `scripts/peers/run db` on the very vectors Quiver was given.
//!
//! The harness writes `base.npy` and `queries.npy` (L2-normalized) into a work directory;
//! the script loads each database with the same metadata per document, sweeps its `ef`, and
//! answers with its timings and the top-10 ids per query, which are scored here against
//! the same exact ground truth as Quiver's. Each peer runs as its users run it: one Python
//! client in the database's own process; the Python overhead is part of the figures and is
//! not subtracted.
//!
//! `peers` in the JSON: `{versions, <name>: {index, ingest_seconds, index_seconds,
//! docs_per_s, disk_bytes, disk_bytes_per_vector, rss_bytes, sweep: [{ef, recall_at_10,
//! qps_1c, p50_ms, p99_ms}]}}` for `chroma` and `lancedb`.

use serde::Serialize;
use serde_json::Value;

use crate::ann::TARGET_RECALL;
use crate::db::{best_at_target, DbOptions, K};
use crate::metrics::mean_recall;
use crate::peers::{HnswSweep, Peers};
use crate::report::{fmt_num, table, Comparison};
use crate::vectors::Vectors;
use crate::{BenchError, Result};

/// The peers, in report order.
pub const NAMES: [&str; 2] = ["chroma", "lancedb"];

/// One `ef` of a peer's sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PeerPoint {
    pub ef: usize,
    pub recall_at_10: f64,
    pub qps_1c: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One peer's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRun {
    pub name: String,
    /// Which index the peer built, in its own words.
    pub index: String,
    /// Inserting every document (and, for Chroma, building its graph as it goes).
    pub ingest_seconds: f64,
    /// Building the index after the inserts (LanceDB); 0 when built during ingest.
    pub index_seconds: f64,
    pub disk_bytes_per_vector: f64,
    /// Resident memory the database added to the Python process.
    pub rss_bytes: Option<u64>,
    pub sweep: Vec<PeerPoint>,
}

impl PeerRun {
    /// Documents per second, inserts plus any index build after them.
    pub fn docs_per_s(&self, n: usize) -> f64 {
        n as f64 / (self.ingest_seconds + self.index_seconds).max(1e-9)
    }
}

fn ids(point: &Value) -> Vec<Vec<u64>> {
    point["ids"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|r| r.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads one peer's answer, scores its ids against `truth`, and replaces the bulky ids in
/// `answer` by the recall computed from them.
fn read_peer(name: &str, answer: &mut Value, truth: &[Vec<u64>], n: usize) -> Result<PeerRun> {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let sys = answer
        .get_mut(name)
        .ok_or_else(|| BenchError::Peer(format!("no {name} in the peer answer")))?;
    let mut sweep = Vec::new();
    for p in sys
        .get_mut("sweep")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let got = ids(p);
        if got.len() != truth.len() {
            return Err(BenchError::Peer(format!(
                "{name} answered {} queries, expected {}",
                got.len(),
                truth.len()
            )));
        }
        let recall = mean_recall(&got, truth);
        let point = PeerPoint {
            ef: p["ef"].as_u64().unwrap_or(0) as usize,
            recall_at_10: recall,
            qps_1c: f(&*p, "qps_1c"),
            p50_ms: f(&*p, "p50_ms"),
            p99_ms: f(&*p, "p99_ms"),
        };
        *p = serde_json::to_value(point)?;
        sweep.push(point);
    }
    let sys = &*sys;
    let disk = f(sys, "disk_bytes");
    Ok(PeerRun {
        name: name.to_string(),
        index: sys["index"].as_str().unwrap_or("?").to_string(),
        ingest_seconds: f(sys, "ingest_seconds"),
        index_seconds: f(sys, "index_seconds"),
        disk_bytes_per_vector: disk / n.max(1) as f64,
        rss_bytes: sys["rss_bytes"].as_u64(),
        sweep,
    })
}

/// Runs both peers on `base` / `queries`; returns their JSON (ids replaced by recall) and
/// their figures.
pub fn run(
    peers: &Peers,
    base: &Vectors,
    queries: &Vectors,
    truth: &[Vec<u64>],
    opts: &DbOptions,
) -> Result<(Value, Vec<PeerRun>)> {
    let sweep = HnswSweep {
        m: opts.m,
        ef_construction: opts.ef_construction,
        efs: &opts.efs,
        k: K,
    };
    let extra = ["--batch".to_string(), opts.batch.to_string()];
    let mut answer = peers.run_vectors("db", base, queries, sweep, &extra)?;
    let runs = NAMES
        .iter()
        .map(|name| read_peer(name, &mut answer, truth, base.len()))
        .collect::<Result<Vec<_>>>()?;
    if let Some(obj) = answer.as_object_mut() {
        for r in &runs {
            if let Some(sys) = obj.get_mut(&r.name) {
                sys["docs_per_s"] = serde_json::json!(r.docs_per_s(base.len()));
                sys["disk_bytes_per_vector"] = serde_json::json!(r.disk_bytes_per_vector);
            }
        }
    }
    Ok((answer, runs))
}

/// Quiver against one peer: QPS and p99 at the target recall, ingest, disk and memory.
pub fn compare(
    peer: &PeerRun,
    ours_best: Option<(f64, f64)>,
    ours_ingest: f64,
    ours_disk: f64,
    ours_rss: Option<u64>,
    n: usize,
) -> Vec<Comparison> {
    let name = &peer.name;
    let points: Vec<(f64, f64, f64)> = peer
        .sweep
        .iter()
        .map(|p| (p.recall_at_10, p.qps_1c, p.p99_ms))
        .collect();
    let theirs = best_at_target(&points);
    let mut rows = vec![
        Comparison::new(
            format!("1-client QPS at recall@10 >= {TARGET_RECALL} vs {name}"),
            ours_best.map_or(0.0, |b| b.0),
            theirs.map(|b| b.0),
        ),
        Comparison::new(
            format!("p99 ms at that point vs {name}"),
            ours_best.map_or(0.0, |b| b.1),
            theirs.map(|b| b.1),
        ),
        Comparison::new(
            format!("ingest docs/s vs {name}"),
            ours_ingest,
            Some(peer.docs_per_s(n)),
        ),
        Comparison::new(
            format!("disk bytes/vector vs {name}"),
            ours_disk,
            Some(peer.disk_bytes_per_vector),
        ),
    ];
    if let (Some(o), Some(t)) = (ours_rss, peer.rss_bytes) {
        rows.push(Comparison::new(
            format!("RSS MiB vs {name}"),
            o as f64 / (1u64 << 20) as f64,
            Some(t as f64 / (1u64 << 20) as f64),
        ));
    }
    rows
}

/// The peers' sweeps as Markdown, with the note on how they were measured.
pub fn markdown(runs: &[PeerRun], n: usize) -> String {
    let mut md = String::from(
        "\nPeers: embedded, one Python client in the database's own process, same vectors, \
         metadata and queries. Their Python overhead is part of what their users get and is \
         not subtracted; Quiver's figures include HTTP and JSON. Peer RSS is what the \
         database added to the Python process after the vectors were loaded.\n",
    );
    for r in runs {
        let mib = r.rss_bytes.map_or("n/a".into(), |b| {
            format!("{:.0}", b as f64 / (1u64 << 20) as f64)
        });
        md.push_str(&format!(
            "\n{} ({}): ingest {} docs/s ({:.1} s inserts + {:.1} s index build), disk {:.0} bytes/vector, RSS +{mib} MiB\n\n",
            r.name,
            r.index,
            fmt_num(r.docs_per_s(n)),
            r.ingest_seconds,
            r.index_seconds,
            r.disk_bytes_per_vector,
        ));
        let rows: Vec<Vec<String>> = r
            .sweep
            .iter()
            .map(|p| {
                vec![
                    p.ef.to_string(),
                    format!("{:.4}", p.recall_at_10),
                    fmt_num(p.qps_1c),
                    format!("{:.3}", p.p50_ms),
                    format!("{:.3}", p.p99_ms),
                ]
            })
            .collect();
        md.push_str(&table(
            &["ef", "recall@10", "QPS 1 client", "p50 ms", "p99 ms"],
            &rows,
        ));
    }
    md
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn peer_answers_are_scored_against_the_truth() {
        let truth = vec![vec![1, 2], vec![3, 4]];
        let mut answer = json!({"chroma": {
            "index": "hnsw", "ingest_seconds": 2.0, "index_seconds": 0.0, "disk_bytes": 400.0,
            "rss_bytes": 1048576,
            "sweep": [{"ef": 16, "qps_1c": 100.0, "p50_ms": 1.0, "p99_ms": 2.0,
                       "ids": [[1, 9], [3, 4]]}]}});
        let r = read_peer("chroma", &mut answer, &truth, 4).unwrap();
        assert_eq!(r.sweep[0].recall_at_10, 0.75);
        assert_eq!(r.disk_bytes_per_vector, 100.0);
        assert_eq!(r.docs_per_s(4), 2.0);
        assert!(answer["chroma"]["sweep"][0].get("ids").is_none());
        assert_eq!(answer["chroma"]["sweep"][0]["recall_at_10"], 0.75);
        assert!(read_peer("lancedb", &mut answer, &truth, 4).is_err());
        let mut short = json!({"chroma": {"sweep": [{"ef": 1, "ids": [[1]]}]}});
        assert!(read_peer("chroma", &mut short, &truth, 4).is_err());
    }

    #[test]
    fn comparison_rows_name_the_peer() {
        let r = PeerRun {
            name: "lancedb".into(),
            index: "IVF_HNSW_SQ".into(),
            ingest_seconds: 1.0,
            index_seconds: 1.0,
            disk_bytes_per_vector: 300.0,
            rss_bytes: None,
            sweep: vec![PeerPoint {
                ef: 64,
                recall_at_10: 0.97,
                qps_1c: 200.0,
                p50_ms: 4.0,
                p99_ms: 9.0,
            }],
        };
        let rows = compare(&r, Some((400.0, 3.0)), 50.0, 600.0, Some(1 << 20), 100);
        assert_eq!(rows.len(), 4, "no RSS row without the peer's RSS");
        assert_eq!(rows[0].ratio(), Some(2.0));
        assert_eq!(rows[2].peer, Some(50.0));
        assert!(rows.iter().all(|c| c.metric.ends_with("vs lancedb")));
        assert!(markdown(&[r], 100).contains("| 64 | 0.9700 | 200 | 4.000 | 9.000 |"));
    }
}
