//! Black-box behaviour of databases and collections: CRUD, validation, sealing,
//! compaction, recovery and start-up cleanup.

#![allow(clippy::unwrap_used)]

use std::fs;

use quiver_core::{CollectionConfig, Distance, Document, Metadata, SyncPolicy};
use quiver_engine::{CollectionOptions, Database, DbOptions, EngineError};

fn opts(seal_rows: usize) -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows,
            background_compaction: false,
            compact_small_rows: 1_000,
            ..CollectionOptions::default()
        },
    }
}

fn doc(id: &str, v: [f32; 3]) -> Document {
    let mut metadata = Metadata::new();
    metadata.insert("len".into(), serde_json::json!(id.len()));
    Document {
        chunks: Vec::new(),
        id: id.into(),
        text: format!("text of {id}"),
        metadata,
        vector: v.to_vec(),
    }
}

fn l2(dim: usize) -> CollectionConfig {
    CollectionConfig {
        distance: Distance::L2,
        ..CollectionConfig::new(dim)
    }
}

#[test]
fn crud_and_newest_wins_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    let c = db.create_collection("docs", l2(3)).unwrap();
    let l1 = c
        .upsert(vec![doc("a", [1.0, 0.0, 0.0]), doc("b", [0.0, 1.0, 0.0])])
        .unwrap();
    assert!(c.seal().unwrap());
    let l2_ = c.upsert(vec![doc("a", [9.0, 9.0, 9.0])]).unwrap();
    assert!(l2_ > l1);
    assert_eq!(c.count(), 2);
    assert_eq!(c.get("a").unwrap().unwrap().vector, vec![9.0, 9.0, 9.0]);
    assert!(c.seal().unwrap());
    assert_eq!(c.stats().segments, 2);
    assert_eq!(c.get("a").unwrap().unwrap().vector, vec![9.0, 9.0, 9.0]);
    let got_b = c.get("b").unwrap().unwrap();
    assert_eq!(got_b, doc("b", [0.0, 1.0, 0.0]));
    c.delete(&["b".to_string(), "never-existed".to_string()])
        .unwrap();
    assert_eq!(c.get("b").unwrap(), None);
    assert_eq!(c.count(), 1);
    let hits = c.search_exact(&[9.0, 9.0, 9.0], 5).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].id.as_str(), hits[0].score), ("a", 0.0));
    drop(c);
    drop(db);

    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.count(), 1);
    assert_eq!(c.get("b").unwrap(), None);
    assert_eq!(c.get("a").unwrap().unwrap().vector, vec![9.0, 9.0, 9.0]);
    assert!(c.compact().unwrap());
    assert_eq!(c.stats().segments, 1);
    assert_eq!(
        c.stats().segment_rows,
        1,
        "deleted rows dropped by compaction"
    );
    assert_eq!(c.get("a").unwrap().unwrap().text, "text of a");
}

#[test]
fn invalid_vectors_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    let c = db.create_collection("v", l2(3)).unwrap();
    c.upsert(vec![doc("ok", [1.0, 2.0, 3.0])]).unwrap();
    let lsn = c.last_lsn();
    let mut short = doc("short", [0.0; 3]);
    short.vector.pop();
    let nan = doc("nan", [0.0, f32::NAN, 0.0]);
    let inf = doc("inf", [f32::INFINITY, 0.0, 0.0]);
    for bad in [short, nan, inf] {
        let batch = vec![doc("fine", [1.0, 1.0, 1.0]), bad];
        let err = c.upsert(batch).unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        assert_eq!(c.last_lsn(), lsn, "WAL LSN moved");
        assert_eq!(c.count(), 1);
        assert_eq!(c.get("fine").unwrap(), None);
    }
    let empty_id = doc("", [0.0; 3]);
    assert!(matches!(
        c.upsert(vec![empty_id]),
        Err(EngineError::InvalidInput(_))
    ));
    assert!(c.search_exact(&[1.0], 1).is_err());
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    let c = db.collection("v").unwrap();
    assert_eq!((c.count(), c.last_lsn()), (1, lsn));
}

#[test]
fn cosine_normalizes_on_write_and_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    let c = db
        .create_collection("cos", CollectionConfig::new(3))
        .unwrap();
    c.upsert(vec![doc("x", [3.0, 4.0, 0.0]), doc("y", [0.0, 0.0, 2.0])])
        .unwrap();
    assert_eq!(c.get("x").unwrap().unwrap().vector, vec![0.6, 0.8, 0.0]);
    let hits = c.search_exact(&[30.0, 40.0, 0.0], 2).unwrap();
    assert_eq!(hits[0].id, "x");
    assert!((hits[0].score - 1.0).abs() < 1e-6);
    assert_eq!(hits[1].id, "y");
}

#[test]
fn sealed_history_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(10)).unwrap();
    let c = db.create_collection("s", l2(3)).unwrap();
    for i in 0..25 {
        c.upsert(vec![doc(&format!("d{i}"), [i as f32, 0.0, 0.0])])
            .unwrap();
    }
    // Thresholds sealed twice (in the background); five writes remain in the
    // memtable / WAL.
    assert!(c.wait_idle(std::time::Duration::from_secs(60)));
    assert_eq!(c.stats().segments, 2);
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), opts(10)).unwrap();
    let c = db.collection("s").unwrap();
    let s = c.stats();
    assert_eq!(
        (s.replayed_records, s.replayed_rows, s.mapped_rows),
        (5, 5, 20)
    );
    assert_eq!(c.count(), 25);
    c.seal().unwrap();
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), opts(10)).unwrap();
    let c = db.collection("s").unwrap();
    assert_eq!(c.stats().replayed_records, 0);
    assert_eq!(c.count(), 25);
    assert_eq!(c.get("d24").unwrap().unwrap().vector, vec![24.0, 0.0, 0.0]);
}

#[test]
fn leftover_temp_files_do_not_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    let c = db.create_collection("t", l2(3)).unwrap();
    c.upsert(vec![doc("a", [1.0, 1.0, 1.0])]).unwrap();
    c.seal().unwrap();
    c.upsert(vec![doc("b", [2.0, 2.0, 2.0])]).unwrap();
    let cdir = c.dir().to_path_buf();
    let seg = c.segments()[0].segment().dir().to_path_buf();
    drop(c);
    drop(db);
    // Debris of killed atomic replaces, a killed seal, and a killed create/drop.
    let garbage: &[u8] = b"\x00\xffhalf-written";
    fs::write(cdir.join("MANIFEST.tmp"), garbage).unwrap();
    fs::write(cdir.join("collection.json.tmp"), garbage).unwrap();
    fs::write(cdir.join(".MANIFEST.123-4.tmp"), garbage).unwrap();
    fs::write(seg.join(".TOMBSTONES.9-9.tmp"), garbage).unwrap();
    fs::create_dir_all(cdir.join("segments/77.tmp")).unwrap();
    fs::write(cdir.join("segments/77.tmp/vectors.f32"), garbage).unwrap();
    fs::create_dir_all(cdir.join("segments/5")).unwrap();
    let cols = dir.path().join("collections");
    fs::create_dir_all(cols.join(".creating-x-1-1/segments")).unwrap();
    fs::create_dir_all(cols.join(".dropped-y-1-1")).unwrap();

    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    assert_eq!(db.list_collections(), vec!["t".to_string()]);
    let c = db.collection("t").unwrap();
    assert_eq!(c.count(), 2);
    assert_eq!(c.get("b").unwrap().unwrap().vector, vec![2.0, 2.0, 2.0]);
    for p in [
        "MANIFEST.tmp",
        "collection.json.tmp",
        ".MANIFEST.123-4.tmp",
        "segments/77.tmp",
        "segments/5",
    ] {
        assert!(!cdir.join(p).exists(), "{p} left behind");
    }
    assert!(!seg.join(".TOMBSTONES.9-9.tmp").exists());
    assert!(!cols.join(".creating-x-1-1").exists() && !cols.join(".dropped-y-1-1").exists());
}

#[test]
fn database_names_and_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    for bad in ["", "..", "a/b", "../x", "x.y"] {
        assert!(
            matches!(db.create_collection(bad, l2(3)), Err(EngineError::Core(_))),
            "{bad:?}"
        );
        assert!(db.collection(bad).is_err());
        assert!(db.drop_collection(bad).is_err());
    }
    assert!(!dir.path().join("x").exists() && !dir.path().join("collections/a").exists());
    assert!(db.create_collection("zero", l2(0)).is_err());
    db.create_collection("b", l2(3)).unwrap();
    db.create_collection("a", l2(4)).unwrap();
    assert!(matches!(
        db.create_collection("a", l2(4)),
        Err(EngineError::AlreadyExists(_))
    ));
    assert_eq!(db.list_collections(), vec!["a", "b"]);
    assert!(matches!(
        db.collection("nope"),
        Err(EngineError::NotFound(_))
    ));
    db.drop_collection("a").unwrap();
    assert!(matches!(
        db.drop_collection("a"),
        Err(EngineError::NotFound(_))
    ));
    assert_eq!(db.list_collections(), vec!["b"]);
    let entries: Vec<_> = fs::read_dir(dir.path().join("collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, vec!["b"]);
    // A dropped name can be created again, empty.
    let a = db.create_collection("a", l2(2)).unwrap();
    assert_eq!(a.count(), 0);
    assert_eq!(a.config().dim, 2);
}

#[test]
fn background_compaction_under_overwrites_and_deletes() {
    // Many tiny segments and a background compactor merging them while ids are
    // overwritten and deleted; the final state must match a plain map.
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(4);
    o.collection.background_compaction = true;
    let db = Database::open(dir.path(), o).unwrap();
    let c = db.create_collection("race", l2(3)).unwrap();
    let mut expect = std::collections::BTreeMap::new();
    for i in 0..400u32 {
        let id = format!("k{}", i % 37);
        if i % 3 == 2 {
            c.delete(std::slice::from_ref(&id)).unwrap();
            expect.remove(&id);
        } else {
            let v = [i as f32, 1.0, 2.0];
            c.upsert(vec![doc(&id, v)]).unwrap();
            expect.insert(id, v);
        }
    }
    let check = |c: &quiver_engine::Collection| {
        assert_eq!(c.count(), expect.len());
        for i in 0..37 {
            let id = format!("k{i}");
            let got = c.get(&id).unwrap().map(|d| d.vector);
            assert_eq!(got, expect.get(&id).map(|v| v.to_vec()), "{id}");
        }
    };
    check(&c);
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), opts(4)).unwrap();
    check(&db.collection("race").unwrap());
}

#[test]
fn collection_json_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    let c = db.create_collection("cfg", l2(3)).unwrap();
    let p = c.dir().join("collection.json");
    drop(c);
    drop(db);
    let text = fs::read_to_string(&p).unwrap();
    fs::write(&p, text.replace("\"l2\"", "\"dot\"")).unwrap();
    assert!(Database::open(dir.path(), opts(1_000)).is_err());
}

#[test]
fn failed_sync_turns_collection_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(1_000);
    o.collection.sync = SyncPolicy::Always;
    let db = Database::open(dir.path(), o.clone()).unwrap();
    let c = db.create_collection("ro", l2(3)).unwrap();
    c.upsert(vec![doc("a", [1.0, 1.0, 1.0])]).unwrap();
    c.inject_wal_sync_failure();
    let err = c.upsert(vec![doc("b", [2.0, 2.0, 2.0])]).unwrap_err();
    assert!(matches!(err, EngineError::ReadOnly(_)), "{err}");
    assert!(c.is_read_only());
    let err = c.delete(&["a".to_string()]).unwrap_err();
    assert!(matches!(err, EngineError::ReadOnly(_)), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(matches!(c.seal(), Err(EngineError::ReadOnly(_))));
    // Reads keep working and never show the unacknowledged write.
    assert_eq!(c.count(), 1);
    assert_eq!(c.get("b").unwrap(), None);
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), o).unwrap();
    let c = db.collection("ro").unwrap();
    assert!(!c.is_read_only());
    assert!(c.get("a").unwrap().is_some());
    c.upsert(vec![doc("c", [3.0, 3.0, 3.0])]).unwrap();
}

#[test]
fn concurrent_writers_with_seals_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(16);
    o.collection.background_compaction = true;
    let db = Database::open(dir.path(), o.clone()).unwrap();
    let c = db.create_collection("conc", l2(3)).unwrap();
    let writers = 4u32;
    let rounds = 150u32;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let maint = s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.seal().unwrap();
                c.compact().unwrap();
                // Readers during maintenance never see a missing id that was written
                // and not deleted: ids w*1000 are written first and never deleted.
                for w in 0..writers {
                    let _ = c.get(&format!("{}", w * 1000)).unwrap();
                }
            }
        });
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let c = &c;
                s.spawn(move || {
                    for r in 0..rounds {
                        let id = format!("{}", w * 1000 + r % 10);
                        if r % 7 == 6 {
                            c.delete(&[id]).unwrap();
                        } else {
                            c.upsert(vec![doc(&id, [w as f32, r as f32, 0.0])]).unwrap();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        maint.join().unwrap();
    });
    // Each writer owns its ids, so its last operation on each id decides.
    let mut expect = std::collections::BTreeMap::new();
    for w in 0..writers {
        for r in 0..rounds {
            let id = format!("{}", w * 1000 + r % 10);
            if r % 7 == 6 {
                expect.remove(&id);
            } else {
                expect.insert(id, vec![w as f32, r as f32, 0.0]);
            }
        }
    }
    let check = |c: &quiver_engine::Collection| {
        assert_eq!(c.count(), expect.len());
        for w in 0..writers {
            for i in 0..10 {
                let id = format!("{}", w * 1000 + i);
                assert_eq!(
                    c.get(&id).unwrap().map(|d| d.vector),
                    expect.get(&id).cloned(),
                    "{id}"
                );
            }
        }
        let mut seen = Vec::new();
        c.for_each_live(|d| seen.push(d.id.to_string()));
        seen.sort();
        assert_eq!(seen, expect.keys().cloned().collect::<Vec<_>>());
    };
    check(&c);
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), o).unwrap();
    check(&db.collection("conc").unwrap());
}

#[test]
fn racing_writes_to_one_id_keep_the_highest_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(50)).unwrap();
    let c = db.create_collection("hot", l2(3)).unwrap();
    let ops: Vec<(u64, Option<f32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let c = &c;
                s.spawn(move || {
                    (0..200)
                        .map(|i| {
                            if i % 9 == 8 {
                                (c.delete(&["hot".to_string()]).unwrap(), None)
                            } else {
                                let v = (t * 1000 + i) as f32;
                                (c.upsert(vec![doc("hot", [v, 0.0, 0.0])]).unwrap(), Some(v))
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut lsns: Vec<u64> = ops.iter().map(|o| o.0).collect();
    lsns.sort_unstable();
    lsns.dedup();
    assert_eq!(lsns.len(), ops.len(), "every write got its own LSN");
    let newest = ops.iter().max_by_key(|o| o.0).unwrap().1;
    let check = |c: &quiver_engine::Collection| {
        assert_eq!(c.get("hot").unwrap().map(|d| d.vector[0]), newest);
        assert_eq!(c.count(), usize::from(newest.is_some()));
    };
    check(&c);
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), opts(50)).unwrap();
    check(&db.collection("hot").unwrap());
}

#[test]
fn a_data_directory_opens_once_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(1_000)).unwrap();
    let second = Database::open(dir.path(), opts(1_000));
    assert!(
        matches!(second, Err(quiver_engine::EngineError::Locked(_))),
        "{second:?}"
    );
    drop(db);
    Database::open(dir.path(), opts(1_000)).unwrap();
}
