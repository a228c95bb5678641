//! The command-line client against a real server: collections, import (Quiver JSONL and
//! BEIR corpus lines), query, snapshot files, the ingest benchmark, and error reporting.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{doc, install, spawn};
use serde_json::{json, Value};

fn quiver(url: &str, key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .args(["--url", url])
        .env("QUIVER_API_KEY", key)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts the command failed and printed the server's `status`.
fn failed_with(out: &Output, status: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(status), "{err}");
}

/// A server that takes the key `cli-key`, and its URL.
fn keyed_server(tmp: &std::path::Path) -> (common::Server, String) {
    let s = spawn(&tmp.join("data"), &[("QUIVER_SERVER_API_KEYS", "cli-key")]);
    let url = format!("http://{}", s.addr);
    (s, url)
}

#[test]
fn cli_manages_imports_and_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spawn(
        &tmp.path().join("data"),
        &[
            ("QUIVER_SERVER_API_KEYS", "cli-key"),
            ("QUIVER_LIMITS_MAX_BATCH", "16"),
            ("QUIVER_STORAGE_TEXT_COMMIT_MS", "20"),
        ],
    );
    let url = format!("http://{}", s.addr);
    let key = "cli-key";

    let created = ok_json(&quiver(
        &url,
        key,
        &[
            "collections",
            "create",
            "docs",
            "--dim",
            "3",
            "--distance",
            "dot",
        ],
    ));
    assert_eq!(created["config"]["distance"], "dot");

    // 50 documents, batched by 16 (the server's limit) with --batch-size 16.
    let file = tmp.path().join("docs.jsonl");
    let mut lines = String::new();
    for i in 0..50 {
        let d = json!({"id": i, "text": format!("doc {i}"), "metadata": {"i": i},
            "vector": [i as f32, 1.0, 0.0]});
        lines.push_str(&format!("{d}\n\n"));
    }
    std::fs::write(&file, lines).unwrap();
    let out = quiver(
        &url,
        key,
        &[
            "import",
            "docs",
            file.to_str().unwrap(),
            "--batch-size",
            "16",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("imported 50 documents"), "{said}");

    let info = ok_json(&quiver(&url, key, &["collections", "get", "docs"]));
    assert_eq!(info["count"], 50);
    let list = ok_json(&quiver(&url, key, &["collections", "list"]));
    assert_eq!(list["collections"][0]["name"], "docs");

    // Dot product: the largest first component wins.
    let hits = ok_json(&quiver(
        &url,
        key,
        &[
            "query", "docs", "--vector", "1,0,0", "--top-k", "2", "--json",
        ],
    ));
    assert_eq!(hits["hits"][0]["id"], "49");
    assert_eq!(hits["hits"][1]["id"], "48");
    let filtered = ok_json(&quiver(
        &url,
        key,
        &[
            "query",
            "docs",
            "--vector",
            "[1, 0, 0]",
            "--top-k",
            "1",
            "--filter",
            r#"{"must": [{"key": "i", "range": {"lt": 10}}]}"#,
            "--json",
        ],
    ));
    assert_eq!(filtered["hits"][0]["id"], "9");
    // Without --json: one line per hit, best first.
    let out = quiver(
        &url,
        key,
        &["query", "docs", "--vector", "1,0,0", "--top-k", "2"],
    );
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("  1.") && lines[0].contains(" 49 "),
        "{table}"
    );
    assert!(
        lines[1].starts_with("  2.") && lines[1].contains(" 48 "),
        "{table}"
    );

    // BEIR lines carry no vectors: the server refuses them (no embedding model) and the
    // CLI reports the server's error and fails.
    let beir = tmp.path().join("corpus.jsonl");
    std::fs::write(&beir, r#"{"_id": "b1", "title": "T", "text": "body"}"#).unwrap();
    let out = quiver(&url, key, &["import", "docs", beir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("422") && err.contains("vector is required"),
        "{err}"
    );

    // Into a collection with an embedding model, BEIR lines are embedded on ingest
    // (title and text) and found by text, densely and by keyword.
    install(&s.data_dir, "qwen3-embed");
    let created = ok_json(&quiver(
        &url,
        key,
        &[
            "collections",
            "create",
            "papers",
            "--embedding-model",
            "test/qwen3-embed",
            "--dim",
            "32",
            "--chunk-tokens",
            "40",
        ],
    ));
    assert_eq!(created["config"]["dim"], 32);
    assert_eq!(created["config"]["chunking"]["max_tokens"], 40);
    assert_eq!(created["config"]["chunking"]["overlap_tokens"], 5);
    let whole = ok_json(&quiver(
        &url,
        key,
        &[
            "collections",
            "create",
            "whole",
            "--embedding-model",
            "test/qwen3-embed",
            "--no-chunking",
        ],
    ));
    assert!(whole["config"].get("chunking").is_none(), "{whole}");
    let papers = tmp.path().join("papers.jsonl");
    std::fs::write(
        &papers,
        concat!(
            r#"{"_id": "p1", "title": "Boundary layers", "text": "flow over a heated plate"}"#,
            "\n",
            r#"{"_id": "p2", "title": "Wing flutter", "text": "aeroelastic models at speed"}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = quiver(&url, key, &["import", "papers", papers.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dense = ok_json(&quiver(
        &url,
        key,
        &[
            "query", "papers", "--text", "flutter", "--mode", "dense", "--json",
        ],
    ));
    assert_eq!(dense["hits"].as_array().unwrap().len(), 2, "{dense}");
    let mut first = Value::Null;
    for _ in 0..100 {
        let sparse = ok_json(&quiver(
            &url,
            key,
            &[
                "query", "papers", "--text", "flutter", "--mode", "sparse", "--json",
            ],
        ));
        first = sparse["hits"][0]["id"].clone();
        if first == "p2" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(first, "p2");

    // A wrong key is reported, not retried.
    let out = quiver(&url, "wrong", &["collections", "list"]);
    failed_with(&out, "401");

    let deleted = ok_json(&quiver(&url, key, &["collections", "delete", "docs"]));
    assert_eq!(deleted["deleted"], true);
    let out = quiver(&url, key, &["collections", "get", "docs"]);
    failed_with(&out, "404");
}

#[test]
fn cli_snapshots_travel_through_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = keyed_server(tmp.path());
    let key = "cli-key";
    ok_json(&quiver(
        &url,
        key,
        &["collections", "create", "docs", "--dim", "4"],
    ));
    let file = tmp.path().join("docs.jsonl");
    let lines: String = (0..30)
        .map(|i| format!("{}\n", doc(&format!("d{i}"), i, 4)))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let out = quiver(&url, key, &["import", "docs", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let snap = &["snapshot", "--collection", "docs"];
    let run = |args: &[&str]| quiver(&url, key, &[snap, args].concat());
    let made = ok_json(&run(&["create", "--name", "s1", "--zstd"]));
    assert_eq!(made["name"], "s1", "{made}");
    let listed = ok_json(&run(&["list"]));
    assert!(listed.to_string().contains("\"s1\""), "{listed}");

    let file = tmp.path().join("s1.snapshot");
    let got = ok_json(&run(&[
        "download",
        "s1",
        "--output",
        file.to_str().unwrap(),
    ]));
    let bytes = std::fs::metadata(&file).unwrap().len();
    assert!(bytes > 0);
    assert_eq!(got["bytes"], bytes);

    // The file restores under a new name, with every document.
    let restored = ok_json(&run(&[
        "restore",
        "--file",
        file.to_str().unwrap(),
        "--target",
        "copy",
    ]));
    assert!(restored.to_string().contains("copy"), "{restored}");
    let info = ok_json(&quiver(&url, key, &["collections", "get", "copy"]));
    assert_eq!(info["count"], 30);

    // A missing snapshot is the server's 404, and no file is left behind.
    let missing = tmp.path().join("nope.snapshot");
    let out = run(&["download", "nope", "--output", missing.to_str().unwrap()]);
    failed_with(&out, "404");
    assert!(!missing.exists());
    // So is a bad key on the streamed transfers.
    let out = quiver(
        &url,
        "wrong",
        &[snap, &["restore", "--file", file.to_str().unwrap()][..]].concat(),
    );
    failed_with(&out, "401");
}

#[test]
fn bench_ingest_measures_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = keyed_server(tmp.path());
    let report = tmp.path().join("ingest.json");
    let out = quiver(
        &url,
        "cli-key",
        &[
            "bench",
            "ingest",
            "--docs",
            "300",
            "--embed-docs",
            "0",
            "--dim",
            "8",
            "--batch",
            "64",
            "--clients",
            "2",
            "--out",
            report.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("docs/s"), "{table}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let runs = report["results"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{report}");
    assert_eq!(runs[0]["mode"], "vectors");
    assert_eq!(runs[0]["documents"], 300);
    assert!(runs[0]["docs_per_s"].as_f64().unwrap() > 0.0);
    // The bench cleans up after itself.
    let list = ok_json(&quiver(&url, "cli-key", &["collections", "list"]));
    assert_eq!(list["collections"], json!([]), "{list}");
}
