//! The peers of `quiver bench filter`: Chroma and LanceDB, run by
//! `scripts/peers/run filter` on the very vectors, metadata and filters Quiver was given.
//!
//! The harness writes `base.npy`, `queries.npy`, `meta.json` (one array per field) and
//! `filters.json` (each filter as a Chroma `where` and a LanceDB SQL clause) into a work
//! directory; the script loads each database, runs every filter's queries at the same
//! `ef`, and answers `{versions, <peer>: {index, ingest_seconds, index_seconds,
//! filters: [{name, p50_ms, p99_ms, ids}]}}`. The ids are scored here against the same
//! ground truth as Quiver's and replaced by the recall.

use std::path::Path;

use serde_json::{json, Value};

use super::data::{FilterCase, Meta};
use super::{FilterOptions, PeerPoints, Point, Truth, EF, K};
use crate::metrics::mean_recall;
use crate::peers::Peers;
use crate::vectors::Vectors;
use crate::{BenchError, Result};

/// The peers, in report order.
const NAMES: [&str; 2] = ["chroma", "lancedb"];

fn write_json(path: &Path, v: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_vec(v)?).map_err(|e| BenchError::io(path, e))
}

/// One peer's points, parallel to `truths`; the ids in `sys` become recalls.
fn read_points(name: &str, sys: &mut Value, truths: &[Truth]) -> Result<Vec<Point>> {
    let answers = sys["filters"]
        .as_array_mut()
        .ok_or_else(|| BenchError::Peer(format!("{name}: no filters in its answer")))?;
    if answers.len() != truths.len() {
        return Err(BenchError::Peer(format!(
            "{name} answered {} filters, expected {}",
            answers.len(),
            truths.len()
        )));
    }
    let mut points = Vec::new();
    for (a, (case, allowed, truth)) in answers.iter_mut().zip(truths) {
        let ids: Vec<Vec<u64>> = a["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect()
            })
            .collect();
        if ids.len() != truth.len() {
            return Err(BenchError::Peer(format!(
                "{name}, filter {}: {} answers for {} queries",
                case.name,
                ids.len(),
                truth.len()
            )));
        }
        let recall = mean_recall(&ids, truth);
        let point = Point {
            name: case.name.clone(),
            allowed: *allowed,
            recall_at_10: recall,
            p50_ms: a["p50_ms"].as_f64().unwrap_or(0.0),
            p99_ms: a["p99_ms"].as_f64().unwrap_or(0.0),
            filter_ms: None,
            dense_ms: None,
        };
        *a = serde_json::to_value(&point)?;
        points.push(point);
    }
    Ok(points)
}

/// Runs both peers; returns their JSON (ids replaced by recalls) and their points.
pub(super) fn run(
    peers: &Peers,
    base: &Vectors,
    queries: &Vectors,
    metas: &[Meta],
    truths: &[Truth],
    opts: &FilterOptions,
) -> Result<(Value, PeerPoints)> {
    let work = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
    let dir = work.path();
    base.write_npy(&dir.join("base.npy"))?;
    queries.write_npy(&dir.join("queries.npy"))?;
    let meta = json!({
        "tag": metas.iter().map(|m| format!("t{:02}", m.tag)).collect::<Vec<_>>(),
        "n": metas.iter().map(|m| m.n).collect::<Vec<_>>(),
        "price": metas.iter().map(|m| m.price).collect::<Vec<_>>(),
        "flag": metas.iter().map(|m| m.flag).collect::<Vec<_>>(),
    });
    write_json(&dir.join("meta.json"), &meta)?;
    let filters: Vec<&FilterCase> = truths.iter().map(|(c, _, _)| c).collect();
    write_json(&dir.join("filters.json"), &serde_json::to_value(&filters)?)?;
    let args: Vec<String> = [
        ("--m", opts.m),
        ("--ef-construction", opts.ef_construction),
        ("--efs", EF),
        ("--k", K),
        ("--batch", opts.batch),
    ]
    .iter()
    .flat_map(|(flag, v)| [flag.to_string(), v.to_string()])
    .collect();
    let mut answer = peers.run("filter", dir, &args)?;
    let mut out = Vec::new();
    for name in NAMES {
        let sys = answer
            .get_mut(name)
            .ok_or_else(|| BenchError::Peer(format!("no {name} in the peer answer")))?;
        out.push((name.to_string(), read_points(name, sys, truths)?));
    }
    Ok((answer, out))
}
