//! Queries running while a writer upserts and deletes and seals and compactions swap
//! the segment list: every query succeeds with distinct ids, and every acknowledged
//! write (or delete) is seen by the writer's very next query, through the graphs and
//! through an exact scan.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quiver_core::{CollectionConfig, Document, Filter, Metadata, SyncPolicy};
use quiver_engine::{CollectionOptions, Database, DbOptions, Query};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const DIM: usize = 12;
const BATCHES: usize = 60;
const BATCH: usize = 20;

fn vector(rng: &mut StdRng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn by_number(n: usize) -> Filter {
    Filter::parse(&json!({"must": [{"key": "n", "match": n}]})).unwrap()
}

#[test]
fn queries_run_beside_writes_seals_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows: 150,
            compact_small_rows: 400,
            // Merge while writes go on, so the tests meet compactions mid-write.
            compact_quiet: Duration::ZERO,
            background_compaction: true,
            ..CollectionOptions::default()
        },
    };
    let db = Database::open(dir.path(), opts).unwrap();
    let c = db
        .create_collection("busy", CollectionConfig::new(DIM))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(AtomicUsize::new(0));

    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (c, done, queries) = (Arc::clone(&c), Arc::clone(&done), Arc::clone(&queries));
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(100 + t);
                while !done.load(Ordering::Acquire) {
                    let exact = rng.random_bool(0.3);
                    let q = Query::dense(vector(&mut rng), 10).with_exact(exact);
                    let hits = c.query(&q).unwrap().hits;
                    let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
                    assert_eq!(ids.len(), hits.len(), "duplicate ids: {hits:?}");
                    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
                    queries.fetch_add(1, Ordering::AcqRel);
                }
            })
        })
        .collect();
    let maintainer = {
        let (c, done) = (Arc::clone(&c), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !done.load(Ordering::Acquire) {
                c.seal().unwrap();
                c.compact().unwrap();
                rounds += 1;
            }
            rounds
        })
    };

    let mut rng = StdRng::seed_from_u64(1);
    let mut live = 0;
    for b in 0..BATCHES {
        let docs: Vec<(usize, Vec<f32>)> = (0..BATCH)
            .map(|i| (b * BATCH + i, vector(&mut rng)))
            .collect();
        let batch = docs
            .iter()
            .map(|(n, v)| {
                let mut metadata = Metadata::new();
                metadata.insert("n".into(), json!(n));
                Document {
                    chunks: Vec::new(),
                    id: format!("w{n}"),
                    text: String::new(),
                    metadata,
                    vector: v.clone(),
                }
            })
            .collect();
        c.upsert(batch).unwrap();
        live += BATCH;
        // Read-your-writes: the next query finds each new document, by exact scan and
        // through the filtered graph search.
        for (n, v) in docs.iter().step_by(5) {
            let id = format!("w{n}");
            let exact = c
                .query(&Query::dense(v.clone(), 1).with_exact(true))
                .unwrap();
            assert_eq!(exact.hits[0].id, id, "batch {b}");
            let graph = c
                .query(&Query::dense(v.clone(), 1).with_filter(by_number(*n)))
                .unwrap();
            assert_eq!(graph.hits.len(), 1, "batch {b}: {id} missing");
            assert_eq!(graph.hits[0].id, id);
        }
        // And a delete is gone from the next query.
        if b % 3 == 2 {
            let (n, v) = &docs[0];
            c.delete(&[format!("w{n}")]).unwrap();
            live -= 1;
            let after = c
                .query(&Query::dense(v.clone(), 5).with_exact(true))
                .unwrap();
            assert!(after.hits.iter().all(|h| h.id != format!("w{n}")));
            let filtered = c
                .query(&Query::dense(v.clone(), 1).with_filter(by_number(*n)))
                .unwrap();
            assert!(filtered.hits.is_empty(), "deleted w{n} still found");
        }
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    let rounds = maintainer.join().unwrap();
    assert!(queries.load(Ordering::Acquire) > 0);
    assert!(rounds > 0);
    assert_eq!(c.count(), live);
    let everything = c
        .query(&Query::dense(vector(&mut rng), live).with_exact(true))
        .unwrap();
    assert_eq!(everything.hits.len(), live);
}
