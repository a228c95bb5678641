//! Durability of the text index: its commit LSN never falls behind the checkpoint,
//! survives reopen, and a missing or damaged index is rebuilt from the documents.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use quiver_core::{CollectionConfig, Document, Metadata, SyncPolicy};
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
