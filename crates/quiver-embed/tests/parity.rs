//! Parity with the reference implementation (transformers, eager attention, float32) on
//! the committed random-weight fixtures: token ids must be equal, and embeddings (full
//! width and two Matryoshka widths), reranker scores and BERT embeddings must agree within
//! 1e-4, both for single inputs and for padded batches of very different lengths.
//! The fixtures come from scripts/fixtures/generate.py.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::OnceLock;

use quiver_embed::{
    BertEmbedder, ModelOptions, Qwen3Embedder, Qwen3Reranker, Reranker, TextEmbedder, TextTokenizer,
};
use serde_json::Value;
use support::{assert_close, expected, floats, ids, matrix, model_dir, strings};
use tempfile::TempDir;

fn expect() -> &'static Value {
    static E: OnceLock<Value> = OnceLock::new();
    E.get_or_init(expected)
}

fn options(section: &str) -> ModelOptions {
    let max = expect()[section]["max_length"].as_u64().unwrap();
    ModelOptions {
        max_length: Some(usize::try_from(max).unwrap()),
        ..ModelOptions::default()
    }
}

fn embedder() -> &'static (TempDir, Qwen3Embedder) {
    static M: OnceLock<(TempDir, Qwen3Embedder)> = OnceLock::new();
    M.get_or_init(|| {
        let dir = model_dir("qwen3-embed");
        let model = Qwen3Embedder::load_with(dir.path(), options("embed")).unwrap();
        (dir, model)
    })
}

fn reranker() -> &'static (TempDir, Qwen3Reranker) {
    static M: OnceLock<(TempDir, Qwen3Reranker)> = OnceLock::new();
    M.get_or_init(|| {
        let dir = model_dir("qwen3-rerank");
        let model = Qwen3Reranker::load_with(dir.path(), options("rerank")).unwrap();
        (dir, model)
    })
}

fn bert() -> &'static (TempDir, BertEmbedder) {
    static M: OnceLock<(TempDir, BertEmbedder)> = OnceLock::new();
    M.get_or_init(|| {
        let dir = model_dir("bert");
        let model = BertEmbedder::load_with(dir.path(), options("bert")).unwrap();
        (dir, model)
    })
}

#[test]
fn qwen3_token_ids_match_reference() {
    let (dir, model) = embedder();
    let raw = TextTokenizer::from_file(&dir.path().join("tokenizer.json"), 1 << 20).unwrap();
    let cases = expect()["tokens"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            raw.encode_plain(text).unwrap(),
            ids(&case["raw_ids"]),
            "raw ids of {text:?}"
        );
        let embed_ids = model.tokenize(text, None).unwrap();
        assert_eq!(
            embed_ids,
            ids(&case["embed_ids"]),
            "embedding ids of {text:?}"
        );
        assert_eq!(embed_ids.last(), Some(&151643), "ends with <|endoftext|>");
    }
}

#[test]
fn qwen3_embeddings_match_reference() {
    let (_dir, model) = embedder();
    let embed = &expect()["embed"];
    assert_eq!(model.width(), 64);
    for case in embed["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let inputs = strings(&case["inputs"]);
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let task = case["task"].as_str();
        let counts: Vec<usize> = refs
            .iter()
            .map(|t| model.count_tokens(t, task).unwrap())
            .collect();
        let want_counts: Vec<usize> = ids(&case["token_counts"])
            .iter()
            .map(|&n| n as usize)
            .collect();
        assert_eq!(counts, want_counts, "{name}: token counts");

        let batch = model.embed(&refs, task).unwrap();
        assert_close(&format!("{name} batch"), &batch, &matrix(&case["batch"]));
        let single: Vec<Vec<f32>> = refs
            .iter()
            .map(|t| model.embed(&[t], task).unwrap().remove(0))
            .collect();
        assert_close(&format!("{name} single"), &single, &matrix(&case["single"]));
        for (dim, want) in case["mrl"].as_object().unwrap() {
            let dim: usize = dim.parse().unwrap();
            let got = model.embed_dim(&refs, task, dim).unwrap();
            assert!(got.iter().all(|v| v.len() == dim));
            assert_close(&format!("{name} mrl {dim}"), &got, &matrix(want));
        }
    }
}

#[test]
fn qwen3_reranker_scores_match_reference() {
    let (_dir, model) = reranker();
    for (n, case) in expect()["rerank"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let query = case["query"].as_str().unwrap();
        let instruction = case["instruction"].as_str();
        let docs = strings(&case["docs"]);
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        for (doc, want) in refs.iter().zip(case["token_ids"].as_array().unwrap()) {
            assert_eq!(
                model.tokenize(query, doc, instruction).unwrap(),
                ids(want),
                "ids of {doc:?}"
            );
            assert_eq!(
                model.count_tokens(query, doc, instruction).unwrap(),
                want.as_array().unwrap().len()
            );
        }
        let batch = model.score(query, &refs, instruction).unwrap();
        assert_close(
            &format!("rerank case {n} batch"),
            std::slice::from_ref(&batch),
            &[floats(&case["batch"])],
        );
        let single: Vec<f32> = refs
            .iter()
            .map(|d| model.score(query, &[d], instruction).unwrap()[0])
            .collect();
        assert_close(
            &format!("rerank case {n} single"),
            &[single],
            &[floats(&case["single"])],
        );
        assert!(batch.iter().all(|s| (0.0..=1.0).contains(s)));
    }
}

#[test]
fn bert_embeddings_match_reference() {
    let (_dir, model) = bert();
    let b = &expect()["bert"];
    let texts = strings(&b["texts"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for (text, want) in refs.iter().zip(b["token_ids"].as_array().unwrap()) {
        assert_eq!(model.tokenize(text).unwrap(), ids(want), "ids of {text:?}");
    }
    // The task is ignored by BERT models.
    let batch = model.embed(&refs, Some("ignored")).unwrap();
    assert_close("bert batch", &batch, &matrix(&b["batch"]));
    let single: Vec<Vec<f32>> = refs
        .iter()
        .map(|t| model.embed(&[t], None).unwrap().remove(0))
        .collect();
    assert_close("bert single", &single, &matrix(&b["single"]));
}

/// The default precision runs products of 32+ rows on AMX where the CPU has it (the tests
/// above); "highest" never does, and matches the reference as closely.
#[test]
fn highest_precision_matches_reference() {
    let highest = |section: &str| ModelOptions {
        precision: quiver_embed::Precision::F32Highest,
        ..options(section)
    };
    let qwen_dir = model_dir("qwen3-embed");
    let qwen = Qwen3Embedder::load_with(qwen_dir.path(), highest("embed")).unwrap();
    for case in expect()["embed"]["cases"].as_array().unwrap() {
        let inputs = strings(&case["inputs"]);
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let got = qwen.embed(&refs, case["task"].as_str()).unwrap();
        let name = case["name"].as_str().unwrap();
        assert_close(
            &format!("{name} batch, highest"),
            &got,
            &matrix(&case["batch"]),
        );
        let default = embedder().1.embed(&refs, case["task"].as_str()).unwrap();
        for (x, y) in got.iter().zip(&default) {
            let cos = cosine(x, y);
            println!("{name}: cosine of highest to default {cos:.9}");
            assert!(cos > 0.9999, "{name}: cosine {cos}");
        }
    }
    let bert_dir = model_dir("bert");
    let small = BertEmbedder::load_with(bert_dir.path(), highest("bert")).unwrap();
    let b = &expect()["bert"];
    let texts = strings(&b["texts"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = small.embed(&refs, None).unwrap();
    assert_close("bert batch, highest", &got, &matrix(&b["batch"]));
}

/// The same weights split over two shards with an index load to the same model.
#[test]
fn sharded_checkpoint_loads_like_single_file() {
    let (_dir, model) = embedder();
    let dir = model_dir("qwen3-embed");
    let single = dir.path().join("model.safetensors");
    let tensors = candle_core::safetensors::load(&single, &candle_core::Device::Cpu).unwrap();
    std::fs::remove_file(&single).unwrap();
    let (mut a, mut b) = (HashMap::new(), HashMap::new());
    let mut map = serde_json::Map::new();
    for (name, t) in tensors {
        let shard = if name.starts_with("layers.1") {
            "model-00002-of-00002.safetensors"
        } else {
            "model-00001-of-00002.safetensors"
        };
        map.insert(name.clone(), Value::from(shard));
        if shard.contains("00001") {
            a.insert(name, t)
        } else {
            b.insert(name, t)
        };
    }
    candle_core::safetensors::save(&a, dir.path().join("model-00001-of-00002.safetensors"))
        .unwrap();
    candle_core::safetensors::save(&b, dir.path().join("model-00002-of-00002.safetensors"))
        .unwrap();
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();

    let sharded = Qwen3Embedder::load_with(dir.path(), options("embed")).unwrap();
    let texts = ["sharded", "检查", ""];
    let got = sharded.embed(&texts, None).unwrap();
    let want = model.embed(&texts, None).unwrap();
    assert_eq!(got, want);
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(p, q)| p * q).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// int8 runs every model and stays close to f32 (an accuracy figure, not a parity
/// claim); the printed cosines are the ones README reports for the fixtures.
#[test]
fn int8_precision_is_close_to_f32() {
    let int8 = |section: &str| ModelOptions {
        precision: quiver_embed::Precision::Int8,
        ..options(section)
    };
    let texts = [
        "The quick brown fox",
        "向量数据库",
        "a much longer sentence about vectors, graphs and the search engine that holds them",
    ];
    let qwen_dir = model_dir("qwen3-embed");
    let qwen = Qwen3Embedder::load_with(qwen_dir.path(), int8("embed")).unwrap();
    let bert_dir = model_dir("bert");
    let small = BertEmbedder::load_with(bert_dir.path(), int8("bert")).unwrap();
    for (name, got, want) in [
        (
            "qwen3",
            qwen.embed(&texts, None).unwrap(),
            embedder().1.embed(&texts, None).unwrap(),
        ),
        (
            "bert",
            small.embed(&texts, None).unwrap(),
            bert().1.embed(&texts, None).unwrap(),
        ),
    ] {
        for (x, y) in got.iter().zip(&want) {
            let cos = cosine(x, y);
            println!("{name} int8 cosine to f32: {cos:.5}");
            assert!(cos > 0.99, "{name} int8 cosine to f32 {cos}");
        }
    }
    let rerank_dir = model_dir("qwen3-rerank");
    let rerank = Qwen3Reranker::load_with(rerank_dir.path(), int8("rerank")).unwrap();
    let docs = ["vectors live in graphs", "bananas are yellow"];
    let got = rerank.score("where do vectors live", &docs, None).unwrap();
    let want = reranker()
        .1
        .score("where do vectors live", &docs, None)
        .unwrap();
    for (g, w) in got.iter().zip(&want) {
        println!("reranker int8 score {g:.5}, f32 {w:.5}");
        assert!((g - w).abs() < 0.02, "int8 score {g} vs f32 {w}");
    }
}
