//! Parity on real weights: all-MiniLM-L6-v2 as `scripts/fetch-models` installs it
//! (`scripts/test` runs that first), or the folder in `QUIVER_MINILM_DIR`. Expected
//! values come from scripts/fixtures/generate.py --minilm-dir.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use quiver_embed::{BertEmbedder, ModelOptions, Precision, TextEmbedder};
use support::{assert_close, fixtures, matrix, strings};

#[test]
fn real_minilm_matches_reference() {
    let dir = std::env::var_os("QUIVER_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../data/models/sentence-transformers--all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "no model.safetensors in {}: run scripts/fetch-models (or set QUIVER_MINILM_DIR)",
        dir.display()
    );
    let text = std::fs::read_to_string(fixtures().join("minilm-expected.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(&text).unwrap();
    let texts = strings(&want["texts"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // The default runs products of 32+ rows on AMX where the CPU has it; "highest"
    // never does.
    for precision in [Precision::F32, Precision::F32Highest] {
        let options = ModelOptions {
            precision,
            ..ModelOptions::default()
        };
        let model = BertEmbedder::load_with(&dir, options).unwrap();
        assert_eq!(model.width(), 384);
        let got = model.embed(&refs, None).unwrap();
        let label = format!("real minilm batch, {precision:?}");
        assert_close(&label, &got, &matrix(&want["embeddings"]));
    }
}
