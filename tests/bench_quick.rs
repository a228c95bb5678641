//! Retrieval-quality regression guard: runs the real binary's `quiver bench ir --quick` on
//! the Cranfield collection shipped in tests/data with the offline all-MiniLM-L6-v2 model,
//! and fails when any mode's nDCG@10 drops below the floor stored here.
//!
//! The floors sit a little under the figures measured when they were set (see each
//! entry); a change that lowers one is a quality regression, not noise: the run is
//! deterministic. The model comes from `scripts/fetch-models`; without it this test fails.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use serde_json::{json, Value};

/// Model directory `scripts/fetch-models` installs.
const MODEL_DIR: &str = "data/models/sentence-transformers--all-MiniLM-L6-v2";

/// nDCG@10 floors per mode on the first 50 Cranfield queries, each just under the figure
/// measured on 2026-11-27 (in the comment). BM25 does the same arithmetic on every machine,
/// so its margin is small; the dense modes leave room for float differences between
/// CPUs' matmul kernels, which can swap near-tied neighbours.
const FLOORS: &[(&str, f64)] = &[
    ("bm25", 0.345),            // 0.3480
    ("dense", 0.39),            // 0.3979
    ("dense_exact", 0.39),      // 0.3979
    ("hybrid_rrf", 0.40),       // 0.4074
    ("hybrid_weighted", 0.405), // 0.4157
];

fn bench_ir(args: &[&std::ffi::OsStr]) -> (Value, String) {
    common::run_bench("ir", args)
}

#[test]
fn quick_ir_bench_keeps_every_mode_above_its_floor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join(MODEL_DIR);
    assert!(
        model.join("model.safetensors").is_file() && model.join("tokenizer.json").is_file(),
        "the offline model is missing at {}: run scripts/fetch-models first",
        model.display()
    );
    let args = [
        "--quick",
        "--dataset",
        "tests/data/cranfield",
        "--data-dir",
        "data",
    ];
    let (report, stdout) = bench_ir(&args.map(std::ffi::OsStr::new));
    assert_eq!(report["bench"], "ir");
    assert_eq!(report["parameters"]["queries"], 50);
    assert_eq!(report["parameters"]["documents"], 1400);
    let results = &report["results"];
    let mut failures = Vec::new();
    for &(mode, floor) in FLOORS {
        let r = &results[mode];
        let ndcg = r["ndcg_at_10"]
            .as_f64()
            .unwrap_or_else(|| panic!("no nDCG@10 for {mode}: {results}"));
        for key in ["recall_at_100", "mrr_at_10"] {
            let v = r[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{mode} {key} = {v}");
        }
        assert!(
            r["latency_ms"]["search"]["p99"].as_f64().is_some(),
            "{mode} has no search latency"
        );
        if ndcg < floor {
            failures.push(format!("{mode}: nDCG@10 {ndcg:.4} < floor {floor}"));
        }
    }
    assert!(
        failures.is_empty(),
        "quality regression:\n{}\n{stdout}",
        failures.join("\n")
    );
    // Without a reranker there is no rerank mode, and the table names every mode.
    assert!(results.get("hybrid_rerank").is_none());
    for &(mode, _) in FLOORS {
        assert!(stdout.contains(&format!("| {mode} |")), "{stdout}");
    }
}

/// Writes a small BEIR-layout dataset: `docs` documents, three queries, one relevant
/// document each.
fn write_dataset(dir: &Path, docs: &[&str]) {
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    let corpus: String = docs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{}\n",
                json!({"_id": format!("d{i}"), "title": "", "text": t})
            )
        })
        .collect();
    std::fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    let queries = ["wing flutter", "heat transfer", "shock wave"];
    let text: String = queries
        .iter()
        .enumerate()
        .map(|(i, q)| format!("{}\n", json!({"_id": format!("q{i}"), "text": q})))
        .collect();
    std::fs::write(dir.join("queries.jsonl"), text).unwrap();
    std::fs::write(
        dir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq0\td0\t2\nq1\td1\t2\nq2\td2\t1\n",
    )
    .unwrap();
}

/// `--reranker` adds the hybrid_rerank mode: the binary embeds with one model, reranks the
/// fused candidates with another (the small random-weight fixtures), and reports the mode
/// with its rerank latency. The reranker only reorders the fused list, so over a corpus
/// smaller than the candidate count it finds exactly the documents hybrid_rrf finds.
#[test]
fn reranker_adds_the_hybrid_rerank_mode() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    common::install(&data, "bert");
    common::install(&data, "qwen3-rerank");
    let dataset = work.path().join("beir");
    write_dataset(
        &dataset,
        &[
            "flutter of a swept wing at transonic speed",
            "heat transfer through a turbulent boundary layer",
            "a normal shock wave in a nozzle",
            "buckling of thin cylindrical shells",
            "laminar flow over a flat plate",
            "supersonic flow around a cone",
        ],
    );
    let (report, stdout) = bench_ir(&[
        "--model".as_ref(),
        "test/bert".as_ref(),
        "--reranker".as_ref(),
        "test/qwen3-rerank".as_ref(),
        "--dataset".as_ref(),
        dataset.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    let results = &report["results"];
    let rerank = &results["hybrid_rerank"];
    for key in ["ndcg_at_10", "recall_at_100", "mrr_at_10"] {
        let v = rerank[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no {key}: {results}"));
        assert!((0.0..=1.0).contains(&v), "hybrid_rerank {key} = {v}");
    }
    assert_eq!(
        rerank["recall_at_100"],
        results["hybrid_rrf"]["recall_at_100"]
    );
    assert!(
        rerank["latency_ms"]["rerank"]["p50"].as_f64().unwrap() > 0.0,
        "no rerank latency: {rerank}"
    );
    assert!(stdout.contains("| hybrid_rerank |"), "{stdout}");
}
