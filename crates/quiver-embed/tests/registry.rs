//! The model registry loads a model by name once and shares it.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use quiver_embed::{EmbedError, ModelRegistry, Priority, ServiceConfig};

/// A data directory whose `models/` holds the fixture models as `test/<fixture>`.
fn data_dir() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    for fixture in ["qwen3-embed", "qwen3-rerank", "bert"] {
        let built = support::model_dir(fixture);
        let dest = data.path().join("models").join(format!("test--{fixture}"));
        std::fs::create_dir_all(&dest).unwrap();
        for file in ["config.json", "tokenizer.json", "model.safetensors"] {
            std::fs::copy(built.path().join(file), dest.join(file)).unwrap();
        }
    }
    data
}

#[test]
fn loads_each_model_once_and_runs_it() {
    let data = data_dir();
    let registry = ModelRegistry::new(data.path(), ServiceConfig::default());

    let qwen = registry.embedder("test/qwen3-embed").unwrap();
    let again = registry.embedder("test/qwen3-embed").unwrap();
    assert!(
        Arc::ptr_eq(&qwen, &again),
        "second lookup must share the service"
    );
    let v = qwen
        .embed(&["hello world"], None, Priority::Bulk)
        .unwrap()
        .remove(0);
    assert_eq!(v.len(), qwen.width());
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");

    let bert = registry.embedder("test/bert").unwrap();
    assert_eq!(bert.embed(&["a b"], None, Priority::Bulk).unwrap().len(), 1);

    let rerank = registry.reranker("test/qwen3-rerank").unwrap();
    let scores = rerank.score("q", &["one", "two"], None).unwrap();
    assert_eq!(scores.len(), 2);
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));

    assert_eq!(
        registry.loaded(),
        ["test/bert", "test/qwen3-embed", "test/qwen3-rerank"]
    );
}

#[test]
fn unknown_and_mismatched_models_are_clear_errors() {
    let data = data_dir();
    let registry = ModelRegistry::new(data.path(), ServiceConfig::default());
    let missing = registry.embedder("nobody/nothing").unwrap_err();
    assert!(
        matches!(missing, EmbedError::NotAvailable { .. }),
        "{missing}"
    );
    // A BERT model cannot rerank.
    let wrong = registry.reranker("test/bert").unwrap_err();
    assert!(wrong.to_string().contains("bert"), "{wrong}");
}
