//! `exact: true` queries: brute force over every visible document. On collections
//! with sealed segments, memtable rows, deletes, overwrites and a filter, the ranked
//! ids and scores must equal `Collection::search_exact_filtered` (the ground truth),
//! for each distance and for a Matryoshka prefix index. Also: the dense timings add up.

#![allow(clippy::unwrap_used)]

use quiver_core::{CollectionConfig, Distance, Document, Filter, Metadata, SyncPolicy};
use quiver_engine::{Collection, CollectionOptions, Database, DbOptions, Query, QueryMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const DIM: usize = 16;

fn opts() -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            background_compaction: false,
            ..CollectionOptions::default()
        },
    }
}

fn vector(rng: &mut StdRng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn doc(i: usize, rng: &mut StdRng) -> Document {
    let mut metadata = Metadata::new();
    metadata.insert("group".into(), json!(["a", "b", "c"][i % 3]));
    Document {
        chunks: Vec::new(),
        id: format!("d{i}"),
        text: format!("document {i}"),
        metadata,
        vector: vector(rng),
    }
}

/// Three sealed segments, overwrites and deletes reaching into each, and memtable rows.
fn load(c: &Collection, rng: &mut StdRng) {
    for part in 0..3 {
        let docs = (part * 150..(part + 1) * 150)
            .map(|i| doc(i, rng))
            .collect();
        c.upsert(docs).unwrap();
        c.seal().unwrap();
    }
    // Overwrites of sealed ids (now memtable rows), new ids, and deletes of both.
    let mut docs: Vec<Document> = (0..450).step_by(7).map(|i| doc(i, rng)).collect();
    docs.extend((450..520).map(|i| doc(i, rng)));
    c.upsert(docs).unwrap();
    let gone: Vec<String> = (0..520).step_by(11).map(|i| format!("d{i}")).collect();
    c.delete(&gone).unwrap();
    let stats = c.stats();
    assert_eq!(stats.segments, 3, "{stats:?}");
    assert!(stats.memtable_entries > 100, "{stats:?}");
}

fn check(config: CollectionConfig, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db.create_collection("exact", config).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    load(&c, &mut rng);
    let filter = Filter::parse(&json!({"must_not": [{"key": "group", "match": "b"}]})).unwrap();
    let mut compared = 0;
    for _ in 0..25 {
        let q = vector(&mut rng);
        for (f, k) in [(None, 10), (Some(&filter), 25), (Some(&filter), 600)] {
            let mut query = Query::dense(q.clone(), k).with_exact(true);
            query.filter = f.cloned();
            let got: Vec<(String, f32)> = c
                .query(&query)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| (h.id, h.score))
                .collect();
            let want: Vec<(String, f32)> = c
                .search_exact_filtered(&q, k, f)
                .unwrap()
                .into_iter()
                .map(|h| (h.id, h.score))
                .collect();
            assert_eq!(got, want, "{label}: k {k}, filter {}", f.is_some());
            compared += got.len();
        }
    }
    assert!(compared > 25 * 35, "{label}: only {compared} hits compared");
    // The largest query saw every allowed document: the filter and deletes held.
    let q = vector(&mut rng);
    let all = c
        .query(
            &Query::dense(q.clone(), 600)
                .with_filter(filter.clone())
                .with_exact(true),
        )
        .unwrap();
    let allowed = c.search_exact_filtered(&q, 600, Some(&filter));
    assert_eq!(all.hits.len(), allowed.unwrap().len(), "{label}");
    assert!(all
        .hits
        .iter()
        .all(|h| h.metadata["group"] != json!("b") && h.text.starts_with("document")));
}

#[test]
fn exact_queries_equal_brute_force_ground_truth() {
    check(CollectionConfig::new(DIM), "cosine");
    check(
        CollectionConfig {
            distance: Distance::L2,
            ..CollectionConfig::new(DIM)
        },
        "l2",
    );
    check(
        CollectionConfig {
            distance: Distance::Dot,
            index_dim: Some(DIM / 2),
            ..CollectionConfig::new(DIM)
        },
        "dot, matryoshka",
    );
}

#[test]
fn exact_hybrid_uses_the_exact_dense_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection("hybrid", CollectionConfig::new(DIM))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    load(&c, &mut rng);
    c.commit_text().unwrap();
    let q = vector(&mut rng);
    let hybrid = Query {
        mode: QueryMode::Hybrid,
        text: Some("document".into()),
        ..Query::dense(q.clone(), 10)
    }
    .with_exact(true)
    .explained();
    let hits = c.query(&hybrid).unwrap().hits;
    let truth = c.search_exact(&q, 100).unwrap();
    assert_eq!(hits.len(), 10);
    for h in &hits {
        let e = h.explain.unwrap();
        if let Some(d) = e.dense {
            assert_eq!(truth[d.rank - 1].id, h.id, "dense rank of {}", h.id);
            assert_eq!(truth[d.rank - 1].score, d.score);
        }
    }
}

#[test]
fn dense_timings_cover_the_index_searches() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection("timed", CollectionConfig::new(DIM))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    load(&c, &mut rng);
    for exact in [false, true] {
        let t = c
            .query(&Query::dense(vector(&mut rng), 10).with_exact(exact))
            .unwrap()
            .timings;
        assert!(t.dense_index > std::time::Duration::ZERO, "{t:?}");
        assert!(t.dense_index <= t.dense, "{t:?}");
    }
    let sparse = c.query(&Query::sparse("document", 5)).unwrap().timings;
    assert_eq!(sparse.dense_index, std::time::Duration::ZERO);
}
