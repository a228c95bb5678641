//! Dense, sparse and hybrid queries end to end: expected documents in every mode,
//! filters in every mode, explanations, validation, deletes and overwrites seen by
//! text search.

#![allow(clippy::unwrap_used)]

use quiver_core::{CollectionConfig, Document, Filter, Metadata, SyncPolicy};
use quiver_engine::{
    Collection, CollectionOptions, Database, DbOptions, EngineError, Fusion, Query, QueryMode,
};
use serde_json::json;

fn opts() -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            background_compaction: false,
            ..CollectionOptions::default()
        },
    }
}

fn axis(i: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[i] = 1.0;
    v
}

fn doc(id: &str, text: &str, lang: &str, vector: Vec<f32>) -> Document {
    let mut metadata = Metadata::new();
    metadata.insert("lang".into(), json!(lang));
    Document {
        chunks: Vec::new(),
        id: id.into(),
        text: text.into(),
        metadata,
        vector,
    }
}

fn filter(lang: &str) -> Filter {
    Filter::parse(&json!({"must": [{"key": "lang", "match": lang}]})).unwrap()
}

fn ids(c: &Collection, q: &Query) -> Vec<String> {
    c.query(q).unwrap().hits.into_iter().map(|h| h.id).collect()
}

/// Six documents: two sealed segments plus the memtable.
fn corpus(db: &Database) -> std::sync::Arc<Collection> {
    let c = db
        .create_collection("docs", CollectionConfig::new(6))
        .unwrap();
    let near0 = vec![0.9, 0.3, 0.0, 0.0, 0.0, 0.0];
    c.upsert(vec![
        doc("fox", "the quick brown fox jumps", "en", axis(0, 6)),
        doc("bear", "brown bears catch fish", "de", near0),
    ])
    .unwrap();
    c.seal().unwrap();
    c.upsert(vec![
        doc("dog", "lazy dogs sleep all day", "en", axis(1, 6)),
        doc("quantum", "quantum physics of light", "en", axis(2, 6)),
    ])
    .unwrap();
    c.seal().unwrap();
    c.upsert(vec![
        doc("cat", "a brown cat naps", "fr", axis(3, 6)),
        doc("gone", "brown paper bag", "en", axis(4, 6)),
    ])
    .unwrap();
    c.delete(&["gone".into()]).unwrap();
    c.commit_text().unwrap();
    c
}

#[test]
fn dense_sparse_and_hybrid_find_the_expected_documents() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = corpus(&db);

    // Dense: nearest to axis 0 are fox, then bear; explain carries the dense rank.
    let r = c.query(&Query::dense(axis(0, 6), 2).explained()).unwrap();
    let got: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(got, vec!["fox", "bear"]);
    let e = r.hits[1].explain.unwrap();
    assert_eq!(e.dense.unwrap().rank, 2);
    assert!(e.sparse.is_none() && e.fused.is_none());
    assert_eq!(r.hits[0].text, "the quick brown fox jumps");
    assert_eq!(r.hits[0].metadata["lang"], json!("en"));
    assert!((r.hits[0].score - 1.0).abs() < 1e-5);

    // Sparse: every live document with "brown"; the deleted one is gone.
    let mut got = ids(&c, &Query::sparse("brown", 10));
    got.sort();
    assert_eq!(got, vec!["bear", "cat", "fox"]);
    let r = c.query(&Query::sparse("bears", 10).explained()).unwrap();
    assert_eq!(r.hits[0].id, "bear");
    let e = r.hits[0].explain.unwrap();
    assert_eq!(e.sparse.unwrap().rank, 1);
    assert!(e.sparse.unwrap().score > 0.0 && e.dense.is_none());

    // Hybrid: the dense winner and the text matches are all there, with explanations.
    let r = c
        .query(&Query::hybrid(axis(2, 6), "brown", 10).explained())
        .unwrap();
    let got: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
    for want in ["quantum", "fox", "bear", "cat"] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
    assert!(!got.contains(&"gone"));
    for h in &r.hits {
        let e = h.explain.unwrap();
        assert_eq!(e.fused, Some(h.score));
        assert!(e.dense.is_some() || e.sparse.is_some());
    }
    let bear = r.hits.iter().find(|h| h.id == "bear").unwrap();
    let e = bear.explain.unwrap();
    assert!(e.dense.is_some() && e.sparse.is_some());
    // Under RRF a document in both lists beats the dense-only winner.
    let top = r.hits[0].explain.unwrap();
    assert!(
        top.dense.is_some() && top.sparse.is_some(),
        "{:?}",
        r.hits[0]
    );

    // Weighted fusion with alpha = 1 ranks by the dense list alone.
    let mut q = Query::hybrid(axis(2, 6), "brown", 3);
    q.fusion = Fusion::Weighted { alpha: 1.0 };
    assert_eq!(ids(&c, &q)[0], "quantum");
}

#[test]
fn filters_apply_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = corpus(&db);
    let en = filter("en");

    let got = ids(&c, &Query::dense(axis(0, 6), 10).with_filter(en.clone()));
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["dog", "fox", "quantum"]);
    assert_eq!(got[0], "fox");

    assert_eq!(
        ids(&c, &Query::sparse("brown", 10).with_filter(en.clone())),
        vec!["fox"]
    );
    assert_eq!(
        ids(&c, &Query::sparse("brown", 10).with_filter(filter("de"))),
        vec!["bear"]
    );
    let mut got = ids(
        &c,
        &Query::hybrid(axis(3, 6), "brown", 10).with_filter(filter("fr")),
    );
    got.sort();
    assert_eq!(got, vec!["cat"]);
    assert!(ids(
        &c,
        &Query::hybrid(axis(3, 6), "brown", 10).with_filter(filter("xx"))
    )
    .is_empty());

    // The ground truth agrees with the graph search under the filter.
    let exact: Vec<String> = c
        .search_exact_filtered(&axis(0, 6), 10, Some(&en))
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(
        exact,
        ids(&c, &Query::dense(axis(0, 6), 10).with_filter(en))
    );
}

#[test]
fn text_search_follows_overwrites_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = corpus(&db);
    // Deleted but not yet committed: resolution drops it already.
    c.delete(&["fox".into()]).unwrap();
    assert!(ids(&c, &Query::sparse("fox", 5)).is_empty());
    assert!(!ids(&c, &Query::dense(axis(0, 6), 5)).contains(&"fox".to_string()));
    // An overwrite of a sealed document changes its words once committed.
    c.upsert(vec![doc("dog", "penguins everywhere", "en", axis(1, 6))])
        .unwrap();
    c.commit_text().unwrap();
    assert!(ids(&c, &Query::sparse("dogs", 5)).is_empty());
    assert_eq!(ids(&c, &Query::sparse("penguins", 5)), vec!["dog"]);
    assert_eq!(c.text_index_docs(), 4);
}

#[test]
fn bad_queries_are_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = corpus(&db);
    let bad = [
        Query::dense(axis(0, 6), 0),
        Query::dense(axis(0, 5), 3),
        Query::dense(vec![f32::NAN; 6], 3),
        Query::sparse("   ", 3),
        Query {
            vector: None,
            ..Query::dense(axis(0, 6), 3)
        },
        Query {
            text: None,
            ..Query::hybrid(axis(0, 6), "x", 3)
        },
        Query {
            mode: QueryMode::Hybrid,
            fusion: Fusion::Weighted { alpha: 2.0 },
            ..Query::hybrid(axis(0, 6), "x", 3)
        },
        Query {
            ef: Some(0),
            ..Query::dense(axis(0, 6), 3)
        },
    ];
    for q in bad {
        match c.query(&q) {
            Err(EngineError::InvalidInput(_)) => {}
            other => panic!("{q:?} gave {other:?}"),
        }
    }
}
