//! Stock clients against a real server, as their users write them: huggingface_hub's
//! text-embeddings-inference client (at `/embed` and at the server root) and the OpenAI
//! client, none of which names a model on its own (scripts/clients/tei_clients.py, run in
//! the pinned environment scripts/clients/run builds). Then how a request that names no
//! model finds one: the configured default, else the one installed model of its kind,
//! else a 422 that says which are installed; and the root route's rerank shape.
//!
//! The models are the committed random-weight fixtures: the checks compare what each
//! route answers with what `/embed` answers for a named model.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{install, spawn};
use serde_json::{json, Value};

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The message of an error answer, after checking its status.
fn message(r: &common::Resp, status: u16) -> String {
    r.expect_error(status);
    r.json()["error"]["message"].as_str().unwrap().to_string()
}

fn assert_same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "{what}: differs by {worst}");
}

#[test]
fn stock_clients_embed_without_naming_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    install(&data, "bert");
    let s = spawn(&data, &[]);
    let url = format!("http://{}", s.addr);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new(root.join("scripts/clients/run"))
        .arg(root.join("scripts/clients/tei_clients.py"))
        .args([url.as_str(), "test/bert"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "clients failed: {}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        s.log_text()
    );
    let got: Value = serde_json::from_slice(&run.stdout).unwrap();
    let named = s.req(
        "POST",
        "/embed",
        Some(&json!({"inputs": got["text"], "model": "test/bert"})),
    );
    assert_eq!(named.status, 200, "{}", named.text());
    let want = floats(&named.json()[0]);
    assert_eq!(want.len(), 32);
    for client in ["hf_embed", "hf_root", "openai"] {
        assert_same(client, &floats(&got[client]), &want);
    }
}

#[test]
fn requests_without_a_model_use_the_default_or_the_only_one_installed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    install(&data, "bert");
    install(&data, "qwen3-embed");
    let body = json!({"inputs": "hello there"});
    // Two embedders and no default: which one is the client's to say.
    let s = spawn(&data, &[]);
    for path in ["/embed", "/"] {
        let msg = message(&s.req("POST", path, Some(&body)), 422);
        assert!(
            msg.contains("test/bert") && msg.contains("test/qwen3-embed"),
            "{path}: {msg}"
        );
    }
    let rerank = json!({"query": "q", "texts": ["a", "b"]});
    let msg = message(&s.req("POST", "/", Some(&rerank)), 422);
    assert!(msg.contains("none installed"), "{msg}");
    // A body that is neither shape is refused as such, and the server stays up.
    let msg = message(&s.req("POST", "/", Some(&json!({"query": "q"}))), 400);
    assert!(msg.contains("inputs"), "{msg}");
    assert_eq!(s.req("GET", "/health", None).status, 200);
    drop(s);

    // The configured default answers; the one installed reranker answers the root's
    // rerank shape, best first.
    install(&data, "qwen3-rerank");
    let s = spawn(&data, &[("QUIVER_MODELS_EMBEDDING", "test/qwen3-embed")]);
    let by_default = s.req("POST", "/", Some(&body));
    assert_eq!(by_default.status, 200, "{}", by_default.text());
    let named = s.req(
        "POST",
        "/embed",
        Some(&json!({"inputs": "hello there", "model": "test/qwen3-embed"})),
    );
    assert_same(
        "default",
        &floats(&by_default.json()[0]),
        &floats(&named.json()[0]),
    );
    let ranked = s.req(
        "POST",
        "/",
        Some(&json!({"query": "q", "texts": ["a", "b", "c"]})),
    );
    assert_eq!(ranked.status, 200, "{}", ranked.text());
    let direct = s.req(
        "POST",
        "/rerank",
        Some(&json!({"query": "q", "texts": ["a", "b", "c"], "model": "test/qwen3-rerank"})),
    );
    assert_eq!(ranked.json(), direct.json());
    assert_eq!(ranked.json().as_array().unwrap().len(), 3);
}
