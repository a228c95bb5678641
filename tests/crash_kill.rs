//! SIGKILL under HTTP write load: writers record every acknowledged document; the
//! server is killed mid-stream, restarted on the same data directory, and every
//! acknowledged document must be there, in a collection of supplied vectors and in one
//! that embeds texts in chunks. `QUIVER_KILL_CYCLES` sets the cycles (default 5 here).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{create, doc, install, kill_cycles, request, spawn};
use quiver_core::{ChunkStrategy, ChunkingConfig};
use quiver_embed::{chunk_tokens, ModelRegistry, ServiceConfig};
use serde_json::json;

const WRITERS: usize = 4;
const DIM: usize = 4;

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let cycles = kill_cycles(5);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Small seals so kills also land during seals and compactions.
    let env = [("QUIVER_STORAGE_SEAL_ROWS", "300")];
    let mut all_acked: Vec<String> = Vec::new();
    {
        let s = spawn(&data, &env);
        create(&s, "k", DIM);
    }
    for cycle in 0..cycles {
        let mut s = spawn(&data, &env);
        // Everything acknowledged in earlier cycles is back (plus, possibly, batches
        // that were durable but whose answer the kill cut off).
        let info = s.req("GET", "/collections/k", None).json();
        let count = info["count"].as_u64().unwrap();
        assert!(count >= all_acked.len() as u64, "cycle {cycle}: {info}");
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (addr, stop) = (s.addr.clone(), Arc::clone(&stop));
                thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut batch = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let ids: Vec<String> = (0..5)
                            .map(|k| format!("y{cycle}-w{w}-b{batch}-{k}"))
                            .collect();
                        let docs: Vec<_> = ids
                            .iter()
                            .enumerate()
                            .map(|(k, id)| doc(id, batch * 5 + k as u64, DIM))
                            .collect();
                        let r = request(
                            &addr,
                            "POST",
                            "/collections/k/documents",
                            Some(&json!({ "documents": docs })),
                            None,
                        );
                        match r.status {
                            200 => acked.extend(ids),
                            // The connection died with the server: not acknowledged.
                            0 => break,
                            other => panic!("upsert answered {other}: {}", r.text()),
                        }
                        batch += 1;
                    }
                    acked
                })
            })
            .collect();
        // Kill at a different point of the load each cycle.
        thread::sleep(Duration::from_millis(60 + (cycle as u64 * 37) % 240));
        s.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            all_acked.extend(w.join().unwrap());
        }
    }
    let s = spawn(&data, &env);
    let info = s.req("GET", "/collections/k", None).json();
    assert!(
        info["count"].as_u64().unwrap() >= all_acked.len() as u64,
        "{info} vs {} acked",
        all_acked.len()
    );
    for id in &all_acked {
        let r = s.req("GET", &format!("/collections/k/documents/{id}"), None);
        assert_eq!(r.status, 200, "acknowledged {id} lost: {}", r.text());
    }
    assert!(!all_acked.is_empty(), "no write was acknowledged at all");
}

/// Words the chunked documents are made of.
const WORDS: [&str; 48] = [
    "river", "stone", "window", "garden", "engine", "pilot", "winter", "copper", "harbor",
    "lantern", "meadow", "violin", "planet", "rocket", "tunnel", "orchard", "falcon", "silver",
    "desert", "island", "thunder", "canvas", "marble", "forest", "bridge", "candle", "glacier",
    "compass", "anchor", "velvet", "saddle", "pepper", "ladder", "mirror", "castle", "feather",
    "harvest", "kettle", "needle", "pocket", "ribbon", "shadow", "timber", "valley", "wagon",
    "yellow", "zipper", "basket",
];

/// `words` words of chunked document `n`, drawn so that no two documents share a run.
fn chunked_text(n: u64, words: u64) -> String {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..words)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            WORDS[(state % WORDS.len() as u64) as usize]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The same with texts embedded in chunks on ingest, overwrites that change a document's
/// chunk count included: after the kills each acknowledged document is back with exactly
/// the chunks its text cuts into. (That chunk vectors stay with their chunks through
/// kills is the engine's kill test's part: the fixture model here puts most texts at
/// nearly one point.) Cycles: `QUIVER_KILL_CYCLES`, at most 20 here (every restart loads
/// a model).
#[test]
fn chunked_documents_survive_sigkill_whole() {
    let cycles = kill_cycles(5).min(20);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    install(&data, "bert");
    let chunking = ChunkingConfig {
        max_tokens: 12,
        overlap_tokens: 3,
        strategy: ChunkStrategy::Sentence,
    };
    let registry = ModelRegistry::new(&data, ServiceConfig::default());
    let model = registry.embedder("test/bert").unwrap();
    let cut = |text: &str| -> Vec<(u64, u64)> {
        let spans = model.model().token_spans(text).unwrap();
        let chunks = chunk_tokens(text, &spans, &chunking);
        if chunks.len() < 2 {
            return Vec::new();
        }
        chunks
            .iter()
            .map(|c| (c.bytes.start as u64, c.bytes.end as u64))
            .collect()
    };
    let env = [("QUIVER_STORAGE_SEAL_ROWS", "40")];
    {
        let s = spawn(&data, &env);
        let r = s.req(
            "PUT",
            "/collections/c",
            Some(&json!({"embedding_model": "test/bert",
                "chunking": {"max_tokens": 12, "overlap_tokens": 3}})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut n = 0u64;
    for cycle in 0..cycles {
        let mut s = spawn(&data, &env);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (addr, stop) = (s.addr.clone(), Arc::clone(&stop));
            let start = n;
            thread::spawn(move || {
                let mut done = Vec::new();
                let mut n = start;
                while !stop.load(Ordering::Relaxed) {
                    // Two new documents of 10 to 40 words, and "hot" rewritten long or short.
                    let mut docs: Vec<(String, String)> = (0..2)
                        .map(|k| {
                            (
                                format!("d{n}-{k}"),
                                chunked_text(n * 2 + k, 10 + (n * 7 + k) % 31),
                            )
                        })
                        .collect();
                    docs.push((
                        "hot".into(),
                        chunked_text(n * 2 + 9_000_000, [2, 40, 25][n as usize % 3]),
                    ));
                    let body: Vec<_> = docs
                        .iter()
                        .map(|(id, t)| json!({"id": id, "text": t}))
                        .collect();
                    let r = request(
                        &addr,
                        "POST",
                        "/collections/c/documents",
                        Some(&json!({ "documents": body })),
                        None,
                    );
                    match r.status {
                        200 => done.extend(docs),
                        0 => break,
                        other => panic!("upsert answered {other}: {}", r.text()),
                    }
                    n += 1;
                }
                (done, n)
            })
        };
        thread::sleep(Duration::from_millis(80 + (cycle as u64 * 53) % 300));
        s.kill();
        stop.store(true, Ordering::Relaxed);
        let (done, next) = writer.join().unwrap();
        acked.extend(done);
        n = next + 1;
    }
    let s = spawn(&data, &env);
    // The newest acknowledged text of every id (a later, unacknowledged "hot" may win).
    let mut newest: std::collections::BTreeMap<String, String> = Default::default();
    for (id, text) in &acked {
        newest.insert(id.clone(), text.clone());
    }
    assert!(newest.len() > 1, "no write was acknowledged");
    for (id, text) in &newest {
        let r = s.req(
            "GET",
            &format!("/collections/c/documents/{id}?chunks=true"),
            None,
        );
        assert_eq!(r.status, 200, "acknowledged {id} lost: {}", r.text());
        let got = r.json();
        let stored = got["text"].as_str().unwrap();
        if id != "hot" {
            assert_eq!(stored, text, "{id}");
        }
        let spans: Vec<(u64, u64)> = got["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["start"].as_u64().unwrap(), c["end"].as_u64().unwrap()))
            .collect();
        assert_eq!(spans, cut(stored), "{id}: chunks of {stored:?}");
    }
}
