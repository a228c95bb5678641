//! Long texts on a real server: chunking settings (defaults, refusals), texts cut by
//! the embedding model's own tokenizer, every chunk searchable, hits naming the chunk
//! that matched, the reranker reading that chunk, and chunks listed, replaced and
//! deleted with their document, before and after a seal.
//!
//! The models are the committed fixtures (random weights, real architectures and
//! tokenizers); expectations come from the same models run directly.

#![allow(clippy::unwrap_used)]

mod common;

use common::{install, spawn};
use quiver_embed::{ModelRegistry, ServiceConfig};
use serde_json::{json, Value};

const EMBED: &str = "test/bert";
const RERANK: &str = "test/qwen3-rerank";
const MAX_TOKENS: usize = 12;

const LONG: &str = "Rivers carry water from the mountains to the sea. Along the way they \
    cut valleys and feed wetlands.\n\nFarmers have used river floods for thousands of \
    years. The silt they leave behind makes rich soil. Modern dams hold the floods back \
    and store water for dry summers. Fish such as salmon climb ladders built beside the \
    dams to reach their spawning grounds upstream.";

fn put(s: &common::Server, name: &str, body: Value) -> common::Resp {
    s.req("PUT", &format!("/collections/{name}"), Some(&body))
}

/// The message of an error answer with `status`.
fn refusal(r: &common::Resp, status: u16) -> String {
    r.expect_error(status);
    r.json()["error"]["message"].as_str().unwrap().to_string()
}

#[test]
fn long_texts_are_chunked_searched_and_reranked_by_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for fixture in ["bert", "qwen3-rerank"] {
        install(&data, fixture);
    }
    let direct = ModelRegistry::new(&data, ServiceConfig::default());
    let embedder = direct.embedder(EMBED).unwrap();
    let reranker = direct.reranker(RERANK).unwrap();
    let capacity = embedder.model().text_capacity();
    let s = spawn(&data, &[("QUIVER_STORAGE_TEXT_COMMIT_MS", "20")]);

    // Settings: on by default with a model, off on request, refused without a model
    // or out of range, with the reason.
    let r = put(&s, "d", json!({"embedding_model": EMBED}));
    assert_eq!(r.status, 201, "{}", r.text());
    let chunking = &r.json()["config"]["chunking"];
    assert_eq!(chunking["max_tokens"], capacity);
    assert_eq!(chunking["overlap_tokens"], capacity / 8);
    assert_eq!(chunking["strategy"], "sentence");
    let r = put(
        &s,
        "off",
        json!({"embedding_model": EMBED, "chunking": false}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.json()["config"].get("chunking").is_none());
    let msg = refusal(&put(&s, "x", json!({"dim": 4, "chunking": true})), 400);
    assert!(msg.contains("embedding_model"), "{msg}");
    for (chunking, field) in [
        (json!({"max_tokens": 0}), "chunking.max_tokens"),
        (json!({"max_tokens": capacity + 1}), "chunking.max_tokens"),
        (
            json!({"max_tokens": 8, "overlap_tokens": 8}),
            "chunking.overlap_tokens",
        ),
    ] {
        let r = put(
            &s,
            "x",
            json!({"embedding_model": EMBED, "chunking": chunking}),
        );
        let msg = refusal(&r, 400);
        assert!(msg.contains(field), "{msg}");
    }
    let r = put(
        &s,
        "x",
        json!({"embedding_model": EMBED, "chunking": {"max_tokens": 8, "size": 3}}),
    );
    assert!(
        [400, 422].contains(&r.status),
        "unknown field: {}",
        r.text()
    );
    assert_eq!(s.req("GET", "/collections/x", None).status, 404);

    // Chunking changes while a collection is empty, and is refused once it is not.
    let patch =
        |name: &str, body: Value| s.req("PATCH", &format!("/collections/{name}"), Some(&body));
    let r = patch("d", json!({"chunking": {"max_tokens": 64}}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["config"]["chunking"]["max_tokens"], 64);
    assert_eq!(r.json()["config"]["chunking"]["overlap_tokens"], 8);
    let r = patch("off", json!({"chunking": true}));
    assert_eq!(r.json()["config"]["chunking"]["max_tokens"], capacity);
    let msg = refusal(&patch("d", json!({"chunking": {"max_tokens": 0}})), 400);
    assert!(msg.contains("chunking.max_tokens"), "{msg}");
    let r = put(&s, "plain", json!({"dim": 4}));
    assert_eq!(r.status, 201);
    refusal(&patch("plain", json!({"chunking": true})), 400);
    refusal(&patch("d", json!({})), 400);
    assert_eq!(patch("nowhere", json!({"chunking": false})).status, 404);
    let r = s.req(
        "POST",
        "/collections/d/documents",
        Some(&json!({"documents": [{"id": "x", "text": "one text"}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let msg = refusal(&patch("d", json!({"chunking": false})), 409);
    assert!(
        msg.contains("quiver import") && msg.contains("new collection"),
        "{msg}"
    );
    let r = s.req("GET", "/collections/d", None).json();
    assert_eq!(r["config"]["chunking"]["max_tokens"], 64, "unchanged: {r}");

    let r = put(
        &s,
        "c",
        json!({"embedding_model": EMBED, "reranker_model": RERANK,
            "chunking": {"max_tokens": MAX_TOKENS, "overlap_tokens": 3}}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let docs = json!({"documents": [
        {"id": "long", "text": LONG},
        {"id": "short", "text": "a short note about rivers"},
        {"id": "other", "text": "Deserts get little rain. Cacti store water in their stems \
            and open their pores only at night, when the air is cool."},
    ]});
    let r = s.req("POST", "/collections/c/documents", Some(&docs));
    assert_eq!(r.status, 200, "{}", r.text());

    for stage in ["memtable", "sealed"] {
        // The chunks: spans of the text, each at most MAX_TOKENS of the model's tokens,
        // together covering every token.
        let got = s
            .req("GET", "/collections/c/documents/long?chunks=true", None)
            .json();
        let chunks = got["chunks"].as_array().unwrap().clone();
        assert!(chunks.len() >= 4, "{stage}: {got}");
        let spans = embedder.model().token_spans(LONG).unwrap();
        let mut covered = vec![false; spans.len()];
        for (k, ch) in chunks.iter().enumerate() {
            assert_eq!(ch["chunk"], k);
            let (start, end) = (
                ch["start"].as_u64().unwrap() as usize,
                ch["end"].as_u64().unwrap() as usize,
            );
            // ASCII text: characters are bytes.
            assert_eq!(ch["text"], LONG[start..end], "{stage}");
            let inside: Vec<usize> = (0..spans.len())
                .filter(|&t| spans[t].0 >= start && spans[t].1 <= end)
                .collect();
            assert!(
                inside.len() <= MAX_TOKENS,
                "{stage}: chunk {k} {}",
                inside.len()
            );
            for t in inside {
                covered[t] = true;
            }
        }
        assert!(covered.iter().all(|&c| c), "{stage}: tokens left out");
        let short = s
            .req("GET", "/collections/c/documents/short?chunks=true", None)
            .json();
        assert_eq!(short["chunks"], json!([]), "{stage}");
        let plain = s.req("GET", "/collections/c/documents/long", None).json();
        assert!(plain.get("chunks").is_none());

        // Text only the last chunk holds finds the document, that chunk winning (BERT
        // embeds queries and documents alike, so the scores are 1).
        let last = chunks.len() - 1;
        let query = chunks[last]["text"].as_str().unwrap();
        let r = s.req(
            "POST",
            "/collections/c/query",
            Some(
                &json!({"text": query, "mode": "dense", "top_k": 3, "explain": true,
                "exact": true}),
            ),
        );
        let body = r.json();
        let top = &body["hits"][0];
        assert_eq!(top["id"], "long", "{stage}: {body}");
        assert!((top["score"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{top}");
        assert_eq!(top["chunks"][0]["chunk"], last, "{stage}: {top}");
        assert_eq!(top["explain"]["chunk"], last, "{stage}");
        let ids: Vec<&str> = body["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 3, "{stage}: {ids:?}");
        assert!(!ids[1..].contains(&"long"), "{stage}: listed twice {ids:?}");
        // Rerank reads each candidate's best chunk, not the document's head.
        let rq = "how do salmon get past dams";
        let r = s.req(
            "POST",
            "/collections/c/query",
            Some(
                &json!({"text": rq, "mode": "dense", "top_k": 3, "explain": true,
                "rerank": {"enabled": true, "candidates": 3}}),
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        for h in r.json()["hits"].as_array().unwrap() {
            let read = match h["chunks"].get(0) {
                Some(ch) => ch["text"].as_str().unwrap().to_string(),
                None => h["text"].as_str().unwrap().to_string(),
            };
            let want = reranker.score(rq, &[read.as_str()], None).unwrap()[0];
            let got = h["score"].as_f64().unwrap() as f32;
            assert!(
                (got - want).abs() < 1e-4,
                "{stage}: {} {got} vs {want}",
                h["id"]
            );
        }
        // One hit per chunk: "long" once per chunk that matched, each naming its own.
        let r = s.req(
            "POST",
            "/collections/c/query",
            Some(
                &json!({"text": "salmon dams floods rivers", "mode": "sparse",
                "group_by": "chunk", "top_k": 20}),
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let hits = r.json()["hits"].as_array().unwrap().clone();
        let long: Vec<u64> = hits
            .iter()
            .filter(|h| h["id"] == "long")
            .map(|h| h["chunks"][0]["chunk"].as_u64().unwrap())
            .collect();
        assert!(long.len() >= 2, "{stage}: {hits:?}");
        let mut distinct = long.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), long.len(), "{stage}");
        assert!(hits
            .iter()
            .all(|h| h["chunks"].as_array().map_or(0, Vec::len) <= 1));
        let r = s.req(
            "POST",
            "/collections/c/query",
            Some(&json!({"text": "salmon", "chunk_score": "sum", "highlight": false})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.json()["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h.get("highlights").is_none()));
        let r = s.req(
            "POST",
            "/collections/c/query",
            Some(&json!({"text": "salmon", "group_by": "page"})),
        );
        assert!([400, 422].contains(&r.status), "{}", r.text());
        if stage == "memtable" {
            let r = s.req("POST", "/collections/c/flush", None);
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }

    // Overwrite with a short text: its chunks go; delete: the document goes.
    let r = s.req(
        "POST",
        "/collections/c/documents",
        Some(&json!({"documents": [{"id": "long", "text": "now brief"}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s
        .req("GET", "/collections/c/documents/long?chunks=true", None)
        .json();
    assert_eq!(got["chunks"], json!([]));
    s.req("DELETE", "/collections/c/documents/long", None);
    let r = s.req(
        "POST",
        "/collections/c/query",
        Some(&json!({"text": "salmon ladders beside the dams", "mode": "dense", "top_k": 5})),
    );
    let hits = r.json()["hits"].as_array().unwrap().clone();
    assert!(hits.iter().all(|h| h["id"] != "long"), "{hits:?}");
    assert_eq!(hits.len(), 2);

    // A changed setting is stored: it survives a restart.
    drop(s);
    let s = spawn(&data, &[]);
    let r = s.req("GET", "/collections/off", None).json();
    assert_eq!(r["config"]["chunking"]["max_tokens"], capacity, "{r}");
}
