//! The command-line client against a real server: collections, import (Quiver JSONL and
//! BEIR corpus lines), query, and error reporting.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{install, spawn};
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
        ],
    ));
    assert_eq!(created["config"]["dim"], 32);
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
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    let deleted = ok_json(&quiver(&url, key, &["collections", "delete", "docs"]));
    assert_eq!(deleted["deleted"], true);
    let out = quiver(&url, key, &["collections", "get", "docs"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}
