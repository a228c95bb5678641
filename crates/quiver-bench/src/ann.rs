//! `quiver bench ann`: HNSW recall and speed against exact search, and against hnswlib and
//! faiss (`IndexHNSWFlat`) on the very same vectors and settings.
//!
//! Vectors come from a model run over a BEIR corpus (documents as base, queries as
//! queries), from `.fvecs` / `.npy` files, or are generated (clustered, unit length). All
//! are L2-normalized and searched by cosine. For each `ef` of the sweep it measures
//! recall@10 against [`quiver_index::exact_search`], single-threaded QPS and p50/p99
//! latency (one query at a time), and multi-threaded QPS (queries split over every core).
//! It also reports build time, resident memory added per vector, the graph's on-disk bytes
//! per vector and the process's peak RSS, and writes an SVG recall-vs-QPS plot.
//!
//! `results` in the JSON: `{n, dim, build_seconds, build_threads, rss_bytes_per_vector,
//! disk_bytes_per_vector, peak_rss_bytes, sweep: [{ef, recall_at_10, qps_1t, qps_mt,
//! p50_ms, p99_ms}]}`; `peers.<name>.sweep` has the same rows.

use std::path::{Path, PathBuf};
use std::time::Instant;

use quiver_core::Distance;
use quiver_embed::{ModelRegistry, Priority, ServiceConfig};
use quiver_index::{exact_search, DenseIndex, FlatGraph, HnswParams, VectorRows};
use serde_json::{json, Value};

use crate::beir::Dataset;
use crate::machine;
use crate::metrics::{mean_recall, overlap_recall, percentile_ms};
use crate::peers::{HnswSweep, Peers};
use crate::report::{fmt_num, table, Comparison, Report};
use crate::svg::{recall_qps, Series};
use crate::vectors::{clustered, Vectors};
use crate::{BenchError, Result};

/// Results per query.
const K: usize = 10;
/// The recall a QPS comparison is made at.
pub const TARGET_RECALL: f64 = 0.95;

/// Where the vectors come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Clustered random unit vectors.
    Generated {
        n: usize,
        queries: usize,
        dim: usize,
        clusters: usize,
        seed: u64,
    },
    /// `.fvecs` / `.npy` base vectors; queries from their own file or the last `queries`
    /// rows of the base file.
    Files {
        base: PathBuf,
        queries: Option<PathBuf>,
        held_out: usize,
    },
    /// A model over a BEIR dataset's documents and queries.
    Model {
        dataset: PathBuf,
        model: String,
        data_dir: PathBuf,
    },
}

/// What `quiver bench ann` was asked to do.
#[derive(Debug, Clone)]
pub struct AnnOptions {
    pub source: Source,
    pub m: usize,
    pub ef_construction: usize,
    pub efs: Vec<usize>,
    /// Threads of the multi-threaded sweep (default: every core).
    pub threads: usize,
    pub peers: Option<Peers>,
    /// Where the SVG plot goes (none: no plot).
    pub svg: Option<PathBuf>,
}

impl AnnOptions {
    pub fn new(source: Source) -> Self {
        AnnOptions {
            source,
            m: 16,
            ef_construction: 200,
            efs: vec![10, 16, 32, 64, 128, 256, 512],
            threads: machine::cores(),
            peers: None,
            svg: None,
        }
    }
}

/// One point of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SweepPoint {
    pub ef: usize,
    pub recall_at_10: f64,
    pub qps_1t: f64,
    pub qps_mt: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub(crate) fn load(source: &Source) -> Result<(Vectors, Vectors, String)> {
    match source {
        Source::Generated {
            n,
            queries,
            dim,
            clusters,
            seed,
        } => {
            let (b, q) = clustered(*seed, *n, *queries, *dim, *clusters, 0.6);
            Ok((b, q, format!("generated: {n} x {dim}, {clusters} clusters")))
        }
        Source::Files {
            base,
            queries,
            held_out,
        } => {
            let all = Vectors::read(base)?;
            let (b, q) = match queries {
                Some(p) => (all, Vectors::read(p)?),
                None => all.split_tail(*held_out),
            };
            if b.dim != q.dim || b.is_empty() || q.is_empty() {
                return Err(BenchError::InvalidInput(
                    "base and query vectors must be non-empty and of one dim".into(),
                ));
            }
            Ok((b, q, format!("file: {}", base.display())))
        }
        Source::Model {
            dataset,
            model,
            data_dir,
        } => {
            crate::ir::require_model(data_dir, model)?;
            let data = Dataset::load(dataset)?;
            let service = ModelRegistry::new(data_dir, ServiceConfig::default()).embedder(model)?;
            let mut rows = Vec::with_capacity(data.docs.len());
            for chunk in data.docs.chunks(64) {
                let texts: Vec<&str> = chunk.iter().map(|d| d.text.as_str()).collect();
                rows.extend(service.embed(&texts, None, Priority::Bulk)?);
            }
            let texts: Vec<&str> = data.queries.iter().map(|q| q.text.as_str()).collect();
            let task = quiver_engine::models::DEFAULT_TASK;
            let qs = service.embed(&texts, Some(task), Priority::Bulk)?;
            Ok((
                Vectors::from_rows(&rows)?,
                Vectors::from_rows(&qs)?,
                format!("{model} over {}", dataset.display()),
            ))
        }
    }
}

/// Exact top-k rows per query, spread over `threads`.
pub(crate) fn ground_truth(base: &Vectors, queries: &Vectors, threads: usize) -> Vec<Vec<u64>> {
    ground_truth_where(base, queries, threads, &|_| true)
}

/// The exact top-[`K`] rows per query among the rows `keep` passes, on `threads` threads.
pub(crate) fn ground_truth_where(
    base: &Vectors,
    queries: &Vectors,
    threads: usize,
    keep: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<Vec<u64>> {
    let allowed: Vec<usize> = (0..base.len()).filter(|&r| keep(r)).collect();
    let allowed = &allowed;
    let idx: Vec<usize> = (0..queries.len()).collect();
    let chunks: Vec<&[usize]> = idx
        .chunks(queries.len().div_ceil(threads.max(1)).max(1))
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|&i| {
                            let rows = allowed.iter().map(|&r| (r as u64, base.row(r)));
                            exact_search(Distance::Cosine, queries.row(i), K, rows, None)
                                .into_iter()
                                .map(|h| h.row)
                                .collect()
                        })
                        .collect::<Vec<Vec<u64>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    e.metadata().map_or(0, |m| {
                        if m.is_dir() {
                            dir_bytes(&e.path())
                        } else {
                            m.len()
                        }
                    })
                })
                .sum()
        })
        .unwrap_or(0)
}

fn sweep_point(
    index: &FlatGraph,
    rows: VectorRows<'_>,
    queries: &Vectors,
    truth: &[Vec<u64>],
    ef: usize,
    threads: usize,
) -> Result<SweepPoint> {
    let mut lat = Vec::with_capacity(queries.len());
    let mut recall = 0.0;
    let start = Instant::now();
    for (i, want) in truth.iter().enumerate() {
        let t = Instant::now();
        let hits = index.search(rows, queries.row(i), K, ef, None)?;
        lat.push(t.elapsed());
        let got: Vec<u64> = hits.iter().map(|h| h.row).collect();
        recall += overlap_recall(&got, want);
    }
    let single = start.elapsed().as_secs_f64();
    let per = queries.len().div_ceil(threads.max(1)).max(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..queries.len())
            .step_by(per)
            .map(|first| {
                s.spawn(move || {
                    for i in first..(first + per).min(queries.len()) {
                        index.search(rows, queries.row(i), K, ef, None)?;
                    }
                    Ok::<(), BenchError>(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(BenchError::InvalidInput("search thread panicked".into())))
        })
    })?;
    let multi = start.elapsed().as_secs_f64();
    let nq = queries.len() as f64;
    Ok(SweepPoint {
        ef,
        recall_at_10: recall / nq,
        qps_1t: nq / single.max(1e-12),
        qps_mt: nq / multi.max(1e-12),
        p50_ms: percentile_ms(&lat, 50.0),
        p99_ms: percentile_ms(&lat, 99.0),
    })
}

/// Best single-thread QPS among points at or above [`TARGET_RECALL`].
pub fn qps_at_target(points: &[SweepPoint]) -> Option<f64> {
    points
        .iter()
        .filter(|p| p.recall_at_10 >= TARGET_RECALL)
        .map(|p| p.qps_1t)
        .reduce(f64::max)
}

/// Runs the benchmark.
pub fn run(opts: &AnnOptions) -> Result<Report> {
    let (mut base, mut queries, what) = load(&opts.source)?;
    base.normalize();
    queries.normalize();
    let (n, dim) = (base.len(), base.dim);
    eprintln!(
        "ann: {what}; {} queries; computing exact top-{K}",
        queries.len()
    );
    let truth = ground_truth(&base, &queries, opts.threads);
    let params = HnswParams {
        m: opts.m,
        ef_construction: opts.ef_construction,
        ef_search: 64,
    };
    let rss_before = machine::rss_bytes();
    let start = Instant::now();
    let index = DenseIndex::new(dim, Distance::Cosine, params)?;
    let rows: Vec<(u64, &[f32])> = (0..n).map(|i| (i as u64, base.row(i))).collect();
    index.insert_batch(&rows)?;
    let build = start.elapsed().as_secs_f64();
    let rss_per_vec = match (rss_before, machine::rss_bytes()) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    // Search what a sealed segment searches: the graph exported to its flat file and
    // mapped back, over the vectors stored once.
    let rows_all = VectorRows::new(&base.data, dim);
    let dump = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
    let path = dump.path().join("graph.qvg");
    FlatGraph::export(&index, rows_all)?.save(&path)?;
    drop(index);
    let flat = FlatGraph::open(&path)?;
    let disk_per_vec = dir_bytes(dump.path()) as f64 / n as f64;
    eprintln!("ann: built in {build:.1} s; sweeping ef {:?}", opts.efs);
    // One untimed pass at the widest ef reads the mapped graph in from the page cache,
    // as a segment that has served queries has it; the peers' graphs start on the heap.
    let widest = opts.efs.iter().copied().max().unwrap_or(K);
    for i in 0..queries.len() {
        flat.search(rows_all, queries.row(i), K, widest, None)?;
    }
    let sweep: Vec<SweepPoint> = opts
        .efs
        .iter()
        .map(|&ef| sweep_point(&flat, rows_all, &queries, &truth, ef, opts.threads))
        .collect::<Result<_>>()?;

    let mut series = vec![
        Series {
            name: "quiver 1 thread".into(),
            points: sweep.iter().map(|p| (p.recall_at_10, p.qps_1t)).collect(),
        },
        Series {
            name: format!("quiver {} threads", opts.threads),
            points: sweep.iter().map(|p| (p.recall_at_10, p.qps_mt)).collect(),
        },
    ];
    let mut comparison = Vec::new();
    let mut peer_json = None;
    if let Some(peers) = &opts.peers {
        let (v, peer_sweeps) = run_peers(peers, &base, &queries, &truth, opts)?;
        for (name, build_s, points) in &peer_sweeps {
            series.push(Series {
                name: format!("{name} 1 thread"),
                points: points.iter().map(|p| (p.recall_at_10, p.qps_1t)).collect(),
            });
            comparison.push(Comparison::new(
                format!("1-thread QPS at recall@10 >= {TARGET_RECALL} vs {name}"),
                qps_at_target(&sweep).unwrap_or(0.0),
                qps_at_target(points),
            ));
            let best_mt = |s: &[SweepPoint]| {
                s.iter()
                    .filter(|p| p.recall_at_10 >= TARGET_RECALL)
                    .map(|p| p.qps_mt)
                    .reduce(f64::max)
            };
            comparison.push(Comparison::new(
                format!(
                    "{}-thread QPS at recall@10 >= {TARGET_RECALL} vs {name}",
                    opts.threads
                ),
                best_mt(&sweep).unwrap_or(0.0),
                best_mt(points),
            ));
            comparison.push(Comparison::new(
                format!("build seconds vs {name}"),
                build,
                Some(*build_s),
            ));
        }
        peer_json = Some(v);
    }
    if let Some(path) = &opts.svg {
        let svg = recall_qps(
            &format!(
                "recall@10 vs QPS: {n} x {dim}, M={}, efC={}",
                opts.m, opts.ef_construction
            ),
            &series,
        );
        std::fs::write(path, svg).map_err(|e| BenchError::io(path, e))?;
    }
    let rows: Vec<Vec<String>> = sweep
        .iter()
        .map(|p| {
            vec![
                p.ef.to_string(),
                format!("{:.4}", p.recall_at_10),
                fmt_num(p.qps_1t),
                fmt_num(p.qps_mt),
                format!("{:.3}", p.p50_ms),
                format!("{:.3}", p.p99_ms),
            ]
        })
        .collect();
    let peak = machine::peak_rss_bytes();
    let mut md = format!(
        "Vectors: {what}; {n} x {dim}, {} queries, M={}, ef_construction={}\n\
         Build {build:.2} s on {} threads; RSS +{} bytes/vector; graph on disk {disk_per_vec:.0} bytes/vector; peak RSS {} MiB\n\n",
        queries.len(),
        opts.m,
        opts.ef_construction,
        machine::cores(),
        rss_per_vec.map_or("n/a".into(), |b| format!("{b:.0}")),
        peak.map_or("n/a".into(), |b| format!("{:.0}", b as f64 / (1u64 << 20) as f64)),
    );
    md.push_str(&table(
        &[
            "ef",
            "recall@10",
            "QPS 1 thread",
            &format!("QPS {} threads", opts.threads),
            "p50 ms",
            "p99 ms",
        ],
        &rows,
    ));
    if let Some(path) = &opts.svg {
        md.push_str(&format!("\nPlot: {}\n", path.display()));
    }
    let results = json!({
        "n": n, "dim": dim, "queries": queries.len(),
        "build_seconds": build, "build_threads": machine::cores(),
        "rss_bytes_per_vector": rss_per_vec, "disk_bytes_per_vector": disk_per_vec,
        "peak_rss_bytes": peak, "sweep": sweep,
    });
    let parameters = json!({
        "source": what, "m": opts.m, "ef_construction": opts.ef_construction, "efs": opts.efs,
        "k": K, "threads": opts.threads, "distance": "cosine",
    });
    Ok(Report::new(
        "ann",
        parameters,
        results,
        peer_json,
        &comparison,
        md,
    ))
}

type PeerSweep = (String, f64, Vec<SweepPoint>);

fn run_peers(
    peers: &Peers,
    base: &Vectors,
    queries: &Vectors,
    truth: &[Vec<u64>],
    opts: &AnnOptions,
) -> Result<(Value, Vec<PeerSweep>)> {
    let sweep = HnswSweep {
        m: opts.m,
        ef_construction: opts.ef_construction,
        efs: &opts.efs,
        k: K,
    };
    let extra = ["--threads".to_string(), opts.threads.to_string()];
    let mut answer = peers.run_vectors("ann", base, queries, sweep, &extra)?;
    let mut out = Vec::new();
    for name in ["hnswlib", "faiss"] {
        let Some(sys) = answer.get_mut(name) else {
            continue;
        };
        let build = sys
            .get("build_seconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let mut points = Vec::new();
        for p in sys
            .get_mut("sweep")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let ids: Vec<Vec<u64>> = p
                .get("ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            r.as_array()
                                .map(|r| r.iter().filter_map(Value::as_u64).collect())
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let recall = mean_recall(&ids, truth);
            let f = |k: &str| p.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let point = SweepPoint {
                ef: p.get("ef").and_then(Value::as_u64).unwrap_or(0) as usize,
                recall_at_10: recall,
                qps_1t: f("qps_1t"),
                qps_mt: f("qps_mt"),
                p50_ms: f("p50_ms"),
                p99_ms: f("p99_ms"),
            };
            // Replace the bulky ids by the recall computed from them.
            *p = serde_json::to_value(point)?;
            points.push(point);
        }
        out.push((name.to_string(), build, points));
    }
    Ok((answer, out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_generated_run_reaches_high_recall_at_large_ef() {
        let mut o = AnnOptions::new(Source::Generated {
            n: 500,
            queries: 20,
            dim: 16,
            clusters: 5,
            seed: 1,
        });
        o.efs = vec![8, 200];
        o.threads = 2;
        let r = run(&o).unwrap();
        let sweep = r.json["results"]["sweep"].as_array().unwrap();
        assert_eq!(sweep.len(), 2);
        let hi = sweep[1]["recall_at_10"].as_f64().unwrap();
        assert!(hi >= 0.99, "recall at ef=200 on 500 points: {hi}");
        assert!(sweep[1]["qps_1t"].as_f64().unwrap() > 0.0);
        assert!(r.markdown.contains("| ef | recall@10"));
    }

    #[test]
    fn qps_at_target_skips_low_recall_points() {
        let p = |recall_at_10, qps_1t| SweepPoint {
            ef: 1,
            recall_at_10,
            qps_1t,
            qps_mt: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
        };
        assert_eq!(
            qps_at_target(&[p(0.9, 900.0), p(0.96, 500.0), p(0.99, 200.0)]),
            Some(500.0)
        );
        assert_eq!(qps_at_target(&[p(0.9, 900.0)]), None);
    }
}
