//! Snapshots end to end in the engine: a snapshot taken under write load restores
//! exactly the writes up to its LSN and answers dense, sparse and hybrid queries like a
//! reference collection holding the same documents; overwrites and deletes; whole-
//! database snapshots; and every kind of damaged or unsafe archive is refused with the
//! live collection unchanged and no staging left behind.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use quiver_core::{CollectionConfig, Document, Metadata, SyncPolicy};
use quiver_engine::snapshot::{Compression, RestoreLimits, SnapshotScope};
use quiver_engine::{Collection, CollectionOptions, Database, DbOptions, EngineError, Query};
use rand::{Rng, SeedableRng};

const DIM: usize = 16;
const WORDS: [&str; 12] = [
    "apple", "river", "stone", "cloud", "maple", "tiger", "ocean", "ember", "frost", "lemon",
    "cedar", "amber",
];

fn opts() -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows: 120,
            text_commit_ops: 50,
            ..CollectionOptions::default()
        },
    }
}

fn doc(i: usize, rng: &mut impl Rng) -> Document {
    let text = format!(
        "doc{i} {} {} {}",
        WORDS[rng.random_range(0..WORDS.len())],
        WORDS[rng.random_range(0..WORDS.len())],
        WORDS[i % WORDS.len()]
    );
    let mut metadata = Metadata::new();
    metadata.insert("n".into(), serde_json::json!(i));
    Document {
        chunks: Vec::new(),
        id: format!("d{i}"),
        text,
        metadata,
        vector: (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
    }
}

fn scope(c: &str) -> SnapshotScope {
    SnapshotScope::Collection(c.into())
}

fn limits() -> RestoreLimits {
    RestoreLimits::default()
}

fn archive(db: &Database, coll: &str, name: &str) -> Vec<u8> {
    let (mut f, _) = db.open_snapshot(&scope(coll), name).unwrap();
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).unwrap();
    bytes
}

/// Every visible document, by id.
fn contents(c: &Collection) -> BTreeMap<String, Document> {
    let mut ids = Vec::new();
    c.for_each_live(|d| ids.push(d.id.to_string()));
    ids.into_iter()
        .map(|id| {
            let d = c.get(&id).unwrap().unwrap();
            (id, d)
        })
        .collect()
}

fn hits(c: &Collection, q: &Query) -> Vec<(String, f32)> {
    c.query(q)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| (h.id, h.score))
        .collect()
}

fn assert_same_hits(a: &[(String, f32)], b: &[(String, f32)], what: &str) {
    let ids = |v: &[(String, f32)]| v.iter().map(|h| h.0.clone()).collect::<Vec<_>>();
    assert_eq!(ids(a), ids(b), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x.1 - y.1).abs() < 1e-4,
            "{what}: {} scores {} vs {}",
            x.0,
            x.1,
            y.1
        );
    }
}

/// An acknowledged batch and its LSN.
type Acked = (u64, Vec<Document>);

#[test]
fn snapshot_under_write_load_restores_exactly_to_its_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path(), opts()).unwrap());
    let src = db
        .create_collection("src", CollectionConfig::new(DIM))
        .unwrap();
    // Every acknowledged batch with its LSN.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (src, acked, written, stop) =
            (src.clone(), acked.clone(), written.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let mut i = 0;
            while !stop.load(Ordering::Acquire) && i < 1500 {
                let batch: Vec<Document> = (i..i + 5).map(|j| doc(j, &mut rng)).collect();
                i += 5;
                let lsn = src.upsert(batch.clone()).unwrap();
                acked.lock().unwrap().push((lsn, batch));
                written.store(i, Ordering::Release);
            }
        })
    };
    while written.load(Ordering::Acquire) < 400 {
        std::thread::yield_now();
    }
    let snap = db
        .create_snapshot(&scope("src"), Some("load"), Compression::None)
        .unwrap();
    while written.load(Ordering::Acquire) < 700 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    assert_eq!(snap.name, "load");
    assert!(snap.size > 0);
    assert!(
        src.last_lsn() > snap.lsn,
        "writes continued after the snapshot"
    );

    let expected: Vec<Document> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(lsn, _)| *lsn <= snap.lsn)
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert!(expected.len() >= 400, "{}", expected.len());

    let restored = db
        .restore_snapshot(&scope("src"), "load", Some("copy"), &limits())
        .unwrap();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].name, "copy");
    assert_eq!(restored[0].lsn, snap.lsn);
    assert_eq!(restored[0].documents, expected.len());
    let copy = db.collection("copy").unwrap();
    assert_eq!(copy.last_lsn(), snap.lsn);
    assert_eq!(copy.count(), expected.len());

    // A reference collection holding exactly the acknowledged documents.
    let reference = db
        .create_collection("reference", CollectionConfig::new(DIM))
        .unwrap();
    for chunk in expected.chunks(100) {
        reference.upsert(chunk.to_vec()).unwrap();
    }
    reference.sync().unwrap();
    copy.sync().unwrap();
    let (got, want) = (contents(&copy), contents(&reference));
    assert_eq!(got.len(), want.len());
    for (id, d) in &want {
        let g = &got[id];
        assert_eq!((&g.text, &g.metadata), (&d.text, &d.metadata), "{id}");
        for (x, y) in g.vector.iter().zip(&d.vector) {
            assert!((x - y).abs() < 1e-6, "{id}");
        }
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    for round in 0..8 {
        let v: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let text = format!("{} {}", WORDS[round], WORDS[(round * 5 + 3) % WORDS.len()]);
        let mut dense = Query::dense(v.clone(), 10);
        dense.ef = Some(4096);
        let mut hybrid = Query::hybrid(v, text.clone(), 10);
        hybrid.ef = Some(4096);
        let sparse = Query::sparse(text, 10);
        for (q, what) in [(&dense, "dense"), (&sparse, "sparse"), (&hybrid, "hybrid")] {
            assert_same_hits(&hits(&copy, q), &hits(&reference, q), what);
        }
    }

    // And after a reopen of the whole database.
    drop((copy, reference, src));
    let db = Arc::try_unwrap(db).unwrap();
    drop(db);
    let db = Database::open(dir.path(), opts()).unwrap();
    let copy = db.collection("copy").unwrap();
    assert_eq!(copy.count(), expected.len());
    assert_eq!(copy.last_lsn(), snap.lsn);
}

#[test]
fn overwrites_and_deletes_restore_into_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM))
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    c.upsert((0..300).map(|i| doc(i, &mut rng)).collect())
        .unwrap();
    c.seal().unwrap();
    c.delete(&(0..50).map(|i| format!("d{i}")).collect::<Vec<_>>())
        .unwrap();
    c.upsert((100..150).map(|i| doc(i, &mut rng)).collect())
        .unwrap();
    let before = contents(&c);
    let snap = db
        .create_snapshot(&scope("c"), Some("s1"), Compression::Zstd)
        .unwrap();
    // Change everything afterwards; the restore must undo it.
    c.delete(&(50..250).map(|i| format!("d{i}")).collect::<Vec<_>>())
        .unwrap();
    c.upsert((1000..1010).map(|i| doc(i, &mut rng)).collect())
        .unwrap();
    c.seal().unwrap();
    drop(c);
    let out = db
        .restore_snapshot(&scope("c"), "s1", None, &limits())
        .unwrap();
    assert_eq!(out[0].name, "c");
    assert_eq!(out[0].lsn, snap.lsn);
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(), 250);
    assert_eq!(contents(&c), before);
    assert!(c.get("d10").unwrap().is_none());
    assert!(c.get("d1005").unwrap().is_none());
    // New writes continue above the restored LSN.
    let lsn = c.upsert(vec![doc(2000, &mut rng)]).unwrap();
    assert_eq!(lsn, snap.lsn + 1);
    let listed = db.list_snapshots(&scope("c")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "s1");
    assert_eq!(listed[0].lsn, Some(snap.lsn));
    assert_eq!(listed[0].collections, snap.collections);
    // The LSN record lies beside the archive; without it the listing still names the
    // snapshot, only without its LSN.
    let stored = dir.path().join("snapshots/collections/c");
    let record = stored.join("s1.lsn.json");
    let saved = std::fs::read(&record).unwrap();
    std::fs::remove_file(&record).unwrap();
    let listed = db.list_snapshots(&scope("c")).unwrap();
    assert_eq!((listed[0].name.as_str(), listed[0].lsn), ("s1", None));
    assert!(listed[0].collections.is_empty());
    std::fs::write(&record, b"{damaged").unwrap();
    assert_eq!(db.list_snapshots(&scope("c")).unwrap()[0].lsn, None);
    std::fs::write(&record, saved).unwrap();
    assert_eq!(
        db.list_snapshots(&scope("c")).unwrap()[0].lsn,
        Some(snap.lsn)
    );
    // Deleting removes both files.
    db.delete_snapshot(&scope("c"), "s1").unwrap();
    assert_eq!(std::fs::read_dir(&stored).unwrap().count(), 0);
    assert!(matches!(
        db.delete_snapshot(&scope("c"), "s1"),
        Err(EngineError::NotFound(_))
    ));
    assert!(matches!(
        db.restore_snapshot(&scope("c"), "s1", None, &limits()),
        Err(EngineError::NotFound(_))
    ));
}

#[test]
fn whole_database_snapshot_restores_every_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let a = db
        .create_collection("a", CollectionConfig::new(DIM))
        .unwrap();
    let b = db
        .create_collection("b", CollectionConfig::new(DIM))
        .unwrap();
    a.upsert((0..40).map(|i| doc(i, &mut rng)).collect())
        .unwrap();
    b.upsert((0..7).map(|i| doc(i, &mut rng)).collect())
        .unwrap();
    let snap = db
        .create_snapshot(&SnapshotScope::Database, Some("all"), Compression::None)
        .unwrap();
    assert_eq!(snap.collections.len(), 2);
    a.delete(&["d1".to_string()]).unwrap();
    drop((a, b));
    db.drop_collection("b").unwrap();
    // A target name needs a one-collection archive.
    assert!(matches!(
        db.restore_snapshot(&SnapshotScope::Database, "all", Some("x"), &limits()),
        Err(EngineError::InvalidInput(_))
    ));
    let out = db
        .restore_snapshot(&SnapshotScope::Database, "all", None, &limits())
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(db.collection("a").unwrap().count(), 40);
    assert_eq!(db.collection("b").unwrap().count(), 7);
}

/// Rewrites a tar archive entry by entry; `edit` may change an entry's path, bytes or
/// type, drop it (None), or the caller may append extra raw entries.
fn rewrite(
    bytes: &[u8],
    mut edit: impl FnMut(&str, Vec<u8>) -> Option<(String, Vec<u8>)>,
    extra: &[(&[u8], tar::EntryType, &[u8])],
) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(bytes);
    let mut manifest = None;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if path == "quiver-snapshot.json" {
            manifest = Some(data);
            continue;
        }
        if let Some((p, d)) = edit(&path, data) {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            out.append_data(&mut h, p, d.as_slice()).unwrap();
        }
    }
    for (name, kind, data) in extra {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        if *kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        out.append(&h, *data).unwrap();
    }
    let m = manifest.unwrap();
    if let Some((p, d)) = edit("quiver-snapshot.json", m) {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, p, d.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}

#[test]
fn damaged_or_unsafe_archives_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let c = db
        .create_collection("live", CollectionConfig::new(DIM))
        .unwrap();
    c.upsert((0..200).map(|i| doc(i, &mut rng)).collect())
        .unwrap();
    c.seal().unwrap();
    c.upsert((200..230).map(|i| doc(i, &mut rng)).collect())
        .unwrap();
    db.create_snapshot(&scope("live"), Some("good"), Compression::None)
        .unwrap();
    let good = archive(&db, "live", "good");
    // The live collection then diverges from the snapshot.
    c.upsert((500..510).map(|i| doc(i, &mut rng)).collect())
        .unwrap();
    let live_before = contents(&c);
    drop(c);

    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    // A flipped byte in every file (the manifest included).
    let mut names = Vec::new();
    rewrite(
        &good,
        |p, d| {
            names.push(p.to_string());
            Some((p.to_string(), d))
        },
        &[],
    );
    assert!(names.iter().any(|n| n.contains("/wal/")));
    assert!(names.iter().any(|n| n.contains("/text/")));
    assert!(names.iter().any(|n| n.ends_with("/graph.qvg")));
    for name in &names {
        let flipped = rewrite(
            &good,
            |p, mut d| {
                if p == name && !d.is_empty() {
                    let at = d.len() / 2;
                    d[at] ^= 0x01;
                }
                Some((p.to_string(), d))
            },
            &[],
        );
        cases.push((format!("flipped byte in {name}"), flipped));
    }
    cases.push(("truncated".into(), good[..good.len() / 2].to_vec()));
    cases.push((
        "truncated at the end".into(),
        good[..good.len() - 1500].to_vec(),
    ));
    cases.push(("empty".into(), Vec::new()));
    let victim = names
        .iter()
        .find(|n| n.contains("/segments/"))
        .unwrap()
        .clone();
    cases.push((
        "missing file".into(),
        rewrite(&good, |p, d| (p != victim).then(|| (p.to_string(), d)), &[]),
    ));
    cases.push((
        "extra file".into(),
        rewrite(
            &good,
            |p, d| Some((p.to_string(), d)),
            &[(b"collections/live/extra", tar::EntryType::Regular, b"x")],
        ),
    ));
    cases.push((
        "path traversal".into(),
        rewrite(
            &good,
            |p, d| Some((p.to_string(), d)),
            &[(
                b"collections/live/../../../evil",
                tar::EntryType::Regular,
                b"x",
            )],
        ),
    ));
    cases.push((
        "absolute path".into(),
        rewrite(
            &good,
            |p, d| Some((p.to_string(), d)),
            &[(b"/tmp/evil", tar::EntryType::Regular, b"x")],
        ),
    ));
    cases.push((
        "symlink".into(),
        rewrite(
            &good,
            |p, d| Some((p.to_string(), d)),
            &[(b"collections/live/link", tar::EntryType::Symlink, b"")],
        ),
    ));
    cases.push((
        "hard link".into(),
        rewrite(
            &good,
            |p, d| Some((p.to_string(), d)),
            &[(b"collections/live/hard", tar::EntryType::Link, b"")],
        ),
    ));
    cases.push((
        "not an archive".into(),
        b"hello world, certainly not tar".repeat(40),
    ));

    for (what, bytes) in &cases {
        let err = db
            .restore_archive(bytes.as_slice(), Some("live"), &limits())
            .expect_err(what);
        eprintln!("{what}: {err}");
        assert!(
            matches!(err, EngineError::InvalidSnapshot(_)),
            "{what}: {err}"
        );
        let c = db.collection("live").unwrap();
        assert_eq!(contents(&c), live_before, "{what}");
        let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("collections"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
    }

    // Over the size limit: refused as too large.
    let small = RestoreLimits {
        max_bytes: 4096,
        ..RestoreLimits::default()
    };
    assert!(matches!(
        db.restore_archive(good.as_slice(), Some("live"), &small),
        Err(EngineError::TooLarge(_))
    ));
    // The untouched archive still restores (so the cases above failed for their damage).
    db.restore_archive(good.as_slice(), Some("fresh"), &limits())
        .unwrap();
    assert_eq!(db.collection("fresh").unwrap().count(), 230);
    assert_eq!(db.collection("live").unwrap().count(), 240);
}
