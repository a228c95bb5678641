//! Every route on a real server process: collections, documents, queries, health,
//! readiness, metrics, OpenAPI; and graceful shutdown keeping unsynced writes.

#![allow(clippy::unwrap_used)]

mod common;

use common::{create, doc, spawn, upsert};
use serde_json::json;

#[test]
fn every_route_answers_as_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spawn(
        &tmp.path().join("data"),
        &[("QUIVER_STORAGE_TEXT_COMMIT_MS", "20")],
    );

    assert_eq!(
        s.req("GET", "/health", None).json(),
        json!({"status": "ok"})
    );
    assert_eq!(
        s.req("GET", "/ready", None).json(),
        json!({"status": "ready"})
    );

    // Collections.
    let r = s.req(
        "PUT",
        "/collections/docs",
        Some(&json!({"dim": 4, "distance": "cosine", "hnsw": {"m": 8}, "analyzer": "simple"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let info = r.json();
    assert_eq!(info["name"], "docs");
    assert_eq!(info["config"]["dim"], 4);
    assert_eq!(info["config"]["hnsw"]["m"], 8);
    assert_eq!(info["config"]["analyzer"], "simple");
    assert_eq!(info["count"], 0);
    create(&s, "other", 2);
    let list = s.req("GET", "/collections", None).json();
    let names: Vec<&str> = list["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs", "other"]);
    s.req("PUT", "/collections/docs", Some(&json!({"dim": 4})))
        .expect_error(409);

    // Documents.
    let docs: Vec<_> = (0..20).map(|i| doc(&format!("d{i}"), i, 4)).collect();
    let lsn1 = upsert(&s, "docs", docs);
    let r = s.req(
        "POST",
        "/collections/docs/documents",
        Some(&json!({"documents": [{"id": "x", "text": "the quick brown fox", "vector": [1.0, 0.0, 0.0, 0.0], "metadata": {"tag": "fox"}}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upserted"], 1);
    assert!(r.json()["lsn"].as_u64().unwrap() > lsn1);
    let got = s.req("GET", "/collections/docs/documents/x", None).json();
    assert_eq!(got["text"], "the quick brown fox");
    assert_eq!(got["metadata"], json!({"tag": "fox"}));
    assert_eq!(got["vector"], json!([1.0, 0.0, 0.0, 0.0]));
    assert_eq!(s.req("GET", "/collections/docs", None).json()["count"], 21);

    // Dense query: the exact match ranks first, with text and metadata.
    let q = s.req(
        "POST",
        "/collections/docs/query",
        Some(&json!({"vector": [1.0, 0.0, 0.0, 0.0], "top_k": 3, "explain": true})),
    );
    assert_eq!(q.status, 200, "{}", q.text());
    let q = q.json();
    let hits = q["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["id"], "x");
    assert_eq!(hits[0]["text"], "the quick brown fox");
    assert_eq!(hits[0]["explain"]["dense"]["rank"], 1);
    assert!(hits[0].get("highlights").is_none(), "dense hits have none");
    assert!((hits[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    assert!(q["timings_ms"]["total"].as_f64().unwrap() >= 0.0);

    // Filtered query: only odd documents.
    let q = s.req(
        "POST",
        "/collections/docs/query",
        Some(&json!({"vector": [0.5, 0.5, 0.5, 0.5], "top_k": 50,
            "filter": {"must": [{"key": "tag", "match": "odd"}]}})),
    );
    let q = q.json();
    let hits = q["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 10, "{q}");
    assert!(hits.iter().all(|h| h["metadata"]["tag"] == "odd"));

    // Sparse query: visible once the text index commits (every 20 ms here).
    let mut found = None;
    for _ in 0..500 {
        let q = s.req(
            "POST",
            "/collections/docs/query",
            Some(&json!({"text": "quick fox", "top_k": 5})),
        );
        assert_eq!(q.status, 200, "{}", q.text());
        let q = q.json();
        if let Some(h) = q["hits"].as_array().unwrap().first() {
            found = Some(h["id"].clone());
            // "the quick brown fox": characters 4..9 and 16..19 hold the query's words.
            assert_eq!(h["highlights"], json!([[4, 9], [16, 19]]), "{q}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(found, Some(json!("x")));
    // Hybrid: vector and text together.
    let q = s.req(
        "POST",
        "/collections/docs/query",
        Some(
            &json!({"text": "fox", "vector": [1.0, 0.0, 0.0, 0.0], "top_k": 2,
            "fusion": {"method": "rrf", "k": 60}, "explain": true}),
        ),
    );
    assert_eq!(q.status, 200, "{}", q.text());
    let hit = &q.json()["hits"][0];
    assert_eq!(hit["id"], "x");
    assert_eq!(hit["explain"]["sparse"]["rank"], 1);
    assert_eq!(hit["highlights"], json!([[16, 19]]));

    // Delete one document.
    let d = s.req("DELETE", "/collections/docs/documents/x", None);
    assert_eq!(d.status, 200, "{}", d.text());
    assert_eq!(d.json()["deleted"], true);
    s.req("GET", "/collections/docs/documents/x", None)
        .expect_error(404);
    s.req("DELETE", "/collections/docs/documents/x", None)
        .expect_error(404);
    assert_eq!(s.req("GET", "/collections/docs", None).json()["count"], 20);

    // A flush seals the memtable; the collection's maintenance shows it.
    let flushed = s.req("POST", "/collections/docs/flush", None);
    assert_eq!(flushed.status, 200, "{}", flushed.text());
    let info = s.req("GET", "/collections/docs", None).json();
    assert_eq!(info["segments"], 1, "{info}");
    assert_eq!(info["maintenance"]["seals"], 1, "{info}");
    assert_eq!(info["maintenance"]["queued_memtables"], 0, "{info}");

    // Metrics: counts by route template, collection gauges, maintenance.
    let m = s.req("GET", "/metrics", None);
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(
        text.contains(r#"route="/collections/{name}/query""#),
        "{text}"
    );
    assert!(text.contains("quiver_http_requests_total"), "{text}");
    assert!(
        text.contains("quiver_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"quiver_collection_documents{collection="docs"} 20"#),
        "{text}"
    );
    for line in [
        r#"quiver_collection_seals_total{collection="docs",outcome="ok"} 1"#,
        r#"quiver_collection_frozen_memtables{collection="docs"} 0"#,
        r#"quiver_collection_maintenance_running{collection="docs",task="seal"} 0"#,
        r#"quiver_collection_write_stalls_total{collection="docs"} 0"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }

    // OpenAPI.
    let api = s.req("GET", "/openapi.json", None).json();
    assert!(api["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/collections",
        "/collections/{name}",
        "/collections/{name}/documents",
        "/collections/{name}/documents/{id}",
        "/collections/{name}/query",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(api["paths"][p].is_object(), "{p} missing");
    }

    // Unknown routes and methods use the error shape too.
    s.req("GET", "/nope", None).expect_error(404);
    s.req("POST", "/collections/docs", None).expect_error(405);

    // Delete a collection.
    let d = s.req("DELETE", "/collections/other", None);
    assert_eq!(d.status, 200, "{}", d.text());
    s.req("GET", "/collections/other", None).expect_error(404);
    s.req("DELETE", "/collections/other", None)
        .expect_error(404);
    let list = s.req("GET", "/collections", None).json();
    assert_eq!(list["collections"].as_array().unwrap().len(), 1);
}

#[test]
fn sigterm_drains_syncs_and_keeps_every_write() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // With syncing left to the OS, only the shutdown sync makes these writes durable
    // against a crash; here we check they are all there after a clean stop.
    let env = [("QUIVER_STORAGE_WAL_SYNC", "never")];
    let mut s = spawn(&data, &env);
    create(&s, "c", 3);
    for b in 0..10 {
        let docs = (0..10)
            .map(|i| doc(&format!("{b}-{i}"), b * 10 + i, 3))
            .collect();
        upsert(&s, "c", docs);
    }
    let status = s.terminate();
    assert!(status.success(), "exit {status:?}; log:\n{}", s.log_text());
    assert!(s.log_text().contains("synced"), "{}", s.log_text());
    let s = spawn(&data, &env);
    s.assert_healthy("c", 100);
    let got = s.req("GET", "/collections/c/documents/9-9", None);
    assert_eq!(got.status, 200, "{}", got.text());
}
