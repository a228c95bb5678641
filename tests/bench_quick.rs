//! Retrieval-quality regression guard: runs the real binary's `quiver bench ir --quick` on
//! the Cranfield collection shipped in tests/data with the offline all-MiniLM-L6-v2 model,
//! and fails when any mode's nDCG@10 drops below the floor stored here.
//!
//! The floors sit a little under the figures measured when they were set (see each
//! entry); a change that lowers one is a quality regression, not noise: the run is
//! deterministic. The model comes from `scripts/fetch-models`; without it this test fails.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Model directory `scripts/fetch-models` installs.
const MODEL_DIR: &str = "data/models/sentence-transformers--all-MiniLM-L6-v2";

/// nDCG@10 floors per mode on the first 50 Cranfield queries. Set provisionally from the
/// peers' figures on the same 50 queries (bm25s 0.348, sentence-transformers 0.398, their
/// RRF 0.401) minus a margin; tighten them to just under Quiver's own measured figures.
const FLOORS: &[(&str, f64)] = &[
    ("bm25", 0.28),
    ("dense", 0.35),
    ("dense_exact", 0.35),
    ("hybrid_rrf", 0.35),
    ("hybrid_weighted", 0.30),
];

#[test]
fn quick_ir_bench_keeps_every_mode_above_its_floor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join(MODEL_DIR);
    assert!(
        model.join("model.safetensors").is_file() && model.join("tokenizer.json").is_file(),
        "the offline model is missing at {}: run scripts/fetch-models first",
        model.display()
    );
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("ir.json");
    let run = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(root)
        .args([
            "bench",
            "ir",
            "--quick",
            "--dataset",
            "tests/data/cranfield",
            "--data-dir",
            "data",
            "--out",
        ])
        .arg(&json)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "quiver bench ir --quick failed: {}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
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
