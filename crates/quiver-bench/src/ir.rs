//! `quiver bench ir`: retrieval quality and latency on a BEIR-layout collection.
//!
//! The corpus goes through the real engine in-process: a [`Database`] in a temporary
//! directory, one collection with the chosen embedding model, documents embedded in
//! batches with [`models::embed_documents`] and upserted. Queries run through the
//! engine's [`QueryPipeline`], the same path the HTTP API takes. Every query is embedded
//! once (the same vector serves every mode, so the embedding cache never flatters a
//! later mode) and then run in each mode:
//!
//! | mode              | what runs                                                     |
//! |-------------------|---------------------------------------------------------------|
//! | `bm25`            | [`QueryMode::Sparse`]                                         |
//! | `dense`           | [`QueryMode::Dense`] (HNSW, `ef` = `max(ef, 100)`)            |
//! | `dense_exact`     | [`quiver_engine::Collection::search_exact`] (brute force)     |
//! | `hybrid_rrf`      | [`QueryMode::Hybrid`] with RRF (k = 60)                       |
//! | `hybrid_weighted` | [`QueryMode::Hybrid`] with min-max weighted fusion (`alpha`)  |
//! | `hybrid_rerank`   | `hybrid_rrf` with rerank: top N reranked, the rest after them |
//!
//! `results.<mode>` in the JSON holds `ndcg_at_10`, `recall_at_100`, `mrr_at_10` and
//! `latency_ms.<stage>.{p50,p99}` for the stages the mode uses (`embed`, `search`,
//! `rerank`). With peers, bm25s and sentence-transformers (same model directory, exact
//! search) rank the same texts and their rankings are scored by the same code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use quiver_core::{ChunkingConfig, CollectionConfig, Metadata, SyncPolicy};
use quiver_embed::{ModelRegistry, Precision, ServiceConfig};
use quiver_engine::models::{self, NewDocument};
use quiver_engine::{
    Collection, CollectionOptions, Database, DbOptions, Fusion, QueryMode, QueryPipeline,
    RerankRequest, SearchRequest,
};
use serde_json::{json, Map, Value};

use crate::beir::Dataset;
use crate::metrics::{percentile_ms, quality, Quality};
use crate::peers::Peers;
use crate::report::{fmt_num, table, Comparison, Report};
use crate::{BenchError, Result};

/// Ranking depth: Recall@100 needs 100 results.
const DEPTH: usize = 100;
/// Queries `--quick` keeps.
pub const QUICK_QUERIES: usize = 50;

/// What `quiver bench ir` was asked to do.
#[derive(Debug, Clone)]
pub struct IrOptions {
    pub dataset: PathBuf,
    /// Embedding model name (`org/name`, found under `data_dir/models`).
    pub model: String,
    pub reranker: Option<String>,
    pub data_dir: PathBuf,
    /// All documents, the first [`QUICK_QUERIES`] queries, no peers.
    pub quick: bool,
    /// Run the peers (ignored with `quick`).
    pub peers: Option<Peers>,
    /// Documents embedded per batch.
    pub batch: usize,
    /// Dense weight of `hybrid_weighted`.
    pub alpha: f32,
    /// Fused candidates the reranker scores.
    pub rerank_top: usize,
    /// HNSW search width (raised to 100).
    pub ef: usize,
    /// Draw progress bars.
    pub progress: bool,
    /// Precision our models load at.
    pub precision: Precision,
    /// Join every this many documents into one long one ([`Dataset::merge_docs`]).
    pub merge_docs: usize,
    /// Cut long texts into chunks as a collection does by default
    /// ([`ChunkingConfig::for_model`]); off embeds each text whole, truncated.
    pub chunking: bool,
}

impl IrOptions {
    /// Defaults for `dataset` and `model`.
    pub fn new(dataset: PathBuf, model: String) -> Self {
        IrOptions {
            dataset,
            model,
            reranker: None,
            data_dir: PathBuf::from("data"),
            quick: false,
            peers: None,
            batch: 32,
            alpha: 0.5,
            rerank_top: 50,
            ef: 128,
            progress: true,
            precision: Precision::F32,
            merge_docs: 1,
            chunking: true,
        }
    }
}

/// Per-mode rankings and stage timings.
#[derive(Debug, Default)]
struct ModeRun {
    rankings: Vec<Vec<String>>,
    search: Vec<Duration>,
    rerank: Vec<Duration>,
}

/// Fails early, with the fix, when a model is not installed.
pub fn require_model(data_dir: &Path, name: &str) -> Result<PathBuf> {
    quiver_embed::resolve::resolve(name, data_dir)
        .map(|l| l.path)
        .map_err(|e| {
            BenchError::InvalidInput(format!(
                "model {name} is not installed under {}/models ({e}); run scripts/fetch-models \
                 for the offline all-MiniLM-L6-v2, or `quiver models pull {name}`",
                data_dir.display()
            ))
        })
}

fn bar(progress: bool, len: usize, what: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} [{{wide_bar}}] {{human_pos}}/{{human_len}} {what}, {{per_sec}}, eta {{eta}}"
    )) {
        bar.set_style(style);
    }
    bar
}

/// Embeds and upserts every document; returns seconds taken.
fn ingest(
    registry: &ModelRegistry,
    col: &Collection,
    data: &Dataset,
    opts: &IrOptions,
) -> Result<f64> {
    let progress = bar(opts.progress, data.docs.len(), "docs");
    let start = Instant::now();
    for chunk in data.docs.chunks(opts.batch.max(1)) {
        let docs = chunk
            .iter()
            .map(|d| NewDocument {
                id: d.id.clone(),
                text: d.text.clone(),
                metadata: Metadata::new(),
                vector: None,
            })
            .collect();
        let docs = models::embed_documents(registry, &col.config(), docs)?;
        col.upsert(docs)?;
        progress.inc(chunk.len() as u64);
    }
    col.commit_text()?;
    progress.finish_and_clear();
    Ok(start.elapsed().as_secs_f64())
}

fn ids(hits: impl IntoIterator<Item = String>) -> Vec<String> {
    hits.into_iter().collect()
}

/// Runs the benchmark.
pub fn run(opts: &IrOptions) -> Result<Report> {
    let mut data = Dataset::load(&opts.dataset)?;
    data.merge_docs(opts.merge_docs);
    if opts.quick {
        data.truncate_queries(QUICK_QUERIES);
    }
    let model_dir = require_model(&opts.data_dir, &opts.model)?;
    if let Some(r) = &opts.reranker {
        require_model(&opts.data_dir, r)?;
    }
    let registry =
        ModelRegistry::new(&opts.data_dir, ServiceConfig::default()).with_precision(opts.precision);
    let embedder = registry.embedder(&opts.model)?;
    let width = embedder.width();
    let tmp = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
    let db = Database::open(
        tmp.path(),
        DbOptions {
            collection: CollectionOptions {
                sync: SyncPolicy::Never,
                ..CollectionOptions::default()
            },
        },
    )?;
    let mut config = CollectionConfig::new(width);
    config.embedding_model = Some(opts.model.clone());
    config.reranker_model = opts.reranker.clone();
    config.chunking = opts
        .chunking
        .then(|| ChunkingConfig::for_model(embedder.model().text_capacity()));
    let col = db.create_collection("bench", config)?;
    let ingest_s = ingest(&registry, &col, &data, opts)?;

    let mut embed_t = Vec::new();
    let mut runs: Vec<(&str, ModeRun)> = [
        "bm25",
        "dense",
        "dense_exact",
        "hybrid_rrf",
        "hybrid_weighted",
    ]
    .into_iter()
    .map(|m| (m, ModeRun::default()))
    .collect();
    let mut rerank_run = opts.reranker.as_ref().map(|_| ModeRun::default());
    let pipeline = QueryPipeline::new(&registry);
    let progress = bar(opts.progress, data.queries.len(), "queries");
    for q in &data.queries {
        let t = Instant::now();
        let vector = pipeline.embed_query(&col.config(), &q.text, None)?;
        embed_t.push(t.elapsed());
        let request = |mode: QueryMode, fusion: Fusion| SearchRequest {
            mode: Some(mode),
            vector: (mode != QueryMode::Sparse).then(|| vector.clone()),
            text: (mode != QueryMode::Dense).then(|| q.text.clone()),
            fusion,
            ef: Some(opts.ef.max(DEPTH)),
            // Rankings only: marking the words of 100 texts per query is not search.
            highlight: false,
            ..SearchRequest::new(DEPTH)
        };
        let rrf = Fusion::Rrf {
            k: quiver_engine::DEFAULT_RRF_K,
        };
        for (name, run) in runs.iter_mut() {
            let t = Instant::now();
            let ranking = match *name {
                "dense_exact" => ids(col.search_exact(&vector, DEPTH)?.into_iter().map(|h| h.id)),
                _ => {
                    let req = match *name {
                        "bm25" => request(QueryMode::Sparse, rrf),
                        "dense" => request(QueryMode::Dense, rrf),
                        "hybrid_weighted" => {
                            request(QueryMode::Hybrid, Fusion::Weighted { alpha: opts.alpha })
                        }
                        _ => request(QueryMode::Hybrid, rrf),
                    };
                    ids(pipeline.run(&col, &req)?.hits.into_iter().map(|h| h.id))
                }
            };
            run.search.push(t.elapsed());
            run.rankings.push(ranking);
        }
        if let Some(rr) = rerank_run.as_mut() {
            let req = SearchRequest {
                rerank: Some(RerankRequest {
                    candidates: opts.rerank_top,
                    instruction: None,
                }),
                ..request(QueryMode::Hybrid, rrf)
            };
            let t = Instant::now();
            let answer = pipeline.run(&col, &req)?;
            let total = t.elapsed();
            rr.search.push(total.saturating_sub(answer.timings.rerank));
            rr.rerank.push(answer.timings.rerank);
            rr.rankings.push(ids(answer.hits.into_iter().map(|h| h.id)));
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if let Some(rr) = rerank_run {
        runs.push(("hybrid_rerank", rr));
    }

    let judged: Vec<_> = data.queries.iter().map(|q| data.judgments(&q.id)).collect();
    let score = |rankings: &[Vec<String>]| {
        quality(
            rankings
                .iter()
                .map(Vec::as_slice)
                .zip(judged.iter().copied()),
        )
    };
    let lat =
        |d: &[Duration]| json!({"p50": percentile_ms(d, 50.0), "p99": percentile_ms(d, 99.0)});
    let mut results = Map::new();
    let mut rows = Vec::new();
    let mut ours: HashMap<&str, Quality> = HashMap::new();
    for (name, run) in &runs {
        let q = score(&run.rankings);
        ours.insert(name, q);
        let mut latency = Map::new();
        if *name != "bm25" {
            latency.insert("embed".into(), lat(&embed_t));
        }
        latency.insert("search".into(), lat(&run.search));
        if !run.rerank.is_empty() {
            latency.insert("rerank".into(), lat(&run.rerank));
        }
        let cell = |stage: &str| {
            latency.get(stage).map_or("-".to_string(), |v| {
                format!(
                    "{:.2} / {:.2}",
                    v["p50"].as_f64().unwrap_or(0.0),
                    v["p99"].as_f64().unwrap_or(0.0)
                )
            })
        };
        rows.push(vec![
            name.to_string(),
            format!("{:.4}", q.ndcg_at_10),
            format!("{:.4}", q.recall_at_100),
            format!("{:.4}", q.mrr_at_10),
            cell("embed"),
            cell("search"),
            cell("rerank"),
        ]);
        results.insert(
            name.to_string(),
            json!({
                "ndcg_at_10": q.ndcg_at_10,
                "recall_at_100": q.recall_at_100,
                "mrr_at_10": q.mrr_at_10,
                "latency_ms": latency,
            }),
        );
    }
    let merged = match opts.merge_docs {
        0 | 1 => String::new(),
        k => format!(", each joining {k} of the originals"),
    };
    let chunked = match col.config().chunking {
        Some(c) => format!(
            ", chunks of {} tokens ({} overlapping)",
            c.max_tokens, c.overlap_tokens
        ),
        None => ", texts embedded whole".to_string(),
    };
    let mut md = format!(
        "Dataset {} ({} documents{merged}, {} queries), model {}{chunked}, ingest {:.1} s ({:.1} docs/s)\n\n",
        data.dir.display(),
        data.docs.len(),
        data.queries.len(),
        opts.model,
        ingest_s,
        data.docs.len() as f64 / ingest_s.max(1e-9)
    );
    md.push_str(&table(
        &[
            "mode",
            "nDCG@10",
            "Recall@100",
            "MRR@10",
            "embed p50/p99 ms",
            "search p50/p99 ms",
            "rerank p50/p99 ms",
        ],
        &rows,
    ));
    let better = ours["bm25"].ndcg_at_10.max(ours["dense_exact"].ndcg_at_10);
    md.push_str(&format!(
        "\nhybrid_rrf nDCG@10 {} vs the better single mode {}: {}\n",
        fmt_num(ours["hybrid_rrf"].ndcg_at_10),
        fmt_num(better),
        if ours["hybrid_rrf"].ndcg_at_10 >= better {
            "at least as good"
        } else {
            "WORSE"
        }
    ));

    let (peer_json, comparison) = match (&opts.peers, opts.quick) {
        (Some(peers), false) => {
            let (v, c) = run_peers(peers, &data, &model_dir, &ours, &judged)?;
            (Some(v), c)
        }
        _ => (None, Vec::new()),
    };
    let parameters = json!({
        "dataset": data.dir,
        "documents": data.docs.len(),
        "merge_docs": opts.merge_docs.max(1),
        "chunking": col.config().chunking.map(|c| json!({
            "max_tokens": c.max_tokens,
            "overlap_tokens": c.overlap_tokens,
        })),
        "queries": data.queries.len(),
        "model": opts.model,
        "reranker": opts.reranker,
        "precision": format!("{:?}", opts.precision).to_lowercase(),
        "quick": opts.quick,
        "alpha": opts.alpha,
        "rrf_k": quiver_engine::DEFAULT_RRF_K,
        "rerank_top": opts.rerank_top,
        "ef": opts.ef.max(DEPTH),
        "batch": opts.batch,
        "ingest_seconds": ingest_s,
    });
    Ok(Report::new(
        "ir",
        parameters,
        Value::Object(results),
        peer_json,
        &comparison,
        md,
    ))
}

/// Runs bm25s and sentence-transformers on the same texts and compares.
fn run_peers(
    peers: &Peers,
    data: &Dataset,
    model_dir: &Path,
    ours: &HashMap<&str, Quality>,
    judged: &[&crate::beir::Judgments],
) -> Result<(Value, Vec<Comparison>)> {
    let work = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
    crate::peers::write_entries(&work.path().join("docs.jsonl"), &data.docs)?;
    crate::peers::write_entries(&work.path().join("queries.jsonl"), &data.queries)?;
    let args = vec![
        "--model-dir".to_string(),
        model_dir.display().to_string(),
        "--k".into(),
        DEPTH.to_string(),
    ];
    let mut answer = peers.run("ir", work.path(), &args)?;
    let mut comparison = Vec::new();
    let mut scored = Map::new();
    let pairs = [
        ("bm25s", "bm25"),
        ("sentence_transformers", "dense_exact"),
        ("sentence_transformers", "dense"),
    ];
    for (peer, mode) in pairs {
        let Some(run) = answer
            .pointer(&format!("/runs/{peer}"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let rankings: Vec<Vec<String>> = data
            .queries
            .iter()
            .map(|q| {
                run.get(&q.id)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let theirs = quality(
            rankings
                .iter()
                .map(Vec::as_slice)
                .zip(judged.iter().copied()),
        );
        scored.insert(peer.to_string(), serde_json::to_value(theirs)?);
        let o = ours[mode];
        comparison.push(Comparison::new(
            format!("{mode} nDCG@10 vs {peer}"),
            o.ndcg_at_10,
            Some(theirs.ndcg_at_10),
        ));
        comparison.push(Comparison::new(
            format!("{mode} Recall@100 vs {peer}"),
            o.recall_at_100,
            Some(theirs.recall_at_100),
        ));
        comparison.push(Comparison::new(
            format!("{mode} MRR@10 vs {peer}"),
            o.mrr_at_10,
            Some(theirs.mrr_at_10),
        ));
    }
    if let Some(obj) = answer.as_object_mut() {
        // Rankings are bulky; keep their scores instead.
        obj.remove("runs");
        obj.insert("scores".into(), Value::Object(scored));
    }
    Ok((answer, comparison))
}
