//! `quiver bench embed`: model throughput, tokens/s for the embedder and pairs/s for the
//! reranker, over a grid of batch sizes and input lengths, against PyTorch/transformers on
//! the same model directory and the same texts.
//!
//! The model runs directly (no batching service, no cache), so the figure is the model's
//! own speed. Each cell runs once to warm up, then repeatedly until `min_seconds` have
//! passed (at most `max_runs` times). Token counts are the model's own (after truncation).
//! The grid is measured `rounds` times, each round followed by the peer's, and each side's
//! fastest round per cell is the figure compared: on a shared machine a neighbour's load
//! moves single runs by a third, and alternating puts a slow spell on both sides.
//!
//! `results.embed` rows: `{batch, length, tokens, seconds, tokens_per_s, rounds_seconds}`;
//! `results.rerank` rows: `{batch, length, seconds, pairs_per_s, rounds_seconds}`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use quiver_embed::{ModelRegistry, Precision, ServiceConfig};
use serde_json::{json, Map, Value};

use crate::peers::Peers;
use crate::report::{fmt_num, table, Comparison, Report};
use crate::{BenchError, Result};

/// What `quiver bench embed` was asked to do.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    pub model: String,
    pub reranker: Option<String>,
    pub data_dir: PathBuf,
    pub batches: Vec<usize>,
    pub lengths: Vec<usize>,
    pub min_seconds: f64,
    pub max_runs: usize,
    /// Times the grid is measured, alternating with the peer; the fastest round counts.
    pub rounds: usize,
    pub peers: Option<Peers>,
    /// Precision our models load at (the peer always runs float32).
    pub precision: Precision,
}

impl EmbedOptions {
    pub fn new(model: String) -> Self {
        EmbedOptions {
            model,
            reranker: None,
            data_dir: PathBuf::from("data"),
            batches: vec![1, 8, 32],
            lengths: vec![32, 128, 256],
            min_seconds: 2.0,
            max_runs: 10,
            rounds: 3,
            peers: None,
            precision: Precision::F32,
        }
    }
}

const WORDS: &[&str] = &[
    "the",
    "vector",
    "database",
    "stores",
    "documents",
    "and",
    "answers",
    "queries",
    "with",
    "nearest",
    "neighbours",
    "while",
    "embedding",
    "models",
    "turn",
    "plain",
    "text",
    "into",
    "points",
    "in",
    "space",
    "boundary",
    "layer",
    "flow",
    "pressure",
    "wing",
];

/// Words `offset..` of the list, wrapped, until the text is `len` tokens long for `count`.
fn text_of_tokens(
    len: usize,
    offset: usize,
    count: impl Fn(&str) -> Result<usize>,
) -> Result<String> {
    let mut words = Vec::new();
    let mut i = offset;
    loop {
        words.push(WORDS[i % WORDS.len()]);
        i += 1;
        let text = words.join(" ");
        if count(&text)? >= len || words.len() > len * 2 {
            return Ok(text);
        }
    }
}

fn timed(min_seconds: f64, max_runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let (mut runs, start) = (0u32, Instant::now());
    loop {
        f()?;
        runs += 1;
        let s = start.elapsed().as_secs_f64();
        if s >= min_seconds || runs as usize >= max_runs.max(1) {
            return Ok(s / f64::from(runs));
        }
    }
}

fn shape(batch: usize, length: usize) -> String {
    format!("{batch}x{length}")
}

/// One cell of the grid: its texts, made once so every round measures the same work,
/// and the seconds per call each round took.
struct Cell {
    batch: usize,
    length: usize,
    texts: Vec<String>,
    seconds: Vec<f64>,
}

impl Cell {
    /// The fastest round: noise on a shared machine only ever slows a run down.
    fn best(&self) -> f64 {
        self.seconds.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// Runs the benchmark.
pub fn run(opts: &EmbedOptions) -> Result<Report> {
    let model_dir = crate::ir::require_model(&opts.data_dir, &opts.model)?;
    let registry =
        ModelRegistry::new(&opts.data_dir, ServiceConfig::default()).with_precision(opts.precision);
    let model = std::sync::Arc::clone(registry.embedder(&opts.model)?.model());
    let mut cells = Vec::new();
    let mut tokens = Vec::new();
    for &batch in &opts.batches {
        for &length in &opts.lengths {
            let texts: Vec<String> = (0..batch)
                .map(|i| text_of_tokens(length, i * 7, |t| Ok(model.count_tokens(t, None)?)))
                .collect::<Result<_>>()?;
            tokens.push(
                texts
                    .iter()
                    .map(|t| model.count_tokens(t, None))
                    .sum::<quiver_embed::Result<usize>>()?,
            );
            cells.push(Cell {
                batch,
                length,
                texts,
                seconds: Vec::new(),
            });
        }
    }
    let query = "which wing shapes reduce drag at high speed";
    let mut rerank_cells = Vec::new();
    let reranker = match &opts.reranker {
        Some(name) => {
            crate::ir::require_model(&opts.data_dir, name)?;
            let rr = std::sync::Arc::clone(registry.reranker(name)?.model());
            for &batch in &opts.batches {
                for &length in &opts.lengths {
                    let texts: Vec<String> = (0..batch)
                        .map(|i| {
                            text_of_tokens(length, i * 5, |t| Ok(rr.count_tokens(query, t, None)?))
                        })
                        .collect::<Result<_>>()?;
                    rerank_cells.push(Cell {
                        batch,
                        length,
                        texts,
                        seconds: Vec::new(),
                    });
                }
            }
            Some(rr)
        }
        None => None,
    };
    let mut work_embed = Map::new();
    for cell in &cells {
        work_embed.insert(shape(cell.batch, cell.length), json!(cell.texts));
    }
    let work_rerank = rerank_cells.last().map_or(
        Value::Null,
        |c| json!({"query": query, "docs": c.texts, "instruction": null}),
    );
    let work = json!({"embed": work_embed, "rerank": work_rerank});

    // Rounds alternate ours and the peer's, so a slow spell of a shared machine
    // falls on both sides; each side's fastest round counts.
    let mut peer_rounds = Vec::new();
    for round in 1..=opts.rounds.max(1) {
        for (cell, &tokens) in cells.iter_mut().zip(&tokens) {
            let refs: Vec<&str> = cell.texts.iter().map(String::as_str).collect();
            let seconds = timed(opts.min_seconds, opts.max_runs, || {
                model.embed(&refs, None)?;
                Ok(())
            })?;
            eprintln!(
                "round {round} embed {}: {:.0} tokens/s",
                shape(cell.batch, cell.length),
                tokens as f64 / seconds
            );
            cell.seconds.push(seconds);
        }
        if let Some(rr) = &reranker {
            for cell in &mut rerank_cells {
                let refs: Vec<&str> = cell.texts.iter().map(String::as_str).collect();
                let seconds = timed(opts.min_seconds, opts.max_runs, || {
                    rr.score(query, &refs, None)?;
                    Ok(())
                })?;
                eprintln!(
                    "round {round} rerank {}: {:.1} pairs/s",
                    shape(cell.batch, cell.length),
                    cell.batch as f64 / seconds
                );
                cell.seconds.push(seconds);
            }
        }
        if let Some(p) = &opts.peers {
            peer_rounds.push(run_peer(p, &model_dir, &work, opts)?);
        }
    }
    let ours: Vec<Value> = cells
        .iter()
        .zip(&tokens)
        .map(|(c, &tokens)| {
            json!({"batch": c.batch, "length": c.length, "tokens": tokens, "seconds": c.best(),
                   "tokens_per_s": tokens as f64 / c.best(), "rounds_seconds": c.seconds})
        })
        .collect();
    let rerank_rows: Vec<Value> = rerank_cells
        .iter()
        .map(|c| {
            json!({"batch": c.batch, "length": c.length, "seconds": c.best(),
                   "pairs_per_s": c.batch as f64 / c.best(), "rounds_seconds": c.seconds})
        })
        .collect();
    let peer = best_peer_round(peer_rounds);
    let mut comparison = Vec::new();
    let mut rows = Vec::new();
    for r in &ours {
        let ours_tps = r["tokens_per_s"].as_f64().unwrap_or(0.0);
        let key = shape(
            r["batch"].as_u64().unwrap_or(0) as usize,
            r["length"].as_u64().unwrap_or(0) as usize,
        );
        let theirs = peer.as_ref().and_then(|p| {
            let e = p.pointer(&format!("/embed/{key}"))?;
            Some(e.get("tokens")?.as_f64()? / e.get("seconds")?.as_f64()?)
        });
        rows.push(vec![
            key.clone(),
            r["tokens"].to_string(),
            fmt_num(ours_tps),
            theirs.map_or("-".into(), fmt_num),
        ]);
        comparison.push(Comparison::new(
            format!("embed {key} tokens/s vs transformers"),
            ours_tps,
            theirs,
        ));
    }
    let mut md = format!(
        "Embedder {} (direct model calls, {} threads; each side's fastest of {} alternating rounds)\n\n",
        opts.model,
        crate::machine::cores(),
        opts.rounds.max(1)
    );
    md.push_str(&table(
        &[
            "batch x length",
            "tokens",
            "tokens/s ours",
            "tokens/s transformers",
        ],
        &rows,
    ));
    if !rerank_rows.is_empty() {
        let rows: Vec<Vec<String>> = rerank_rows
            .iter()
            .map(|r| {
                vec![
                    format!("{}x{}", r["batch"], r["length"]),
                    fmt_num(r["pairs_per_s"].as_f64().unwrap_or(0.0)),
                ]
            })
            .collect();
        md.push_str(&format!(
            "\nReranker {}\n\n",
            opts.reranker.as_deref().unwrap_or("")
        ));
        md.push_str(&table(&["batch x length", "pairs/s ours"], &rows));
        if let Some(p) = peer.as_ref().and_then(|p| p.get("rerank")) {
            let pairs = p.get("pairs").and_then(Value::as_f64).unwrap_or(0.0);
            let secs = p.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
            let ours_last = rerank_rows
                .last()
                .and_then(|r| r["pairs_per_s"].as_f64())
                .unwrap_or(0.0);
            comparison.push(Comparison::new(
                "rerank pairs/s (largest cell) vs transformers",
                ours_last,
                (secs > 0.0).then(|| pairs / secs),
            ));
        }
    }
    let parameters = json!({
        "model": opts.model, "reranker": opts.reranker, "batches": opts.batches, "lengths": opts.lengths,
        "min_seconds": opts.min_seconds, "max_runs": opts.max_runs, "rounds": opts.rounds, "threads": crate::machine::cores(),
        "precision": format!("{:?}", opts.precision).to_lowercase(),
    });
    let results = json!({"embed": ours, "rerank": rerank_rows});
    Ok(Report::new(
        "embed",
        parameters,
        results,
        peer,
        &comparison,
        md,
    ))
}

/// The peer's answer with each cell's fastest round (`embed.<cell>` and `rerank` keep
/// the entry of fewest seconds); every round's answer is kept under `rounds`.
fn best_peer_round(rounds: Vec<Value>) -> Option<Value> {
    let seconds = |v: &Value| v.get("seconds").and_then(Value::as_f64).unwrap_or(f64::MAX);
    let mut best = rounds.first()?.clone();
    for round in &rounds[1..] {
        if let (Some(Value::Object(into)), Some(Value::Object(from))) =
            (best.get_mut("embed"), round.get("embed"))
        {
            for (cell, v) in from {
                match into.get(cell) {
                    Some(have) if seconds(have) <= seconds(v) => {}
                    _ => {
                        into.insert(cell.clone(), v.clone());
                    }
                }
            }
        }
        if let Some(v) = round.get("rerank").filter(|v| !v.is_null()) {
            if best
                .get("rerank")
                .is_none_or(|have| seconds(have) > seconds(v))
            {
                best["rerank"] = v.clone();
            }
        }
    }
    best["rounds"] = Value::Array(rounds);
    Some(best)
}

fn run_peer(peers: &Peers, model_dir: &Path, work: &Value, opts: &EmbedOptions) -> Result<Value> {
    let dir = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
    let file = dir.path().join("work.json");
    std::fs::write(&file, serde_json::to_vec(work)?).map_err(|e| BenchError::io(&file, e))?;
    let args = vec![
        "--model-dir".to_string(),
        model_dir.display().to_string(),
        "--threads".into(),
        crate::machine::cores().to_string(),
        "--min-seconds".into(),
        opts.min_seconds.to_string(),
        "--max-runs".into(),
        opts.max_runs.to_string(),
    ];
    peers.run("embed", dir.path(), &args)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_counts_its_fastest_round_per_cell() {
        let round = |a: f64, b: f64, r: Value| {
            json!({"embed": {"1x32": {"tokens": 32, "seconds": a}, "8x32": {"tokens": 256, "seconds": b}},
                   "rerank": r})
        };
        let best = best_peer_round(vec![
            round(0.5, 0.1, Value::Null),
            round(0.2, 0.3, json!({"pairs": 8, "seconds": 2.0})),
            round(0.4, 0.2, json!({"pairs": 8, "seconds": 1.5})),
        ])
        .unwrap();
        assert_eq!(best["embed"]["1x32"]["seconds"], 0.2);
        assert_eq!(best["embed"]["8x32"]["seconds"], 0.1);
        assert_eq!(best["rerank"]["seconds"], 1.5);
        assert_eq!(best["rounds"].as_array().unwrap().len(), 3);
        assert!(best_peer_round(Vec::new()).is_none());
    }

    #[test]
    fn texts_grow_to_the_wanted_length() {
        let words = |t: &str| Ok(t.split(' ').count());
        let t = text_of_tokens(5, 0, words).unwrap();
        assert_eq!(t, "the vector database stores documents");
        let t = text_of_tokens(2, WORDS.len() - 1, words).unwrap();
        assert_eq!(t, "wing the");
    }

    #[test]
    fn timed_runs_at_least_once_and_stops_at_max_runs() {
        let mut calls = 0;
        let s = timed(100.0, 3, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 4, "one warm-up and three timed runs");
        assert!(s >= 0.0);
    }
}
