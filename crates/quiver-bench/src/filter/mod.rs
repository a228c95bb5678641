//! `quiver bench filter`: dense queries with metadata filters at four selectivities,
//! over HTTP against a real `quiver serve`, with Chroma and LanceDB on the same data.
//!
//! The run, in order:
//! 1. Clustered vectors as in `bench db` (L2-normalized); every row gets the generated
//!    metadata of [`data`] (a keyword, an integer, a float and a bool field).
//! 2. Ground truth per filter: the exact top-10 among the rows the filter allows,
//!    computed here by brute force.
//! 3. The current executable is started as `quiver serve`; the documents are upserted
//!    (4 clients, batches of 1,000), flushed, and the collection left to settle.
//! 4. Per filter, and once without one, `mode: dense, top_k: 10` queries at the
//!    collection's default `ef`, one client: p50 / p99 latency, recall@10 against that
//!    filter's ground truth, and the server's mean `timings_ms.filter` (compiling the
//!    filter from the metadata index) and `timings_ms.dense`.
//! 5. Peers ([`peers`]): Chroma and LanceDB, embedded, the same documents and the same
//!    filters as `where` clauses, the same `ef`, one client in process.
//!
//! Goals printed with the figures: recall@10 >= 0.95 for every filter, filter compile at
//! most 1 ms at 1%, and filtered p50 at most 2x the unfiltered p50.
//!
//! `results` in the JSON: `{n, dim, queries, ef, ingest_seconds, settle_seconds,
//! segments, unfiltered: Point, filters: [Point]}`, a point being `{name, allowed,
//! recall_at_10, p50_ms, p99_ms, filter_ms, dense_ms}`.

pub mod data;
mod peers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quiver_client::Client;
use serde::Serialize;
use serde_json::{json, Value};

use crate::ann::{ground_truth_where, load, Source};
use crate::machine;
use crate::metrics::{overlap_recall, percentile_ms};
use crate::peers::Peers;
use crate::report::{table, Comparison, Report};
use crate::server::{create_and_upsert, settle, spawn};
use crate::vectors::Vectors;
use crate::Result;
use data::{cases, FilterCase, Meta};

/// Results per query.
pub const K: usize = 10;
/// A filter, the rows it allows, and its exact top-[`K`] per query.
pub(crate) type Truth = (FilterCase, usize, Vec<Vec<u64>>);
/// Each peer's name and its points, parallel to the filters.
pub(crate) type PeerPoints = Vec<(String, Vec<Point>)>;
/// The search list every system uses (Quiver's default `ef_search`).
pub const EF: usize = 64;
const COLLECTION: &str = "bench_filter";
const SETTLE_LIMIT: Duration = Duration::from_secs(1_800);

/// What `quiver bench filter` was asked to do.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    pub source: Source,
    /// The `quiver` executable to start as the server.
    pub exe: PathBuf,
    pub m: usize,
    pub ef_construction: usize,
    pub clients: usize,
    pub batch: usize,
    pub wal_sync: String,
    pub peers: Option<Peers>,
}

/// One filter's figures (or the unfiltered baseline's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub name: String,
    /// Rows the filter allows.
    pub allowed: usize,
    pub recall_at_10: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Mean server-reported `timings_ms.filter` (Quiver only).
    pub filter_ms: Option<f64>,
    /// Mean server-reported `timings_ms.dense` (Quiver only).
    pub dense_ms: Option<f64>,
}

/// Row numbers of a query answer's hits (ids are row numbers).
fn hit_rows(answer: &Value) -> Vec<u64> {
    answer["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["id"].as_str()?.parse().ok())
        .collect()
}

/// `queries` against the running server with `filter` (or none): one client.
fn measure_point(
    http: &Client,
    queries: &Vectors,
    truth: &[Vec<u64>],
    name: &str,
    allowed: usize,
    filter: Option<&Value>,
) -> Result<Point> {
    let path = format!("/collections/{COLLECTION}/query");
    let (mut lat, mut recall, mut filter_ms, mut dense_ms) = (Vec::new(), 0.0, 0.0, 0.0);
    for (i, want) in truth.iter().enumerate() {
        let mut body = json!({"vector": queries.row(i), "mode": "dense", "top_k": K});
        if let Some(f) = filter {
            body["filter"] = f.clone();
        }
        let t = Instant::now();
        let answer = http.call("POST", &path, Some(&body))?;
        lat.push(t.elapsed());
        recall += overlap_recall(&hit_rows(&answer), want);
        filter_ms += answer["timings_ms"]["filter"].as_f64().unwrap_or(0.0);
        dense_ms += answer["timings_ms"]["dense"].as_f64().unwrap_or(0.0);
    }
    let nq = truth.len().max(1) as f64;
    eprintln!(
        "filter: quiver {name}: recall@10 {:.4}, p50 {:.2} ms",
        recall / nq,
        percentile_ms(&lat, 50.0)
    );
    Ok(Point {
        name: name.to_string(),
        allowed,
        recall_at_10: recall / nq,
        p50_ms: percentile_ms(&lat, 50.0),
        p99_ms: percentile_ms(&lat, 99.0),
        filter_ms: Some(filter_ms / nq),
        dense_ms: Some(dense_ms / nq),
    })
}

/// Quiver's side: load, settle, then the unfiltered baseline and every filter.
struct Measured {
    ingest_seconds: f64,
    settle_seconds: f64,
    segments: Value,
    unfiltered: Point,
    filters: Vec<Point>,
}

fn measure_quiver(
    opts: &FilterOptions,
    base: &Vectors,
    queries: &Vectors,
    truths: &[Truth],
    unfiltered_truth: &[Vec<u64>],
) -> Result<Measured> {
    let server = spawn(&opts.exe, Path::new("/nonexistent"), &opts.wal_sync, None)?;
    let http = Client::new(&server.url, None);
    let n = base.len();
    let meta = move |i: usize| Meta::of(i, n).json();
    let ingest_seconds = create_and_upsert(
        &http,
        COLLECTION,
        base,
        (opts.m, opts.ef_construction),
        (opts.batch, opts.clients),
        "filter",
        &meta,
    )?
    .seconds;
    let t = Instant::now();
    http.call("POST", &format!("/collections/{COLLECTION}/flush"), None)?;
    let settled = settle(&http, COLLECTION, n, SETTLE_LIMIT)?;
    let settle_seconds = t.elapsed().as_secs_f64();
    eprintln!(
        "filter: ingested in {ingest_seconds:.1} s, settled after {settle_seconds:.1} s: {} segments",
        settled.last["segments"]
    );
    // Warm-up: page in the segments, graphs and metadata indexes.
    let warm = unfiltered_truth.len().min(100);
    measure_point(
        &http,
        queries,
        &unfiltered_truth[..warm],
        "warm-up",
        n,
        None,
    )?;
    for (case, allowed, truth) in truths {
        measure_point(
            &http,
            queries,
            &truth[..warm.min(truth.len())],
            "warm-up",
            *allowed,
            Some(&case.quiver),
        )?;
    }
    let unfiltered = measure_point(&http, queries, unfiltered_truth, "none", n, None)?;
    let filters = truths
        .iter()
        .map(|(case, allowed, truth)| {
            measure_point(
                &http,
                queries,
                truth,
                &case.name,
                *allowed,
                Some(&case.quiver),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Measured {
        ingest_seconds,
        settle_seconds,
        segments: settled.last["segments"].clone(),
        unfiltered,
        filters,
    })
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

fn rows(system: &str, points: &[&Point]) -> Vec<Vec<String>> {
    points
        .iter()
        .map(|p| {
            vec![
                system.to_string(),
                p.name.clone(),
                p.allowed.to_string(),
                format!("{:.4}", p.recall_at_10),
                format!("{:.2}", p.p50_ms),
                format!("{:.2}", p.p99_ms),
                fmt_opt(p.filter_ms, 3),
                fmt_opt(p.dense_ms, 2),
            ]
        })
        .collect()
}

/// The goals as comparisons: each filter's p50 against the unfiltered p50 (goal <= 2),
/// and Quiver's p50 against each peer's on the same filter.
fn comparisons(ours: &Measured, peer_points: &PeerPoints) -> Vec<Comparison> {
    let mut out: Vec<Comparison> = ours
        .filters
        .iter()
        .map(|p| {
            Comparison::new(
                format!("p50 ms, filter {} vs unfiltered (goal <= 2)", p.name),
                p.p50_ms,
                Some(ours.unfiltered.p50_ms),
            )
        })
        .collect();
    for (name, points) in peer_points {
        for (o, p) in ours.filters.iter().zip(points) {
            out.push(Comparison::new(
                format!("p50 ms, filter {}, vs {name}", o.name),
                o.p50_ms,
                Some(p.p50_ms),
            ));
        }
    }
    out
}

/// Runs the benchmark.
pub fn run(opts: &FilterOptions) -> Result<Report> {
    let (mut base, mut queries, what) = load(&opts.source)?;
    base.normalize();
    queries.normalize();
    let (n, dim) = (base.len(), base.dim);
    let metas: Vec<Meta> = (0..n).map(|i| Meta::of(i, n)).collect();
    eprintln!(
        "filter: {what}; {} queries; computing exact filtered top-{K}",
        queries.len()
    );
    let threads = machine::cores();
    let unfiltered_truth = crate::ann::ground_truth(&base, &queries, threads);
    let truths: Vec<Truth> = cases(n)
        .into_iter()
        .map(|case| {
            let allowed = metas.iter().filter(|m| case.allows(m)).count();
            let truth = ground_truth_where(&base, &queries, threads, &|r| case.allows(&metas[r]));
            (case, allowed, truth)
        })
        .collect();
    let ours = measure_quiver(opts, &base, &queries, &truths, &unfiltered_truth)?;
    let peer_answer = match &opts.peers {
        Some(p) => Some(peers::run(p, &base, &queries, &metas, &truths, opts)?),
        None => None,
    };

    let mut points: Vec<&Point> = vec![&ours.unfiltered];
    points.extend(&ours.filters);
    let mut md = format!(
        "Vectors: {what}; {n} x {dim}, {} queries, cosine, M {}, ef_construction {}, top_k {K}, ef {EF}\n\
         Metadata per document: `tag` (keyword, 100 values), `n` (integer), `price` (float), `flag` (bool), \
         independent of the vectors. Quiver over HTTP (`quiver serve`, WAL sync {}): ingest {:.1} s, \
         settled after {:.1} s with {} segments. Latency per query, one client; filter ms and dense ms \
         are the server's own timings (filter: compiling the filter from the metadata index).\n\n",
        queries.len(),
        opts.m,
        opts.ef_construction,
        opts.wal_sync,
        ours.ingest_seconds,
        ours.settle_seconds,
        ours.segments,
    );
    let mut all_rows = rows("quiver", &points);
    let mut peer_points = Vec::new();
    if let Some((_, runs)) = &peer_answer {
        for (name, pts) in runs {
            all_rows.extend(rows(name, &pts.iter().collect::<Vec<_>>()));
            peer_points.push((name.clone(), pts.clone()));
        }
    }
    md.push_str(&table(
        &[
            "system",
            "filter",
            "rows allowed",
            "recall@10",
            "p50 ms",
            "p99 ms",
            "filter ms",
            "dense ms",
        ],
        &all_rows,
    ));
    md.push_str(
        "\nGoals: recall@10 >= 0.95 for every filter; filter ms <= 1 at 1%; filtered p50 <= 2x the unfiltered p50.\n",
    );
    let comparison = comparisons(&ours, &peer_points);
    let results = json!({
        "n": n, "dim": dim, "queries": queries.len(), "ef": EF,
        "ingest_seconds": ours.ingest_seconds, "settle_seconds": ours.settle_seconds,
        "segments": ours.segments, "unfiltered": ours.unfiltered, "filters": ours.filters,
    });
    let parameters = json!({
        "source": what, "m": opts.m, "ef_construction": opts.ef_construction, "k": K, "ef": EF,
        "clients": opts.clients, "batch": opts.batch, "wal_sync": opts.wal_sync,
        "filters": truths.iter().map(|(c, _, _)| c).collect::<Vec<_>>(),
    });
    Ok(Report::new(
        "filter",
        parameters,
        results,
        peer_answer.map(|(v, _)| v),
        &comparison,
        md,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hits_read_as_rows() {
        let a = json!({"hits": [{"id": "3"}, {"id": "x"}, {"id": "9"}]});
        assert_eq!(hit_rows(&a), vec![3, 9]);
    }
}
