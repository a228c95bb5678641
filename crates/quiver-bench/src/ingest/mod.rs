//! `quiver bench ingest`: documents per second end to end over HTTP, against a real server.
//!
//! With a spawn target it starts the `quiver` binary ([`crate::server::spawn`]) once per WAL
//! sync policy (`always`, `interval`, `never`, set through `QUIVER_STORAGE_WAL_SYNC`) on a
//! fresh scratch directory whose `models/` links to the real one; with a URL it measures
//! that server as it is configured. Against each server:
//!
//! 1. Supplied vectors, at scale: `n` unit vectors (generated clustered vectors, the same
//!    as `bench db`'s, or the first `n` rows of a `.npy` / `.fvecs` file, L2-normalized)
//!    upserted into a fresh cosine collection (`m`, `ef_construction`) by `clients` threads
//!    in batches of `batch`, each document `{"id", "vector", "metadata": {"i", "group"}}` as
//!    in `bench db`. Every request is timed. docs/s is sustained: documents over the
//!    seconds from the first request to the last answer; batch latency p50 / p99 / max and
//!    max / p50 show stalls. Then `GET /collections/{name}` is polled until its answer holds
//!    still ([`crate::server::settle`]): the seconds until it last changed are how long
//!    background sealing and compaction went on after the last answer, and its plain
//!    fields at the last answer and once settled are printed as the server gives them.
//! 2. Embedding on the server: `embed_docs` texts of a BEIR corpus (cycled) posted without
//!    vectors into a collection embedding with `model` (0 skips this).
//!
//! With peers ([`crate::ingest_peers`]), hnswlib's graph build rate, Chroma's and LanceDB's
//! ingest of the same vectors, and Quiver's docs/s under each policy against each; for the
//! embedding runs ([`embed_peers`]), sentence-transformers alone and Chroma embedding with
//! it, on the same texts and model.
//!
//! `results.runs` rows: `{policy, mode, documents, seconds, docs_per_s}`; rows of mode
//! `vectors` add `latency: {p50_ms, p99_ms, max_ms, max_over_p50}`, `batches: [{start_s,
//! ms}]` in batch order and `settle: {changed_after_s, waited_s, settled, at_last_answer,
//! settled_info}`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use quiver_client::Client;
use serde_json::{json, Value};

pub mod embed_peers;
mod report;

use crate::beir::Dataset;
use crate::ingest_peers::{self, IngestPeer};
use crate::machine;
use crate::metrics::Latency;
use crate::peers::Peers;
use crate::report::{fmt_num, table, Report};
use crate::server::{
    create_and_upsert, info_fields, plain_metadata, policy_env, settle, spawn, Loaded, Settled,
};
use crate::vectors::{clustered, Vectors};
use crate::{BenchError, Result};

/// Longest wait for sealing and compaction to settle after the last answer.
const SETTLE_LIMIT: Duration = Duration::from_secs(600);
/// Seed and spread of generated vectors: `bench db`'s and `bench ann`'s sets.
const SEED: u64 = 7;
const SPREAD: f32 = 0.6;

/// Which server to measure.
#[derive(Debug, Clone)]
pub enum Target {
    /// An already running server.
    Url(String),
    /// Start `exe serve` per policy; models are linked from `data_dir/models`.
    Spawn { exe: PathBuf, data_dir: PathBuf },
}

/// How much a run does: vectors posted, WAL policies, documents embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    pub n: usize,
    pub policies: Vec<String>,
    pub embed_docs: usize,
    /// The spawned server's `storage.seal_rows` (its default when `None`).
    pub seal_rows: Option<usize>,
}

impl Sizes {
    /// The full run: 300,000 vectors, WAL `always` and `interval`, 512 embedded documents.
    pub fn full() -> Sizes {
        Sizes {
            n: 300_000,
            policies: vec!["always".into(), "interval".into()],
            embed_docs: 512,
            seal_rows: None,
        }
    }

    /// The quick run: 20,000 vectors, WAL `always`, 64 embedded documents, seals every
    /// 5,000 rows (so that the run crosses seals and compactions).
    pub fn quick() -> Sizes {
        Sizes {
            n: 20_000,
            policies: vec!["always".into()],
            embed_docs: 64,
            seal_rows: Some(5_000),
        }
    }

    /// The full or quick sizes with whatever was given explicitly in their place; every
    /// policy must be known.
    pub fn resolve(
        quick: bool,
        n: Option<usize>,
        policies: Option<Vec<String>>,
        embed_docs: Option<usize>,
        seal_rows: Option<usize>,
    ) -> Result<Sizes> {
        let base = if quick { Sizes::quick() } else { Sizes::full() };
        let sizes = Sizes {
            n: n.unwrap_or(base.n),
            policies: policies.unwrap_or(base.policies),
            embed_docs: embed_docs.unwrap_or(base.embed_docs),
            seal_rows: seal_rows.or(base.seal_rows),
        };
        if sizes.policies.is_empty() {
            return Err(BenchError::InvalidInput(
                "--policies needs at least one policy".into(),
            ));
        }
        for p in &sizes.policies {
            policy_env(p)?;
        }
        Ok(sizes)
    }
}

/// What `quiver bench ingest` was asked to do.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub target: Target,
    /// Base vectors (`.npy` / `.fvecs`); generated when `None`.
    pub vectors: Option<PathBuf>,
    /// Vectors posted (0 skips that mode) and WAL policies, documents embedded.
    pub sizes: Sizes,
    /// Generated vectors: length and clusters.
    pub dim: usize,
    pub clusters: usize,
    /// The collection's HNSW settings (and the peers').
    pub m: usize,
    pub ef_construction: usize,
    /// Documents per request with supplied vectors.
    pub batch: usize,
    pub clients: usize,
    /// Texts for server-side embedding come from this BEIR corpus (cycled).
    pub dataset: PathBuf,
    /// Documents per request for server-side embedding.
    pub embed_batch: usize,
    /// Model for server-side embedding.
    pub model: String,
    pub api_key: Option<String>,
    pub peers: Option<Peers>,
}

impl IngestOptions {
    /// The full-size run against `target`, with 384-dim generated vectors.
    pub fn new(target: Target, dataset: PathBuf, model: String) -> Self {
        IngestOptions {
            target,
            vectors: None,
            sizes: Sizes::full(),
            dim: 384,
            clusters: 500,
            m: 16,
            ef_construction: 200,
            batch: 1_000,
            clients: 4,
            dataset,
            embed_batch: 256,
            model,
            api_key: None,
            peers: None,
        }
    }
}

/// One run of supplied vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorRun {
    pub policy: String,
    pub documents: usize,
    pub loaded: Loaded,
    pub settled: Settled,
}

impl VectorRun {
    /// Sustained documents per second.
    pub fn docs_per_s(&self) -> f64 {
        self.documents as f64 / self.loaded.seconds.max(1e-9)
    }

    pub fn latency(&self) -> Latency {
        Latency::of(&self.loaded.latencies())
    }

    fn json(&self) -> Value {
        let s = &self.settled;
        json!({"policy": self.policy, "mode": "vectors", "documents": self.documents,
            "seconds": self.loaded.seconds, "docs_per_s": self.docs_per_s(),
            "latency": self.latency(), "batches": self.loaded.batches,
            "settle": {"changed_after_s": s.changed_after, "waited_s": s.waited,
                "settled": s.settled, "at_last_answer": s.first, "settled_info": s.last}})
    }

    /// The row of the throughput and latency table.
    pub fn row(&self) -> Vec<String> {
        let l = self.latency();
        vec![
            self.policy.clone(),
            self.documents.to_string(),
            format!("{:.1}", self.loaded.seconds),
            fmt_num(self.docs_per_s()),
            format!("{:.0}", l.p50_ms),
            format!("{:.0}", l.p99_ms),
            format!("{:.0}", l.max_ms),
            format!("{:.1}", l.max_over_p50),
        ]
    }

    /// The row of the after-the-last-answer table.
    pub fn settle_row(&self) -> Vec<String> {
        let s = &self.settled;
        let settled = if s.settled {
            info_fields(&s.last)
        } else {
            format!("not settled in {:.0} s: {}", s.waited, info_fields(&s.last))
        };
        vec![
            self.policy.clone(),
            format!("{:.1}", s.changed_after),
            info_fields(&s.first),
            settled,
        ]
    }
}

/// One run of server-side embedding.
#[derive(Debug, Clone, PartialEq)]
struct EmbedRun {
    policy: String,
    documents: usize,
    seconds: f64,
}

impl EmbedRun {
    fn docs_per_s(&self) -> f64 {
        self.documents as f64 / self.seconds.max(1e-9)
    }
}

/// The vectors to post, and what they are.
fn load_vectors(opts: &IngestOptions) -> Result<(Vectors, String)> {
    let n = opts.sizes.n;
    match &opts.vectors {
        Some(path) => {
            let mut v = Vectors::read(path)?;
            let rows = n.min(v.len());
            v.data.truncate(rows * v.dim);
            v.normalize();
            Ok((v, format!("file: {}, first {rows} rows", path.display())))
        }
        None => {
            let (v, _) = clustered(SEED, n, 0, opts.dim, opts.clusters, SPREAD);
            let what = format!("generated: {n} x {}, {} clusters", opts.dim, opts.clusters);
            Ok((v, what))
        }
    }
}

/// Posts `docs` in batches from `clients` threads; returns seconds.
fn post_all(
    http: &Client,
    collection: &str,
    docs: &[Value],
    batch: usize,
    clients: usize,
) -> Result<f64> {
    let batches: Vec<&[Value]> = docs.chunks(batch.max(1)).collect();
    let next = AtomicUsize::new(0);
    let path = format!("/collections/{collection}/documents");
    let start = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients.max(1))
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = batches.get(i) else {
                        return Ok(());
                    };
                    http.call("POST", &path, Some(&json!({ "documents": b })))?;
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(BenchError::Server("client thread panicked".into())))
        })
    })?;
    Ok(start.elapsed().as_secs_f64())
}

/// `n` texts of the corpus (cycled).
fn texts(data: &Dataset, n: usize) -> Vec<&str> {
    (0..n)
        .map(|i| data.docs[i % data.docs.len()].text.as_str())
        .collect()
}

/// `n` documents of the corpus's texts (cycled), without vectors.
fn documents(data: &Dataset, n: usize) -> Vec<Value> {
    texts(data, n)
        .into_iter()
        .enumerate()
        .map(|(i, text)| json!({"id": format!("embedding-{i}"), "text": text}))
        .collect()
}

fn measure_vectors(
    http: &Client,
    opts: &IngestOptions,
    base: &Vectors,
    policy: &str,
) -> Result<VectorRun> {
    let name = format!("bench_ingest_vectors_{}", std::process::id());
    let loaded = create_and_upsert(
        http,
        &name,
        base,
        (opts.m, opts.ef_construction),
        (opts.batch, opts.clients),
        &format!("ingest: policy {policy}"),
        &plain_metadata,
    )?;
    let latency = Latency::of(&loaded.latencies());
    eprintln!(
        "ingest: {:.1} s, {:.0} docs/s, batch p50 {:.0} ms, max {:.0} ms; waiting for the collection to settle",
        loaded.seconds,
        base.len() as f64 / loaded.seconds.max(1e-9),
        latency.p50_ms,
        latency.max_ms
    );
    let settled = settle(http, &name, base.len(), SETTLE_LIMIT)?;
    http.call("DELETE", &format!("/collections/{name}"), None)?;
    Ok(VectorRun {
        policy: policy.to_string(),
        documents: base.len(),
        loaded,
        settled,
    })
}

fn measure_embedding(
    http: &Client,
    opts: &IngestOptions,
    data: &Dataset,
    policy: &str,
) -> Result<EmbedRun> {
    let n = opts.sizes.embed_docs;
    let name = format!("bench_ingest_embedding_{}", std::process::id());
    // Texts embedded whole (truncated at the model's input), as the peers embed them:
    // chunking would embed more of each long text than they do.
    let body = json!({"embedding_model": opts.model, "chunking": false});
    http.call("PUT", &format!("/collections/{name}"), Some(&body))?;
    eprintln!("ingest: policy {policy}, embedding: posting {n} documents");
    let docs = documents(data, n);
    let seconds = post_all(http, &name, &docs, opts.embed_batch, opts.clients)?;
    http.call("DELETE", &format!("/collections/{name}"), None)?;
    Ok(EmbedRun {
        policy: policy.to_string(),
        documents: n,
        seconds,
    })
}

/// Everything measured against the servers.
#[derive(Default)]
struct Measured {
    vectors: Vec<VectorRun>,
    embedding: Vec<EmbedRun>,
}

fn measure(
    http: &Client,
    opts: &IngestOptions,
    base: Option<&Vectors>,
    data: Option<&Dataset>,
    policy: &str,
    out: &mut Measured,
) -> Result<()> {
    if let Some(base) = base {
        out.vectors.push(measure_vectors(http, opts, base, policy)?);
    }
    if let Some(data) = data {
        out.embedding
            .push(measure_embedding(http, opts, data, policy)?);
    }
    Ok(())
}

/// Runs the benchmark.
pub fn run(opts: &IngestOptions) -> Result<Report> {
    let base = match opts.sizes.n {
        0 => None,
        _ => Some(load_vectors(opts)?),
    };
    let data = match opts.sizes.embed_docs {
        0 => None,
        _ => Some(Dataset::load(&opts.dataset)?),
    };
    let base_ref = base.as_ref().map(|(v, _)| v);
    let mut measured = Measured::default();
    match &opts.target {
        Target::Url(url) => {
            let http = Client::new(url, opts.api_key.clone());
            measure(
                &http,
                opts,
                base_ref,
                data.as_ref(),
                "server's own",
                &mut measured,
            )?;
        }
        Target::Spawn { exe, data_dir } => {
            if data.is_some() {
                crate::ir::require_model(data_dir, &opts.model)?;
            }
            for policy in &opts.sizes.policies {
                let server = spawn(exe, data_dir, policy, opts.sizes.seal_rows)?;
                let http = Client::new(&server.url, None);
                measure(&http, opts, base_ref, data.as_ref(), policy, &mut measured)?;
            }
        }
    }
    let peers = match (&opts.peers, base_ref) {
        (Some(p), Some(b)) => {
            let threads = machine::cores();
            eprintln!("ingest: peers on the same {} vectors", b.len());
            Some(ingest_peers::run(
                p,
                b,
                opts.m,
                opts.ef_construction,
                opts.batch,
                threads,
            )?)
        }
        _ => None,
    };
    let embedding_peers = match (&opts.peers, data.as_ref(), &opts.target) {
        (Some(p), Some(d), Target::Spawn { data_dir, .. }) => {
            let model_dir = crate::ir::require_model(data_dir, &opts.model)?;
            let texts = texts(d, opts.sizes.embed_docs);
            eprintln!("ingest: embedding peers on the same {} texts", texts.len());
            Some(embed_peers::run(
                p,
                &model_dir,
                &texts,
                opts.embed_batch,
                machine::cores(),
            )?)
        }
        _ => None,
    };
    Ok(report::report(
        opts,
        base.as_ref(),
        &measured,
        peers,
        embedding_peers,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::server::BatchTime;

    #[test]
    fn sizes_take_explicit_values_over_full_or_quick() {
        assert_eq!(
            Sizes::resolve(false, None, None, None, None).unwrap(),
            Sizes::full()
        );
        let q = Sizes::resolve(true, None, None, Some(0), None).unwrap();
        assert_eq!((q.n, q.embed_docs, q.seal_rows), (20_000, 0, Some(5_000)));
        assert_eq!(q.policies, vec!["always"]);
        let p = Some(vec!["never".to_string()]);
        let s = Sizes::resolve(true, Some(5), p, None, Some(9)).unwrap();
        assert_eq!(
            (s.n, s.policies[0].as_str(), s.seal_rows),
            (5, "never", Some(9))
        );
        assert!(Sizes::resolve(false, None, Some(vec!["sometimes".into()]), None, None).is_err());
        assert!(Sizes::resolve(false, None, Some(vec![]), None, None).is_err());
    }

    #[test]
    fn documents_cycle_texts_without_vectors() {
        let data = Dataset {
            docs: vec![crate::beir::Entry {
                id: "a".into(),
                text: "x".into(),
            }],
            ..Dataset::default()
        };
        let d = documents(&data, 3);
        assert_eq!(d[2]["id"], "embedding-2");
        assert_eq!(d[2]["text"], "x");
        assert!(d[0].get("vector").is_none());
    }

    #[test]
    fn vector_runs_report_rate_latency_and_settling() {
        let batch = |start_s, ms| BatchTime { start_s, ms };
        let run = VectorRun {
            policy: "always".into(),
            documents: 3_000,
            loaded: Loaded {
                seconds: 2.0,
                batches: vec![batch(0.0, 100.0), batch(0.1, 100.0), batch(0.5, 1_000.0)],
            },
            settled: Settled {
                changed_after: 1.5,
                waited: 4.5,
                settled: true,
                first: json!({"name": "c", "count": 3000, "memtable_entries": 3000}),
                last: json!({"name": "c", "count": 3000, "memtable_entries": 0}),
            },
        };
        assert_eq!(run.docs_per_s(), 1_500.0);
        assert_eq!(
            run.row(),
            ["always", "3000", "2.0", "1500", "100", "1000", "1000", "10.0"]
        );
        let s = run.settle_row();
        assert_eq!(s[1], "1.5");
        assert_eq!(s[2], "count 3000, memtable_entries 3000");
        assert_eq!(s[3], "count 3000, memtable_entries 0");
        let j = run.json();
        assert_eq!(j["latency"]["max_over_p50"], 10.0);
        assert_eq!(j["batches"][2]["start_s"], 0.5);
        assert_eq!(j["settle"]["settled_info"]["memtable_entries"], 0);
    }

    #[test]
    fn file_vectors_are_cut_to_n_and_normalized() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("v.npy");
        let v = Vectors {
            dim: 2,
            data: vec![3.0, 4.0, 1.0, 0.0, 0.0, 2.0],
        };
        v.write_npy(&p).unwrap();
        let mut o = IngestOptions::new(Target::Url("x".into()), PathBuf::new(), String::new());
        o.vectors = Some(p);
        o.sizes.n = 2;
        let (got, what) = load_vectors(&o).unwrap();
        let want = [0.6, 0.8, 1.0, 0.0];
        assert!(got.data.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6));
        assert_eq!(got.len(), 2);
        assert!(what.ends_with("first 2 rows"), "{what}");
        o.vectors = None;
        o.dim = 8;
        let (gen, _) = load_vectors(&o).unwrap();
        assert_eq!((gen.len(), gen.dim), (2, 8));
    }
}
