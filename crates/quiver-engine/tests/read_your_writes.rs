//! Read-your-writes in every query mode: a document is found by dense, sparse and
//! hybrid queries (with and without a filter) and by id the moment its upsert returns,
//! and is gone from all of them the moment its delete returns, while another thread
//! keeps writing (so seals and text commits happen in between).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use quiver_core::{CollectionConfig, Document, Filter, Metadata, SyncPolicy};
use quiver_engine::{Collection, CollectionOptions, Database, DbOptions, Query, QueryMode};
use serde_json::json;

const DIM: usize = 8;

/// A word no other document holds (letters only, so the stemmer keeps it whole).
fn word(i: usize) -> String {
    let letters: String = format!("{i:04}")
        .bytes()
        .map(|b| char::from(b'a' + (b - b'0')))
        .collect();
    format!("zyx{letters}")
}

fn vector(i: usize) -> Vec<f32> {
    (0..DIM)
        .map(|d| ((i * 7 + d * 13) % 17) as f32 - 8.0)
        .collect()
}

fn probe(i: usize) -> Document {
    let mut metadata = Metadata::new();
    metadata.insert("probe".into(), json!(i));
    Document {
        chunks: Vec::new(),
        id: format!("probe-{i}"),
        text: format!("a note about {}", word(i)),
        metadata,
        vector: vector(i),
    }
}

/// Which of the modes found `probe-i`: dense with a filter, sparse, sparse with a
/// filter, hybrid, and get by id.
fn seen(c: &Collection, i: usize) -> [bool; 5] {
    let id = format!("probe-{i}");
    let only = Filter::parse(&json!({"must": [{"key": "probe", "match": i}]})).unwrap();
    let run = |mode: QueryMode, filter: Option<&Filter>| {
        let mut q = Query::dense(vector(i), 10);
        q.mode = mode;
        q.text = Some(word(i));
        q.filter = filter.cloned();
        c.query(&q).unwrap().hits.iter().any(|h| h.id == id)
    };
    [
        run(QueryMode::Dense, Some(&only)),
        run(QueryMode::Sparse, None),
        run(QueryMode::Sparse, Some(&only)),
        run(QueryMode::Hybrid, None),
        c.get(&id).unwrap().is_some(),
    ]
}

#[test]
fn every_mode_sees_acknowledged_upserts_and_deletes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows: 300,
            // Long enough that only the queries' own catching up makes text visible.
            text_commit_interval: std::time::Duration::from_secs(3_600),
            text_commit_ops: 1_000_000,
            ..CollectionOptions::default()
        },
    };
    let db = Database::open(dir.path(), opts).unwrap();
    let c = db
        .create_collection("ryw", CollectionConfig::new(DIM))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let d = Document {
                    chunks: Vec::new(),
                    id: format!("noise-{}", n % 500),
                    text: "other words entirely".into(),
                    metadata: Metadata::new(),
                    vector: vector(n + 10_000),
                };
                c.upsert(vec![d]).unwrap();
                n += 1;
            }
            n
        })
    };
    for i in 0..60 {
        c.upsert(vec![probe(i)]).unwrap();
        assert_eq!(seen(&c, i), [true; 5], "probe {i} after its upsert");
        if i % 3 == 0 {
            c.delete(&[format!("probe-{i}")]).unwrap();
            assert_eq!(seen(&c, i), [false; 5], "probe {i} after its delete");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let noise = writer.join().unwrap();
    assert!(noise > 0);
    assert!(
        c.stats().maintenance.seals > 0,
        "no seal happened meanwhile"
    );
}
