//! Filters compile from the metadata indexes: for random metadata (nested keys, arrays,
//! mixed types, missing fields) and random filters (every operator, nested groups),
//! the documents a filtered query returns must be exactly those whose stored JSON the
//! filter matches, in the memtable, in sealed segments, after compaction and after a
//! reopen, for dense and sparse queries. Plus: a filtered graph search at every
//! selectivity finds the allowed nearest neighbours.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use quiver_core::{CollectionConfig, Distance, Document, Filter, Metadata, SyncPolicy};
use quiver_engine::{Collection, CollectionOptions, Database, DbOptions, Query, QueryMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const DIM: usize = 4;

fn opts() -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            background_compaction: false,
            ..CollectionOptions::default()
        },
    }
}

fn pick<T: Clone>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())].clone()
}

/// A scalar of any JSON type, with collisions across types (`1`, `1.0`, `"1"`).
fn scalar(rng: &mut StdRng) -> Value {
    match rng.random_range(0..6) {
        0 => json!(pick(rng, &["red", "blue", "1", ""])),
        1 => json!(rng.random_range(-2i64..3)),
        2 => json!(pick(rng, &[-1.5, 0.0, 1.0, 2.5])),
        3 => json!(rng.random_bool(0.5)),
        4 => Value::Null,
        _ => json!(pick(rng, &[i64::MAX, (1i64 << 53) + 1])),
    }
}

fn value(rng: &mut StdRng, depth: usize) -> Value {
    match rng.random_range(0..if depth == 0 { 1 } else { 4 }) {
        0 | 1 => scalar(rng),
        2 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| value(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(object(rng, depth - 1)),
    }
}

fn object(rng: &mut StdRng, depth: usize) -> Metadata {
    (0..rng.random_range(0..4))
        .map(|_| {
            (
                pick(rng, &["a", "b", "tags", "x.y"]).to_string(),
                value(rng, depth),
            )
        })
        .collect()
}

fn key(rng: &mut StdRng) -> &'static str {
    pick(
        rng,
        &["a", "b", "tags", "a.b", "b.a", "a.tags", "missing", "x.y"],
    )
}

fn match_value(rng: &mut StdRng) -> Value {
    loop {
        let v = scalar(rng);
        if !v.is_null() && !v.is_f64() {
            return v;
        }
    }
}

fn condition(rng: &mut StdRng, depth: usize) -> Value {
    match rng.random_range(0..if depth == 0 { 3 } else { 4 }) {
        0 => json!({"key": key(rng), "match": match_value(rng)}),
        1 => json!({"key": key(rng), "any": [match_value(rng), match_value(rng)]}),
        2 => {
            let mut r = serde_json::Map::new();
            for op in ["gt", "gte", "lt", "lte"] {
                if r.is_empty() || rng.random_bool(0.3) {
                    r.insert(op.into(), json!(pick(rng, &[-1.0, 0.0, 0.5, 1.0, 2.0])));
                }
            }
            json!({"key": key(rng), "range": r})
        }
        _ => group(rng, depth - 1, true),
    }
}

fn group(rng: &mut StdRng, depth: usize, non_empty: bool) -> Value {
    let mut g = serde_json::Map::new();
    for list in ["must", "should", "must_not"] {
        let n = rng.random_range(0..3);
        if n > 0 {
            g.insert(list.into(), (0..n).map(|_| condition(rng, depth)).collect());
        }
    }
    if non_empty && g.is_empty() {
        g.insert("must".into(), json!([condition(rng, 0)]));
    }
    Value::Object(g)
}

fn doc(id: usize, rng: &mut StdRng) -> Document {
    Document {
        chunks: Vec::new(),
        id: format!("d{id}"),
        text: "common words".into(),
        metadata: object(rng, 2),
        vector: (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
    }
}

/// The ids a filtered query returns in `mode`.
fn found(c: &Collection, filter: &Filter, mode: QueryMode) -> BTreeSet<String> {
    let mut q = Query::dense(vec![0.5; DIM], 1000).with_filter(filter.clone());
    q.mode = mode;
    q.text = Some("common".into());
    q.exact = mode == QueryMode::Dense;
    c.query(&q)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.id)
        .collect()
}

/// Checks random filters against the documents' own JSON, by dense and sparse queries.
fn check(c: &Collection, docs: &[(String, Metadata)], rng: &mut StdRng, label: &str) {
    c.commit_text().unwrap();
    for _ in 0..12 {
        let json = group(rng, 2, false);
        let filter = Filter::parse(&json).unwrap();
        let want: BTreeSet<String> = docs
            .iter()
            .filter(|(_, m)| filter.matches(m))
            .map(|(id, _)| id.clone())
            .collect();
        for mode in [QueryMode::Dense, QueryMode::Sparse] {
            assert_eq!(
                found(c, &filter, mode),
                want,
                "{label}, {mode:?}, filter {json}"
            );
        }
    }
}

/// The visible documents: the last write of each id, deletes removed.
fn apply(model: &mut Vec<(String, Metadata)>, docs: &[Document], deleted: &[String]) {
    for d in docs {
        model.retain(|(id, _)| *id != d.id);
        model.push((d.id.clone(), d.metadata.clone()));
    }
    model.retain(|(id, _)| !deleted.contains(id));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn indexed_filters_match_evaluating_the_stored_json(seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mut model = Vec::new();
        {
            let db = Database::open(dir.path(), opts()).unwrap();
            let c = db
                .create_collection("f", CollectionConfig { distance: Distance::L2, ..CollectionConfig::new(DIM) })
                .unwrap();
            let first: Vec<Document> = (0..60).map(|i| doc(i, &mut rng)).collect();
            c.upsert(first.clone()).unwrap();
            apply(&mut model, &first, &[]);
            check(&c, &model, &mut rng, "memtable");
            c.seal().unwrap();
            check(&c, &model, &mut rng, "one segment");
            // Overwrites and deletes reaching into the segment, then a second one.
            let second: Vec<Document> = (40..100).map(|i| doc(i, &mut rng)).collect();
            c.upsert(second.clone()).unwrap();
            let gone: Vec<String> = (0..100).step_by(9).map(|i| format!("d{i}")).collect();
            c.delete(&gone).unwrap();
            apply(&mut model, &second, &gone);
            check(&c, &model, &mut rng, "segment and memtable");
            c.seal().unwrap();
            check(&c, &model, &mut rng, "two segments");
            assert!(c.compact().unwrap());
            check(&c, &model, &mut rng, "compacted");
        }
        let db = Database::open(dir.path(), opts()).unwrap();
        let c = db.collection("f").unwrap();
        check(&c, &model, &mut rng, "reopened");
        // The index files are derived data: a damaged one is rebuilt on open.
        for seg in std::fs::read_dir(dir.path().join("collections/f/segments")).unwrap() {
            let path = quiver_engine::fields_path(&seg.unwrap().path());
            if path.exists() {
                std::fs::write(&path, b"damaged").unwrap();
            }
        }
        drop(c);
        drop(db);
        let db = Database::open(dir.path(), opts()).unwrap();
        check(&db.collection("f").unwrap(), &model, &mut rng, "index rebuilt");
    }
}

/// Clustered vectors with a group per document; queries at selectivities from one
/// document in a thousand to half: the graph plans must find what exact search finds.
#[test]
fn filtered_search_keeps_recall_at_every_selectivity() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let dim = 16;
    let c = db
        .create_collection("r", CollectionConfig::new(dim))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let n = 6_000;
    let docs: Vec<Document> = (0..n)
        .map(|i| {
            let mut metadata = Metadata::new();
            metadata.insert("n".into(), json!(i));
            Document {
                chunks: Vec::new(),
                id: format!("v{i}"),
                text: String::new(),
                metadata,
                vector: (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
            }
        })
        .collect();
    for (i, chunk) in docs.chunks(1_000).enumerate() {
        c.upsert(chunk.to_vec()).unwrap();
        if i % 2 == 1 {
            c.seal().unwrap();
        }
    }
    let mut hits = 0;
    let mut total = 0;
    for allowed in [6, 60, 600, 1_500, 3_000, 6_000] {
        let filter =
            Filter::parse(&json!({"must": [{"key": "n", "range": {"lt": allowed}}]})).unwrap();
        for _ in 0..20 {
            let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let q = Query::dense(v.clone(), 10).with_filter(filter.clone());
            let got: BTreeSet<String> = c
                .query(&q)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.id)
                .collect();
            let want: BTreeSet<String> = c
                .search_exact_filtered(&v, 10, Some(&filter))
                .unwrap()
                .into_iter()
                .map(|h| h.id)
                .collect();
            assert!(
                got.len() == want.len().min(10),
                "allowed {allowed}: {} hits",
                got.len()
            );
            hits += got.intersection(&want).count();
            total += want.len();
        }
        let recall = hits as f64 / total as f64;
        assert!(recall >= 0.95, "allowed {allowed}: recall {recall}");
    }
}
