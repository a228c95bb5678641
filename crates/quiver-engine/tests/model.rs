//! Model test: random sequences of upsert / delete / get / search / seal / compact /
//! close-and-reopen, checked after every step against a `BTreeMap`.
//!
//! Ids come from a space of 6 so they collide constantly; vectors have 4 small
//! integer components, so exact-search ties are common and the id tie-break is
//! exercised. Each text carries one colour word; after every reopen a sparse query for
//! each colour must return exactly the live documents whose text has it. Respects
//! `PROPTEST_CASES`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use quiver_core::{normalize, CollectionConfig, Distance, Document, Metadata, SyncPolicy};
use quiver_engine::{Collection, CollectionOptions, Database, DbOptions, Query};

const IDS: u8 = 6;
const K: usize = 3;
const COLOURS: [&str; 3] = ["red", "green", "blue"];

#[derive(Debug, Clone)]
enum Op {
    Upsert(Vec<(u8, [i8; 4])>),
    Delete(Vec<u8>),
    Search([i8; 4]),
    Seal,
    Compact,
    Reopen,
}

fn vec4() -> impl Strategy<Value = [i8; 4]> {
    prop::array::uniform4(-3i8..=3)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => prop::collection::vec((0..IDS, vec4()), 1..4).prop_map(Op::Upsert),
        2 => prop::collection::vec(0..IDS, 1..3).prop_map(Op::Delete),
        1 => vec4().prop_map(Op::Search),
        1 => Just(Op::Seal),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn distance() -> impl Strategy<Value = Distance> {
    prop_oneof![
        Just(Distance::Cosine),
        Just(Distance::Dot),
        Just(Distance::L2)
    ]
}

fn to_f32(v: [i8; 4]) -> Vec<f32> {
    v.iter().map(|&x| f32::from(x)).collect()
}

fn options(seal_rows: usize) -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows,
            background_compaction: false,
            compact_small_rows: 8,
            ..CollectionOptions::default()
        },
    }
}

/// The model: id -> (text, stored vector).
type Model = BTreeMap<String, (String, Vec<f32>)>;

fn model_search(model: &Model, distance: Distance, query: &[f32], k: usize) -> Vec<(String, f32)> {
    let mut q = query.to_vec();
    if distance.normalizes() {
        normalize(&mut q);
    }
    let mut all: Vec<(String, f32)> = model
        .iter()
        .map(|(id, (_, v))| (id.clone(), distance.score(&q, v)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

fn check(
    c: &Collection,
    model: &Model,
    distance: Distance,
    query: &[f32],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.count(), model.len());
    for i in 0..IDS {
        let id = format!("id{i}");
        let got = c.get(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = got.map(|d| (d.text, d.vector));
        prop_assert_eq!(got.as_ref(), model.get(&id), "get {}", id);
    }
    let hits = c
        .search_exact(query, K)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let hits: Vec<(String, f32)> = hits.into_iter().map(|h| (h.id, h.score)).collect();
    prop_assert_eq!(hits, model_search(model, distance, query, K));
    Ok(())
}

/// Sparse search for each colour finds exactly the live documents that have it.
fn check_text(c: &Collection, model: &Model) -> Result<(), TestCaseError> {
    for colour in COLOURS {
        let hits = c
            .query(&Query::sparse(colour, 10))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut got: Vec<String> = hits.hits.into_iter().map(|h| h.id).collect();
        got.sort();
        let want: Vec<String> = model
            .iter()
            .filter(|(_, (text, _))| text.split(' ').any(|w| w == colour))
            .map(|(id, _)| id.clone())
            .collect();
        prop_assert_eq!(got, want, "sparse {}", colour);
    }
    Ok(())
}

fn run(ops: Vec<Op>, distance: Distance, seal_rows: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let open = || {
        Database::open(dir.path(), options(seal_rows))
            .map_err(|e| TestCaseError::fail(e.to_string()))
    };
    let mut db = open()?;
    let config = CollectionConfig {
        distance,
        ..CollectionConfig::new(4)
    };
    let mut c = db
        .create_collection("m", config)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model::new();
    let mut query = vec![1.0, 2.0, -1.0, 0.5];
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Upsert(batch) => {
                let docs: Vec<Document> = batch
                    .iter()
                    .map(|&(i, v)| Document {
                        chunks: Vec::new(),
                        id: format!("id{i}"),
                        text: format!("id{i} at step {step} {}", COLOURS[(step + i as usize) % 3]),
                        metadata: Metadata::new(),
                        vector: to_f32(v),
                    })
                    .collect();
                c.upsert(docs.clone())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                for d in docs {
                    let mut v = d.vector;
                    if distance.normalizes() {
                        normalize(&mut v);
                    }
                    model.insert(d.id, (d.text, v));
                }
            }
            Op::Delete(ids) => {
                let ids: Vec<String> = ids.iter().map(|i| format!("id{i}")).collect();
                c.delete(&ids)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                for id in ids {
                    model.remove(&id);
                }
            }
            Op::Search(q) => query = to_f32(q),
            Op::Seal => {
                c.seal().map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Compact => {
                c.compact()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Reopen => {
                drop(c);
                drop(db);
                db = open()?;
                c = db
                    .collection("m")
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                check_text(&c, &model)?;
            }
        }
        check(&c, &model, distance, &query)?;
    }
    Ok(())
}

proptest! {
    #[test]
    fn collection_matches_btreemap(
        ops in prop::collection::vec(op(), 1..30),
        distance in distance(),
        seal_rows in 2usize..8,
    ) {
        run(ops, distance, seal_rows)?;
    }
}
