//! The peers of `quiver bench ingest`, run by `scripts/peers/run ingest` on the very
//! vectors Quiver was given (written as `base.npy`), each in a Python process of its own:
//!
//! - hnswlib: its graph build over every vector (cosine, the same M and ef_construction,
//!   as many threads as this machine has cores, the cores the server uses). No database
//!   can ingest into an HNSW graph faster than the graph builds, so this is the ceiling.
//! - Chroma, embedded: every vector added in batches of the same size, its HNSW graph built
//!   as it goes (`bench db`'s inserts, without the queries).
//! - LanceDB, embedded: the same inserts, then its IVF_HNSW_SQ index build, both counted.
//!
//! `peers` in the JSON: `{versions, <name>: {index, ingest_seconds, index_seconds, docs_per_s,
//! rss_bytes, disk_bytes}}` for `hnswlib`, `chroma` and `lancedb`.

use std::path::Path;

use serde_json::{json, Value};

use crate::peers::Peers;
use crate::report::{fmt_num, table, Comparison};
use crate::vectors::Vectors;
use crate::{BenchError, Result};

/// The peers, in report order.
pub const NAMES: [&str; 3] = ["hnswlib", "chroma", "lancedb"];

/// What one peer took to take in every vector.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestPeer {
    pub name: String,
    /// What it built, in its own words.
    pub index: String,
    /// The inserts (for hnswlib and Chroma, the graph is built as they go).
    pub ingest_seconds: f64,
    /// An index build after the inserts (LanceDB); 0 otherwise.
    pub index_seconds: f64,
}

impl IngestPeer {
    /// Vectors per second, inserts plus any index build after them.
    pub fn docs_per_s(&self, n: usize) -> f64 {
        n as f64 / (self.ingest_seconds + self.index_seconds).max(1e-9)
    }
}

/// The entry of peer `name` in a peer answer.
pub(crate) fn entry<'a>(answer: &'a Value, name: &str) -> Result<&'a Value> {
    answer
        .get(name)
        .ok_or_else(|| BenchError::Peer(format!("no {name} in the peer answer")))
}

/// Reads every peer of `answer`.
pub fn read(answer: &Value) -> Result<Vec<IngestPeer>> {
    NAMES
        .iter()
        .map(|name| {
            let sys = entry(answer, name)?;
            let f = |k: &str| sys[k].as_f64().unwrap_or(0.0);
            Ok(IngestPeer {
                name: name.to_string(),
                index: sys["index"].as_str().unwrap_or("?").to_string(),
                ingest_seconds: f("ingest_seconds"),
                index_seconds: f("index_seconds"),
            })
        })
        .collect()
}

/// Runs the peers on `base` with `threads` threads for hnswlib and batches of `batch`;
/// returns their JSON (with `docs_per_s` added) and their figures.
pub fn run(
    peers: &Peers,
    base: &Vectors,
    m: usize,
    ef_construction: usize,
    batch: usize,
    threads: usize,
) -> Result<(Value, Vec<IngestPeer>)> {
    let work = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
    base.write_npy(&work.path().join("base.npy"))?;
    let args = [
        ("--m", m),
        ("--ef-construction", ef_construction),
        ("--batch", batch),
        ("--threads", threads),
    ]
    .iter()
    .flat_map(|(k, v)| [k.to_string(), v.to_string()])
    .collect::<Vec<_>>();
    let mut answer = peers.run("ingest", work.path(), &args)?;
    let runs = read(&answer)?;
    for r in &runs {
        answer[&r.name]["docs_per_s"] = json!(r.docs_per_s(base.len()));
    }
    Ok((answer, runs))
}

/// Quiver's sustained docs/s under each WAL policy against each peer's rate.
pub fn compare(ours: &[(String, f64)], peers: &[IngestPeer], n: usize) -> Vec<Comparison> {
    let mut rows = Vec::new();
    for (policy, rate) in ours {
        for p in peers {
            let what = if p.name == "hnswlib" {
                "hnswlib build rate"
            } else {
                &p.name
            };
            rows.push(Comparison::new(
                format!("ingest docs/s, WAL {policy}, vs {what}"),
                *rate,
                Some(p.docs_per_s(n)),
            ));
        }
    }
    rows
}

/// The peers' figures as Markdown, with how they were measured.
pub fn markdown(peers: &[IngestPeer], n: usize) -> String {
    let mut md = String::from(
        "\nPeers on the same vectors, each in a Python process of its own: hnswlib's graph \
         build (the ceiling for an HNSW database), Chroma and LanceDB embedded, one client \
         in process, no HTTP or JSON, index builds counted.\n\n",
    );
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.index.clone(),
                format!("{:.1}", p.ingest_seconds),
                format!("{:.1}", p.index_seconds),
                fmt_num(p.docs_per_s(n)),
            ]
        })
        .collect();
    md.push_str(&table(
        &["peer", "index", "insert s", "index build s", "vectors/s"],
        &rows,
    ));
    md
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({
            "versions": {"hnswlib": "0.8.0"},
            "hnswlib": {"index": "hnswlib", "ingest_seconds": 2.0, "index_seconds": 0.0},
            "chroma": {"index": "Chroma HNSW", "ingest_seconds": 4.0, "index_seconds": 0.0},
            "lancedb": {"index": "IVF_HNSW_SQ", "ingest_seconds": 1.0, "index_seconds": 4.0},
        })
    }

    #[test]
    fn peers_are_read_in_report_order() {
        let runs = read(&answer()).unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, NAMES);
        assert_eq!(runs[2].docs_per_s(1_000), 200.0);
        let mut partial = answer();
        partial.as_object_mut().unwrap().remove("lancedb");
        assert!(read(&partial).is_err());
    }

    #[test]
    fn comparisons_cover_every_policy_and_peer() {
        let runs = read(&answer()).unwrap();
        let ours = [
            ("always".to_string(), 400.0),
            ("interval".to_string(), 600.0),
        ];
        let rows = compare(&ours, &runs, 1_000);
        assert_eq!(rows.len(), 6);
        assert_eq!(
            rows[0].metric,
            "ingest docs/s, WAL always, vs hnswlib build rate"
        );
        assert_eq!(rows[0].ratio(), Some(0.8));
        assert_eq!(rows[4].metric, "ingest docs/s, WAL interval, vs chroma");
        assert_eq!(rows[4].ratio(), Some(2.4));
        let md = markdown(&runs, 1_000);
        assert!(
            md.contains("| lancedb | IVF_HNSW_SQ | 1.0 | 4.0 | 200 |"),
            "{md}"
        );
    }
}
