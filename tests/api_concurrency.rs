//! Concurrent clients: mixed upserts and queries never see a 5xx and every acknowledged
//! document is found afterwards; racing create/delete of one name stays consistent.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::{create, doc, spawn};
use serde_json::json;

const CLIENTS: usize = 10;
const OPS_PER_CLIENT: usize = 40;
const DIM: usize = 8;

#[test]
fn ten_clients_upsert_and_query_without_5xx() {
    let tmp = tempfile::tempdir().unwrap();
    // A small seal threshold so seals and compactions run under the load.
    let s = Arc::new(spawn(
        &tmp.path().join("data"),
        &[("QUIVER_STORAGE_SEAL_ROWS", "50")],
    ));
    create(&s, "c", DIM);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let mut acked = Vec::new();
                for op in 0..OPS_PER_CLIENT {
                    if op % 3 == 2 {
                        let q = json!({"vector": doc("q", op as u64, DIM)["vector"], "top_k": 5});
                        let r = s.req("POST", "/collections/c/query", Some(&q));
                        assert_eq!(r.status, 200, "query: {}", r.text());
                        assert!(r.json()["hits"].as_array().unwrap().len() <= 5);
                    } else {
                        let ids: Vec<String> =
                            (0..4).map(|k| format!("c{client}-o{op}-{k}")).collect();
                        let docs: Vec<_> = ids
                            .iter()
                            .enumerate()
                            .map(|(k, id)| doc(id, (client * 1000 + op * 4 + k) as u64, DIM))
                            .collect();
                        let r = s.req(
                            "POST",
                            "/collections/c/documents",
                            Some(&json!({ "documents": docs })),
                        );
                        assert_eq!(r.status, 200, "upsert: {}", r.text());
                        acked.extend(ids);
                    }
                }
                acked
            })
        })
        .collect();
    let acked: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let info = s.req("GET", "/collections/c", None).json();
    assert_eq!(info["count"], json!(acked.len()), "{info}");
    for id in &acked {
        let r = s.req("GET", &format!("/collections/c/documents/{id}"), None);
        assert_eq!(r.status, 200, "{id}: {}", r.text());
        assert_eq!(r.json()["id"], json!(id));
    }
}

#[test]
fn racing_create_and_delete_of_one_name_stays_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Arc::new(spawn(&tmp.path().join("data"), &[]));
    let threads = 6;
    let rounds = 25;
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let (mut created, mut deleted) = (0i64, 0i64);
                for r in 0..rounds {
                    if (t + r) % 2 == 0 {
                        let resp = s.req("PUT", "/collections/race", Some(&json!({"dim": 2})));
                        match resp.status {
                            201 => created += 1,
                            409 => {}
                            other => panic!("create answered {other}: {}", resp.text()),
                        }
                    } else if (t + r) % 4 == 1 {
                        // Writes racing the drop: 200 or 404, never 5xx.
                        let resp = s.req(
                            "POST",
                            "/collections/race/documents",
                            Some(&json!({"documents": [{"id": "a", "vector": [1.0, 0.0]}]})),
                        );
                        assert!(
                            resp.status == 200 || resp.status == 404,
                            "upsert answered {}: {}",
                            resp.status,
                            resp.text()
                        );
                    } else {
                        let resp = s.req("DELETE", "/collections/race", None);
                        match resp.status {
                            200 => deleted += 1,
                            404 => {}
                            other => panic!("delete answered {other}: {}", resp.text()),
                        }
                    }
                }
                (created, deleted)
            })
        })
        .collect();
    let (mut created, mut deleted) = (0, 0);
    for w in workers {
        let (c, d) = w.join().unwrap();
        created += c;
        deleted += d;
    }
    // Successes must alternate: at most one more create than deletes, and the
    // collection exists exactly when there was one more.
    let exists = s.req("GET", "/collections/race", None).status;
    match created - deleted {
        0 => assert_eq!(exists, 404),
        1 => assert_eq!(exists, 200),
        n => panic!("{created} creates vs {deleted} deletes succeeded ({n})"),
    }
    assert!(created >= 1);
    assert_eq!(s.req("GET", "/health", None).status, 200);
}
