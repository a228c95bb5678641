//! Sealed segments' flat graphs on disk: written at seal, mapped (never rebuilt) on
//! reopen, rebuilt with a warning when missing or damaged anywhere, converted once from
//! an earlier release's hnsw_rs dump; dense queries stay right throughout.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use quiver_core::{CollectionConfig, Distance, Document, Metadata, SyncPolicy};
use quiver_engine::{
    graph_path, Collection, CollectionOptions, Database, DbOptions, Query, LEGACY_GRAPH_DIR,
};
use quiver_index::{write_legacy_dump, FlatGraph, HnswParams};
use quiver_storage::segment::Segment;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 16;
const PER_SEGMENT: usize = 400;
const SEGMENTS: usize = 3;

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
    (0..DIM).map(|_| rng.random::<f32>() - 0.5).collect()
}

/// Three sealed segments of random vectors, a few deleted rows, and the segment dirs.
fn build(root: &Path) -> Vec<PathBuf> {
    let db = Database::open(root, opts()).unwrap();
    let c = db
        .create_collection("v", CollectionConfig::new(DIM))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    for s in 0..SEGMENTS {
        let docs = (0..PER_SEGMENT)
            .map(|i| Document {
                chunks: Vec::new(),
                id: format!("d{s}-{i:04}"),
                text: String::new(),
                metadata: Metadata::new(),
                vector: vector(&mut rng),
            })
            .collect();
        c.upsert(docs).unwrap();
        c.seal().unwrap();
    }
    c.delete(&["d0-0007".into(), "d1-0100".into()]).unwrap();
    segment_dirs(c.dir())
}

fn segment_dirs(coll: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(coll.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), SEGMENTS);
    dirs
}

fn stamp(seg: &Path) -> SystemTime {
    std::fs::metadata(graph_path(seg))
        .unwrap()
        .modified()
        .unwrap()
}

/// Dense top-10 over the graphs agrees with exact search.
fn assert_queries_right(c: &Collection) {
    let mut rng = StdRng::seed_from_u64(9);
    let (mut found, mut wanted) = (0, 0);
    for _ in 0..30 {
        let q = vector(&mut rng);
        let mut query = Query::dense(q.clone(), 10);
        query.ef = Some(200);
        let got: Vec<String> = c
            .query(&query)
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert!(!got.iter().any(|id| id == "d0-0007" || id == "d1-0100"));
        let want = c.search_exact(&q, 10).unwrap();
        wanted += want.len();
        found += want.iter().filter(|w| got.contains(&w.id)).count();
    }
    assert!(found * 100 >= wanted * 98, "recall {found}/{wanted}");
}

fn reopen(root: &Path) -> std::sync::Arc<Collection> {
    Database::open(root, opts())
        .unwrap()
        .collection("v")
        .unwrap()
}

#[test]
fn graphs_are_mapped_on_reopen_not_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let segs = build(dir.path());
    let before: Vec<_> = segs.iter().map(|s| stamp(s)).collect();
    for s in &segs {
        assert!(!s.join(LEGACY_GRAPH_DIR).exists());
        let g = FlatGraph::open(&graph_path(s)).unwrap();
        assert_eq!((g.len(), g.dim()), (PER_SEGMENT, DIM));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    let c = reopen(dir.path());
    assert_queries_right(&c);
    let after: Vec<_> = segs.iter().map(|s| stamp(s)).collect();
    assert_eq!(before, after, "intact graphs must be mapped, not rebuilt");
}

#[test]
fn damaged_or_missing_graphs_are_rebuilt() {
    fn flip(p: &Path, at: impl Fn(usize) -> usize) {
        let mut b = std::fs::read(p).unwrap();
        let i = at(b.len());
        b[i] ^= 0x40;
        std::fs::write(p, b).unwrap();
    }
    type Damage = Box<dyn Fn(&Path)>;
    let damages: Vec<(&str, Damage)> = vec![
        ("header", Box::new(|p| flip(p, |_| 9))),
        ("level 0", Box::new(|p| flip(p, |_| 128 + 4 * 40))),
        ("upper levels", Box::new(|p| flip(p, |n| n - 4))),
        (
            "truncated",
            Box::new(|p| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
            }),
        ),
        ("missing", Box::new(|p| std::fs::remove_file(p).unwrap())),
    ];
    for (name, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let segs = build(dir.path());
        let before: Vec<_> = segs.iter().map(|s| stamp(s)).collect();
        damage(&graph_path(&segs[1]));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let c = reopen(dir.path());
        assert_queries_right(&c);
        assert!(
            FlatGraph::open(&graph_path(&segs[1])).is_ok(),
            "{name}: not rewritten"
        );
        assert_ne!(stamp(&segs[1]), before[1], "{name}: must be rebuilt");
        assert_eq!(stamp(&segs[0]), before[0], "{name}: intact graph rebuilt");
        assert_eq!(stamp(&segs[2]), before[2], "{name}: intact graph rebuilt");
    }
}

#[test]
fn earlier_hnsw_dumps_are_converted_once() {
    let dir = tempfile::tempdir().unwrap();
    let segs = build(dir.path());
    let params = HnswParams::from(CollectionConfig::new(DIM).hnsw);
    // Put each segment back the way an earlier release left it: an hnsw_rs dump in
    // `hnsw/` and no flat graph.
    for s in &segs {
        let seg = Segment::open(s).unwrap();
        let rows: Vec<(u64, Vec<f32>)> = (0..seg.len())
            .map(|r| (r as u64, seg.vector(r).to_vec()))
            .collect();
        write_legacy_dump(&s.join(LEGACY_GRAPH_DIR), Distance::Cosine, params, &rows).unwrap();
        std::fs::remove_file(graph_path(s)).unwrap();
    }
    let c = reopen(dir.path());
    assert_queries_right(&c);
    for s in &segs {
        assert!(!s.join(LEGACY_GRAPH_DIR).exists(), "dump left behind");
        assert_eq!(FlatGraph::open(&graph_path(s)).unwrap().len(), PER_SEGMENT);
    }
    drop(c);
    let before: Vec<_> = segs.iter().map(|s| stamp(s)).collect();
    let c = reopen(dir.path());
    assert_queries_right(&c);
    assert_eq!(before, segs.iter().map(|s| stamp(s)).collect::<Vec<_>>());
}
