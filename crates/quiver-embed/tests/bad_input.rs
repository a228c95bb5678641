//! Bad input and broken model directories: empty text and over-long text work, invalid
//! widths and broken files fail with errors that name the culprit.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use quiver_embed::{
    BertEmbedder, EmbedError, ModelOptions, Qwen3Embedder, Qwen3Reranker, Reranker, TextEmbedder,
};
use support::model_dir;

const EOS: u32 = 151643;

fn small(max: usize) -> ModelOptions {
    ModelOptions {
        max_length: Some(max),
        ..ModelOptions::default()
    }
}

/// Asserts `err` is a `ModelFile` error about a file named `file`, and returns its reason.
fn model_file_error(err: EmbedError, file: &str) -> String {
    match err {
        EmbedError::ModelFile { path, reason } => {
            assert_eq!(
                path.file_name().and_then(|n| n.to_str()),
                Some(file),
                "{reason}"
            );
            reason
        }
        other => panic!("expected a ModelFile error about {file}, got {other}"),
    }
}

#[test]
fn empty_and_long_texts_embed() {
    let dir = model_dir("qwen3-embed");
    let model = Qwen3Embedder::load_with(dir.path(), small(16)).unwrap();
    assert_eq!(model.tokenize("", None).unwrap(), vec![EOS]);
    let long = "word ".repeat(500);
    let ids = model.tokenize(&long, None).unwrap();
    assert_eq!(ids.len(), 16);
    assert_eq!(ids.last(), Some(&EOS), "truncation keeps <|endoftext|>");
    assert_eq!(model.count_tokens(&long, Some("task")).unwrap(), 16);
    let out = model.embed(&["", &long], None).unwrap();
    for v in &out {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert!(model.embed(&[], None).unwrap().is_empty());
}

#[test]
fn invalid_dims_are_refused() {
    let dir = model_dir("qwen3-embed");
    let model = Qwen3Embedder::load(dir.path()).unwrap();
    for dim in [0, 31, 65, 1000] {
        let err = model.embed_dim(&["x"], None, dim).unwrap_err();
        assert!(
            matches!(err, EmbedError::InvalidInput(_)),
            "dim {dim}: {err}"
        );
    }
    assert_eq!(model.embed_dim(&["x"], None, 32).unwrap()[0].len(), 32);
}

#[test]
fn reranker_truncates_body_and_accepts_no_docs() {
    let dir = model_dir("qwen3-rerank");
    let model = Qwen3Reranker::load_with(dir.path(), small(80)).unwrap();
    let long = "lorem ipsum ".repeat(300);
    let ids = model.tokenize("q", &long, None).unwrap();
    assert_eq!(ids.len(), 80);
    let full = Qwen3Reranker::load(dir.path()).unwrap();
    let untruncated = full.tokenize("q", &long, None).unwrap();
    // Prefix and suffix survive whole; only the body was cut.
    assert_eq!(ids[..30], untruncated[..30]);
    assert_eq!(ids[ids.len() - 9..], untruncated[untruncated.len() - 9..]);
    let scores = model.score("q", &[&long, ""], Some("custom")).unwrap();
    assert!(scores
        .iter()
        .all(|s| s.is_finite() && (0.0..=1.0).contains(s)));
    assert!(model.score("q", &[], None).unwrap().is_empty());
}

#[test]
fn a_budget_with_no_room_for_text_is_refused() {
    let dir = model_dir("qwen3-rerank");
    let err = Qwen3Reranker::load_with(dir.path(), small(20)).unwrap_err();
    assert!(matches!(err, EmbedError::InvalidInput(_)), "{err}");
}

#[test]
fn missing_files_are_named() {
    for (file, broken) in [
        ("config.json", "config.json"),
        ("tokenizer.json", "tokenizer.json"),
        ("model.safetensors", "model.safetensors"),
    ] {
        let dir = model_dir("qwen3-embed");
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let err = Qwen3Embedder::load(dir.path()).unwrap_err();
        model_file_error(err, broken);
        let bert = model_dir("bert");
        std::fs::remove_file(bert.path().join(file)).unwrap();
        model_file_error(BertEmbedder::load(bert.path()).unwrap_err(), broken);
    }
}

#[test]
fn missing_shard_is_named() {
    let dir = model_dir("qwen3-embed");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let index = r#"{"weight_map": {"embed_tokens.weight": "model-00001-of-00002.safetensors"}}"#;
    std::fs::write(dir.path().join("model.safetensors.index.json"), index).unwrap();
    let err = Qwen3Embedder::load(dir.path()).unwrap_err();
    model_file_error(err, "model-00001-of-00002.safetensors");
    let escaping = r#"{"weight_map": {"embed_tokens.weight": "../elsewhere.safetensors"}}"#;
    std::fs::write(dir.path().join("model.safetensors.index.json"), escaping).unwrap();
    let err = Qwen3Embedder::load(dir.path()).unwrap_err();
    model_file_error(err, "model.safetensors.index.json");
}

#[test]
fn corrupt_and_mismatched_weights_are_named() {
    let dir = model_dir("qwen3-embed");
    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    model_file_error(
        Qwen3Embedder::load(dir.path()).unwrap_err(),
        "model.safetensors",
    );

    // Weights of a 64-wide model under a config that says 32.
    let dir = model_dir("qwen3-embed");
    rewrite_config(dir.path(), "\"hidden_size\": 64", "\"hidden_size\": 32");
    let reason = model_file_error(
        Qwen3Embedder::load(dir.path()).unwrap_err(),
        "model.safetensors",
    );
    assert!(reason.contains("embed_tokens.weight"), "{reason}");

    // An embedding checkpoint is not a reranker without an LM head: tie flag off.
    let dir = model_dir("qwen3-embed");
    rewrite_config(
        dir.path(),
        "\"tie_word_embeddings\": true",
        "\"tie_word_embeddings\": false",
    );
    let reason = model_file_error(
        Qwen3Reranker::load(dir.path()).unwrap_err(),
        "model.safetensors",
    );
    assert!(reason.contains("lm_head"), "{reason}");
}

#[test]
fn unsupported_configs_are_refused() {
    let dir = model_dir("qwen3-embed");
    rewrite_config(
        dir.path(),
        "\"rope_type\": \"default\"",
        "\"rope_type\": \"yarn\"",
    );
    model_file_error(Qwen3Embedder::load(dir.path()).unwrap_err(), "config.json");
    let dir = model_dir("qwen3-embed");
    std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
    model_file_error(Qwen3Embedder::load(dir.path()).unwrap_err(), "config.json");
}

fn rewrite_config(dir: &Path, from: &str, to: &str) {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "fixture config lacks {from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}
