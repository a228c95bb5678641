//! Models wired end to end on a real server process: a collection with an embedding
//! model and a reranker, documents imported as text only, and dense, sparse and hybrid
//! queries with and without rerank, checked against the same models run directly.
//!
//! The models are the small committed fixtures (random weights, real architectures),
//! so the checks compare rankings with what the models themselves compute rather than
//! with any notion of meaning.

#![allow(clippy::unwrap_used)]

mod common;

use common::{install, spawn};
use quiver_embed::{truncate_normalize, ModelRegistry, Priority, ServiceConfig};
use quiver_engine::models::DEFAULT_TASK;
use serde_json::{json, Value};

const EMBED: &str = "test/qwen3-embed";
const RERANK: &str = "test/qwen3-rerank";
const DIM: usize = 48;

const DOCS: [(&str, &str, &str); 6] = [
    ("a", "the zebra crossed the river at dawn", "even"),
    ("b", "a quiet harbour full of fishing boats", "odd"),
    ("c", "mountain goats climb steep cliffs", "even"),
    ("d", "the library opens early on mondays", "odd"),
    ("e", "fresh bread from the corner bakery", "even"),
    ("f", "solar panels on every rooftop", "odd"),
];

fn ids(r: &Value) -> Vec<String> {
    r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

/// Keyword hits for `text` in collection `m`, polled until they equal `want` or 5 s
/// pass: keyword search sees writes once the text index commits.
fn sparse_ids(s: &common::Server, text: &str, want: &[&str]) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..100 {
        let r = s.req(
            "POST",
            "/collections/m/query",
            Some(&json!({"text": text, "mode": "sparse"})),
        );
        got = ids(&r.json());
        if got == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    got
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeds_on_ingest_queries_by_text_and_reranks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for fixture in ["qwen3-embed", "qwen3-rerank", "bert"] {
        install(&data, fixture);
    }
    // The same models, run directly, are the reference.
    let direct = ModelRegistry::new(&data, ServiceConfig::default());
    let embedder = direct.embedder(EMBED).unwrap();
    let reranker = direct.reranker(RERANK).unwrap();
    let s = spawn(&data, &[("QUIVER_STORAGE_TEXT_COMMIT_MS", "20")]);

    // Missing models: 422 naming where to place them.
    let r = s.req(
        "PUT",
        "/collections/nope",
        Some(&json!({"embedding_model": "test/missing"})),
    );
    assert_eq!(r.expect_error(422), "unprocessable");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("test--missing"), "{msg}");
    let r = s.req(
        "PUT",
        "/collections/nope",
        Some(&json!({"dim": 4, "reranker_model": "test/missing"})),
    );
    r.expect_error(422);
    // dim outside the Matryoshka range, and a BERT model cut short.
    let r = s.req(
        "PUT",
        "/collections/nope",
        Some(&json!({"embedding_model": EMBED, "dim": 65})),
    );
    r.expect_error(400);
    let r = s.req(
        "PUT",
        "/collections/nope",
        Some(&json!({"embedding_model": "test/bert", "dim": 16})),
    );
    r.expect_error(400);
    let r = s.req(
        "PUT",
        "/collections/b",
        Some(&json!({"embedding_model": "test/bert"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["config"]["dim"], 32);

    let r = s.req(
        "PUT",
        "/collections/m",
        Some(&json!({"embedding_model": EMBED, "reranker_model": RERANK, "dim": DIM})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let docs: Vec<Value> = DOCS
        .iter()
        .map(|(id, text, tag)| json!({"id": id, "text": text, "metadata": {"tag": tag}}))
        .collect();
    let r = s.req(
        "POST",
        "/collections/m/documents",
        Some(&json!({ "documents": docs })),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upserted"], 6);

    // Stored vectors are the model's document embeddings (no instruction), cut to DIM.
    let texts: Vec<&str> = DOCS.iter().map(|d| d.1).collect();
    let doc_vecs: Vec<Vec<f32>> = embedder
        .embed(&texts, None, Priority::Bulk)
        .unwrap()
        .iter()
        .map(|v| truncate_normalize(v, DIM).unwrap())
        .collect();
    let stored = s.req("GET", "/collections/m/documents/c", None).json();
    let stored: Vec<f32> = serde_json::from_value(stored["vector"].clone()).unwrap();
    assert_eq!(stored.len(), DIM);
    let err = stored
        .iter()
        .zip(&doc_vecs[2])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(err < 1e-5, "stored vector differs by {err}");

    // Dense by text: the ranking the model's own query embedding gives.
    let query = "zebra crossing the river";
    let expected_dense = |task: &str, among: &[usize]| {
        let q = embedder
            .embed(&[query], Some(task), Priority::Query)
            .unwrap()
            .remove(0);
        let q = truncate_normalize(&q, DIM).unwrap();
        let mut order: Vec<usize> = among.to_vec();
        order.sort_by(|&a, &b| dot(&q, &doc_vecs[b]).total_cmp(&dot(&q, &doc_vecs[a])));
        order
            .iter()
            .map(|&i| DOCS[i].0.to_string())
            .collect::<Vec<_>>()
    };
    let all: Vec<usize> = (0..DOCS.len()).collect();
    let r = s.req(
        "POST",
        "/collections/m/query",
        Some(&json!({"text": query, "mode": "dense", "top_k": 6})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(ids(&r.json()), expected_dense(DEFAULT_TASK, &all));
    let task = "Find sentences about animals";
    let r = s.req(
        "POST",
        "/collections/m/query",
        Some(&json!({"text": query, "mode": "dense", "top_k": 6, "task": task})),
    );
    assert_eq!(ids(&r.json()), expected_dense(task, &all));
    // Dense with a filter: only the even documents, in the model's order.
    let r = s.req(
        "POST",
        "/collections/m/query",
        Some(&json!({"text": query, "mode": "dense", "top_k": 6,
            "filter": {"must": [{"key": "tag", "match": "even"}]}})),
    );
    assert_eq!(ids(&r.json()), expected_dense(DEFAULT_TASK, &[0, 2, 4]));

    // Sparse on a distinctive word, once the text index has committed (20 ms here).
    assert_eq!(sparse_ids(&s, "bakery", &["e"]), ["e"]);
    // Text alone defaults to hybrid in a collection that embeds: every document is a
    // dense candidate, and the distinctive word's document has both stages.
    let r = s.req(
        "POST",
        "/collections/m/query",
        Some(&json!({"text": "harbour", "top_k": 6, "explain": true})),
    );
    let body = r.json();
    assert_eq!(ids(&body).len(), 6, "{body}");
    let b = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "b")
        .unwrap();
    assert!(b["explain"]["sparse"].is_object(), "{b}");
    assert!(b["explain"]["dense"].is_object(), "{b}");
    let t = &body["timings_ms"];
    assert!(t["embed"].is_number() && t["rerank"].is_number(), "{t}");

    // Rerank: hits ordered by the reranker's own scores for (query, text).
    let rq = "where can I buy bread";
    let scores = reranker.score(rq, &texts, None).unwrap();
    let mut by_score: Vec<usize> = all.clone();
    by_score.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    for mode in ["dense", "hybrid"] {
        let r = s.req(
            "POST",
            "/collections/m/query",
            Some(
                &json!({"text": rq, "mode": mode, "top_k": 3, "explain": true,
                "rerank": {"enabled": true, "candidates": 6}}),
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        let want: Vec<String> = by_score[..3]
            .iter()
            .map(|&i| DOCS[i].0.to_string())
            .collect();
        assert_eq!(ids(&body), want, "{mode}");
        for (h, &i) in body["hits"].as_array().unwrap().iter().zip(&by_score) {
            let got = h["score"].as_f64().unwrap() as f32;
            assert!(
                (got - scores[i]).abs() < 1e-4,
                "{mode}: {got} vs {}",
                scores[i]
            );
            assert_eq!(h["explain"]["rerank"]["score"], h["score"]);
            let before = h["explain"]["rerank"]["rank_before"].as_u64().unwrap();
            assert!((1..=6).contains(&before));
        }
    }
    // Rerank with a filter and `rerank: true` keeps to the filtered documents.
    let r = s.req(
        "POST",
        "/collections/m/query",
        Some(
            &json!({"text": "bread library harbour", "mode": "sparse", "rerank": true,
            "filter": {"must": [{"key": "tag", "match": "odd"}]}}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut got = ids(&r.json());
    got.sort();
    assert_eq!(got, ["b", "d"]);

    // Delete: the document leaves dense results at once and keyword results once the
    // text index commits (20 ms here).
    let r = s.req("DELETE", "/collections/m/documents/e", None);
    assert_eq!(r.status, 200, "{}", r.text());
    s.req("GET", "/collections/m/documents/e", None)
        .expect_error(404);
    let r = s.req(
        "POST",
        "/collections/m/query",
        Some(&json!({"text": query, "mode": "dense", "top_k": 6})),
    );
    let without_e: Vec<usize> = vec![0, 1, 2, 3, 5];
    assert_eq!(ids(&r.json()), expected_dense(DEFAULT_TASK, &without_e));
    let none: [&str; 0] = [];
    assert_eq!(sparse_ids(&s, "bakery", &none), none);

    // A collection without models: text-only documents, text queries needing a
    // vector, and rerank are refused.
    let r = s.req("PUT", "/collections/plain", Some(&json!({"dim": 4})));
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.req(
        "POST",
        "/collections/plain/documents",
        Some(&json!({"documents": [{"id": "x", "text": "no vector here"}]})),
    );
    assert!([400, 422].contains(&r.status), "{}", r.text());
    let r = s.req(
        "POST",
        "/collections/plain/query",
        Some(&json!({"text": "hi", "mode": "dense"})),
    );
    r.expect_error(422);
    let r = s.req(
        "POST",
        "/collections/plain/query",
        Some(&json!({"text": "hi", "rerank": true})),
    );
    r.expect_error(422);
    // The embedding collection's reranker is absent on `b`.
    let r = s.req(
        "POST",
        "/collections/b/query",
        Some(&json!({"text": "hi", "rerank": true})),
    );
    r.expect_error(422);
}

fn floats(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn model_endpoints_speak_tei_and_openai() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for fixture in ["qwen3-embed", "qwen3-rerank"] {
        install(&data, fixture);
    }
    let direct = ModelRegistry::new(&data, ServiceConfig::default());
    let embedder = direct.embedder(EMBED).unwrap();
    let reranker = direct.reranker(RERANK).unwrap();
    let s = spawn(
        &data,
        &[
            ("QUIVER_MODELS_EMBEDDING", EMBED),
            ("QUIVER_MODELS_RERANKER", RERANK),
        ],
    );
    let texts = ["the zebra crossed the river", "fresh bread", "solar panels"];
    let full = embedder.embed(&texts, None, Priority::Bulk).unwrap();

    // TEI /embed: a list, one text, Matryoshka dimensions, a query instruction.
    let r = s.req("POST", "/embed", Some(&json!({"inputs": texts})));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = r.json();
    assert_eq!(got.as_array().unwrap().len(), 3);
    for (g, want) in got.as_array().unwrap().iter().zip(&full) {
        assert!(max_diff(&floats(g), want) < 1e-5);
    }
    let r = s.req(
        "POST",
        "/embed",
        Some(&json!({"inputs": texts[1], "dimensions": 16})),
    );
    let one = floats(&r.json()[0]);
    assert!(max_diff(&one, &truncate_normalize(&full[1], 16).unwrap()) < 1e-5);
    let task = "Find sentences about animals";
    let r = s.req(
        "POST",
        "/embed",
        Some(&json!({"inputs": [texts[0]], "task": task})),
    );
    let want = embedder
        .embed(&[texts[0]], Some(task), Priority::Query)
        .unwrap();
    assert!(max_diff(&floats(&r.json()[0]), &want[0]) < 1e-5);
    for bad in [
        json!({"inputs": []}),
        json!({"inputs": ["a"], "dimensions": 0}),
        json!({"inputs": ["a"], "dimensions": 65}),
        json!({"inputs": [[1, 2]]}),
        json!({"texts": ["a"]}),
    ] {
        s.req("POST", "/embed", Some(&bad)).expect_error(400);
    }
    let r = s.req(
        "POST",
        "/embed",
        Some(&json!({"inputs": "a", "normalize": false})),
    );
    r.expect_error(422);
    let r = s.req(
        "POST",
        "/embed",
        Some(&json!({"inputs": "a", "model": "test/missing"})),
    );
    r.expect_error(422);

    // TEI /rerank: best first, indexes into `texts`, the reranker's own scores.
    let query = "where can I buy bread";
    let scores = reranker.score(query, &texts, None).unwrap();
    let r = s.req(
        "POST",
        "/rerank",
        Some(&json!({"query": query, "texts": texts, "return_text": true})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ranked = r.json();
    let ranked = ranked.as_array().unwrap();
    assert_eq!(ranked.len(), 3);
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    for (h, &i) in ranked.iter().zip(&order) {
        assert_eq!(h["index"], i);
        assert_eq!(h["text"], texts[i]);
        assert!((h["score"].as_f64().unwrap() as f32 - scores[i]).abs() < 1e-4);
    }
    let r = s.req(
        "POST",
        "/rerank",
        Some(&json!({"query": query, "texts": texts, "raw_scores": true})),
    );
    let raw = r.json();
    assert!(raw[0].get("text").is_none());
    let p = scores[order[0]];
    let logit = (p / (1.0 - p)).ln();
    assert!((raw[0]["score"].as_f64().unwrap() as f32 - logit).abs() < 1e-3);
    let r = s.req(
        "POST",
        "/rerank",
        Some(&json!({"query": query, "texts": []})),
    );
    r.expect_error(400);

    // OpenAI /v1/embeddings: floats and base64 agree, usage counts tokens.
    let body = json!({"input": texts, "model": EMBED, "dimensions": DIM});
    let r = s.req("POST", "/v1/embeddings", Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert_eq!(out["object"], "list");
    assert_eq!(out["model"], EMBED);
    assert!(out["usage"]["prompt_tokens"].as_u64().unwrap() >= 3);
    let data = out["data"].as_array().unwrap();
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"], i);
        let want = truncate_normalize(&full[i], DIM).unwrap();
        assert!(max_diff(&floats(&d["embedding"]), &want) < 1e-5);
    }
    let r = s.req(
        "POST",
        "/v1/embeddings",
        Some(&json!({"input": texts[2], "encoding_format": "base64"})),
    );
    let encoded = r.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(max_diff(&decoded, &full[2]) < 1e-5);
    let r = s.req(
        "POST",
        "/v1/embeddings",
        Some(&json!({"input": "x", "encoding_format": "int8"})),
    );
    r.expect_error(400);

    // Metrics: model tokens and batches, and WAL syncs after a durable write.
    let r = s.req("PUT", "/collections/v", Some(&json!({"dim": 2})));
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.req(
        "POST",
        "/collections/v/documents",
        Some(&json!({"documents": [{"id": "1", "vector": [1.0, 0.0]}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let metrics = s.req("GET", "/metrics", None).text();
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} missing from:\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let embed_labels = format!("{{model=\"{EMBED}\",role=\"embed\"}}");
    assert!(value(&format!("quiver_model_tokens_total{embed_labels}")) >= 3.0);
    assert!(value(&format!("quiver_model_batch_items_count{embed_labels}")) >= 1.0);
    let rerank_labels = format!("{{model=\"{RERANK}\",role=\"rerank\"}}");
    assert!(value(&format!("quiver_model_batch_items_sum{rerank_labels}")) >= 3.0);
    assert!(value("quiver_wal_sync_duration_seconds_count") >= 1.0);
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
}

/// `[models] quantize = "int8"` reaches the models a server loads: its embeddings and
/// rerank scores are close to float32's but not equal to them, and a value it does not
/// know stops the server with the key named.
#[test]
fn int8_models_serve_close_to_float32() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for fixture in ["qwen3-embed", "qwen3-rerank"] {
        install(&data, fixture);
    }
    let direct = ModelRegistry::new(&data, ServiceConfig::default());
    let embedder = direct.embedder(EMBED).unwrap();
    let reranker = direct.reranker(RERANK).unwrap();
    let s = spawn(&data, &[("QUIVER_MODELS_QUANTIZE", "int8")]);
    let texts = ["the zebra crossed the river", "fresh bread", "solar panels"];
    let full = embedder.embed(&texts, None, Priority::Bulk).unwrap();
    let r = s.req(
        "POST",
        "/embed",
        Some(&json!({"inputs": texts, "model": EMBED})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for (g, want) in r.json().as_array().unwrap().iter().zip(&full) {
        let got = floats(g);
        let cos = cosine(&got, want);
        assert!(cos > 0.99, "int8 cosine to float32 {cos}");
        assert!(
            max_diff(&got, want) > 1e-6,
            "int8 gave float32's vector exactly"
        );
    }
    let query = "which animal crossed the river";
    let want = reranker.score(query, &texts, None).unwrap();
    let r = s.req(
        "POST",
        "/rerank",
        Some(&json!({"query": query, "texts": texts, "model": RERANK})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for hit in r.json().as_array().unwrap() {
        let i = usize::try_from(hit["index"].as_u64().unwrap()).unwrap();
        let got = hit["score"].as_f64().unwrap() as f32;
        assert!(
            (got - want[i]).abs() < 0.02,
            "int8 score {got} vs {}",
            want[i]
        );
    }
    drop(s);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .current_dir(tmp.path())
        .env("QUIVER_MODELS_QUANTIZE", "int4")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quantize") && err.contains("int8"), "{err}");
}
