//! Durability of the text index: its commit LSN never falls behind the checkpoint,
//! survives reopen, and a missing or damaged index is rebuilt from the documents; BM25
//! settings are kept per collection.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use quiver_core::{Bm25Config, CollectionConfig, Document, Metadata, SyncPolicy};
use quiver_engine::{Collection, CollectionOptions, Database, DbOptions, Query, TEXT_DIR};

fn opts() -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows: 7,
            background_compaction: false,
            ..CollectionOptions::default()
        },
    }
}

fn doc(i: usize) -> Document {
    Document {
        chunks: Vec::new(),
        id: format!("d{i}"),
        text: format!("word{i} common"),
        metadata: Metadata::new(),
        vector: vec![i as f32, 1.0, 0.5],
    }
}

fn sparse_ids(c: &Collection, text: &str) -> Vec<String> {
    let mut ids: Vec<String> = c
        .query(&Query::sparse(text, 100))
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.id)
        .collect();
    ids.sort();
    ids
}

fn check_complete(c: &Collection, live: &[usize]) {
    let mut want: Vec<String> = live.iter().map(|i| format!("d{i}")).collect();
    want.sort();
    assert_eq!(sparse_ids(c, "common"), want);
    for i in live {
        assert_eq!(sparse_ids(c, &format!("word{i}")), vec![format!("d{i}")]);
    }
}

fn fill(dir: &Path) -> Vec<usize> {
    let db = Database::open(dir, opts()).unwrap();
    let c = db.create_collection("t", CollectionConfig::new(3)).unwrap();
    for i in 0..30 {
        c.upsert(vec![doc(i)]).unwrap();
        // Seals move the checkpoint; the text index must never be behind it.
        let checkpoint = c.stats().checkpoint_lsn;
        let committed = c.text_index_lsn().unwrap().unwrap_or(0);
        assert!(committed >= checkpoint, "{committed} < {checkpoint}");
    }
    c.delete(&["d3".into(), "d20".into()]).unwrap();
    assert!(c.stats().segments >= 3);
    (0..30).filter(|&i| i != 3 && i != 20).collect()
}

#[test]
fn commit_lsn_covers_the_checkpoint_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let live = fill(dir.path());
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db.collection("t").unwrap();
    let lsn = c.text_index_lsn().unwrap().unwrap();
    assert!(lsn >= c.stats().checkpoint_lsn);
    assert_eq!(lsn, c.last_lsn());
    check_complete(&c, &live);
    assert_eq!(c.text_index_docs(), live.len() as u64);
}

#[test]
fn missing_or_damaged_text_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let live = fill(dir.path());
    let text_dir = dir.path().join("collections").join("t").join(TEXT_DIR);
    std::fs::remove_dir_all(&text_dir).unwrap();
    {
        let db = Database::open(dir.path(), opts()).unwrap();
        let c = db.collection("t").unwrap();
        check_complete(&c, &live);
    }
    std::fs::write(text_dir.join("meta.json"), b"{ not json").unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db.collection("t").unwrap();
    check_complete(&c, &live);
    assert_eq!(c.text_index_lsn().unwrap(), Some(c.last_lsn()));
}

/// Sparse scores by id.
fn sparse_scores(c: &Collection, text: &str) -> Vec<(String, f32)> {
    let mut hits: Vec<(String, f32)> = c
        .query(&Query::sparse(text, 100))
        .unwrap()
        .hits
        .into_iter()
        .map(|h| (h.id, h.score))
        .collect();
    hits.sort_by(|a, b| a.0.cmp(&b.0));
    hits
}

#[test]
fn bm25_settings_rank_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let flat = Bm25Config { k1: 0.0, b: 0.0 };
    {
        let db = Database::open(dir.path(), opts()).unwrap();
        for (name, bm25) in [("default", Bm25Config::default()), ("flat", flat)] {
            let config = CollectionConfig {
                bm25,
                ..CollectionConfig::new(3)
            };
            let c = db.create_collection(name, config).unwrap();
            let texts = ["apple apple apple apple pie", "apple pie", "cherry pie"];
            for (i, text) in texts.into_iter().enumerate() {
                c.upsert(vec![Document {
                    chunks: Vec::new(),
                    text: text.into(),
                    ..doc(i)
                }])
                .unwrap();
            }
            c.sync().unwrap();
        }
    }
    let db = Database::open(dir.path(), opts()).unwrap();
    let default = db.collection("default").unwrap();
    let flat_c = db.collection("flat").unwrap();
    assert_eq!(default.config().bm25, Bm25Config::default());
    assert_eq!(flat_c.config().bm25, flat);
    // By default the four-fold `apple` outweighs the shorter document...
    let d = sparse_scores(&default, "apple");
    assert_eq!((d[0].0.as_str(), d[1].0.as_str()), ("d0", "d1"));
    assert!(d[0].1 > d[1].1, "{d:?}");
    // ...with k1 = 0 and b = 0 neither repeats nor length count.
    let f = sparse_scores(&flat_c, "apple");
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].1, f[1].1, "{f:?}");
}
