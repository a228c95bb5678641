//! Parity on real weights, ignored by default because it needs a real model folder:
//! `scripts/fetch-models`, then
//! `QUIVER_MINILM_DIR=data/models/sentence-transformers--all-MiniLM-L6-v2 cargo test -p
//! quiver-embed --test real_models -- --ignored`. Expected values come from
//! scripts/fixtures/generate.py --minilm-dir.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use quiver_embed::{BertEmbedder, TextEmbedder};
use support::{assert_close, fixtures, matrix, strings};

#[test]
#[ignore = "needs a real all-MiniLM-L6-v2 folder in QUIVER_MINILM_DIR"]
fn real_minilm_matches_reference() {
    let dir = std::env::var_os("QUIVER_MINILM_DIR")
        .map(PathBuf::from)
        .expect("set QUIVER_MINILM_DIR to an all-MiniLM-L6-v2 folder");
    assert!(
        dir.join("model.safetensors").is_file(),
        "no model.safetensors in {}",
        dir.display()
    );
    let text = std::fs::read_to_string(fixtures().join("minilm-expected.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(&text).unwrap();
    let model = BertEmbedder::load(&dir).unwrap();
    assert_eq!(model.width(), 384);
    let texts = strings(&want["texts"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = model.embed(&refs, None).unwrap();
    assert_close("real minilm batch", &got, &matrix(&want["embeddings"]));
}
