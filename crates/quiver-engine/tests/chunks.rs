//! Documents stored in chunks: every chunk is searched, results come back one per
//! document with the chunks that matched, and a document's chunks are replaced and
//! deleted with it, in the memtable, in sealed segments, after compaction, after a
//! reopen and through a snapshot.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use quiver_core::{CollectionConfig, Distance, DocChunk, Document, Metadata, SyncPolicy};
use quiver_engine::snapshot::{Compression, RestoreLimits, SnapshotScope};
use quiver_engine::{
    ChunkScore, Collection, CollectionOptions, Database, DbOptions, EngineError, GroupBy, Query,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 8;

fn opts() -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows: 100_000,
            background_compaction: false,
            compact_small_rows: 100_000,
            ..CollectionOptions::default()
        },
    }
}

fn random_vector(rng: &mut StdRng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Document `i` with `n` chunks (none when `n` < 2), words `w{i}c{k}` in chunk `k`.
fn chunked(i: usize, n: usize, rng: &mut StdRng) -> Document {
    let parts: Vec<String> = (0..n.max(1))
        .map(|k| format!("w{i}c{k} filler words here."))
        .collect();
    let text = parts.join(" ");
    let mut chunks = Vec::new();
    let mut at = 0;
    for p in &parts {
        chunks.push(DocChunk {
            start: at,
            end: at + p.len(),
            vector: random_vector(rng),
        });
        at += p.len() + 1;
    }
    if n < 2 {
        chunks.clear();
    }
    Document {
        id: format!("d{i:03}"),
        vector: chunks
            .first()
            .map_or_else(|| random_vector(rng), |c| c.vector.clone()),
        text,
        metadata: Metadata::new(),
        chunks,
    }
}

/// Every stage of a document's life the checks run at.
fn stages(c: &Collection, check: &mut dyn FnMut(&Collection, &str)) {
    check(c, "memtable");
    assert!(c.seal().unwrap());
    check(c, "sealed");
}

/// Every chunk's vector finds its document, that chunk winning, in dense and in exact
/// queries; no query lists a document twice.
fn check_chunks_win(c: &Collection, docs: &[Document], at: &str) {
    for d in docs {
        let queries: Vec<(Option<usize>, &[f32])> = if d.chunks.is_empty() {
            vec![(None, &d.vector)]
        } else {
            d.chunks
                .iter()
                .enumerate()
                .map(|(k, ch)| (Some(k), ch.vector.as_slice()))
                .collect()
        };
        for (k, v) in queries {
            for exact in [false, true] {
                let q = Query::dense(v.to_vec(), 10).with_exact(exact).explained();
                let hits = c.query(&q).unwrap().hits;
                let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
                assert_eq!(ids.len(), hits.len(), "{at}: a document listed twice");
                let top = &hits[0];
                assert_eq!(top.id, d.id, "{at}, exact {exact}: chunk {k:?}");
                assert!((top.score - 1.0).abs() < 1e-4, "{at}: {}", top.score);
                assert_eq!(top.chunks.first().map(|c| c.chunk), k, "{at}");
                assert_eq!(top.explain.unwrap().chunk, k, "{at}");
                if let (Some(k), Some(first)) = (k, top.chunks.first()) {
                    let span = &d.chunks[k];
                    assert_eq!(first.text, d.text[span.start..span.end], "{at}");
                    assert_eq!((first.start, first.end), (span.start, span.end), "{at}");
                }
            }
        }
    }
}

#[test]
fn chunks_are_searched_and_grouped_per_document() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let first: Vec<Document> = (0..40).map(|i| chunked(i, i % 5, &mut rng)).collect();
    c.upsert(first.clone()).unwrap();
    let mut all = first.clone();
    stages(&c, &mut |c, at| check_chunks_win(c, &all, at));
    let second: Vec<Document> = (40..80)
        .map(|i| chunked(i, (i * 7) % 6, &mut rng))
        .collect();
    c.upsert(second.clone()).unwrap();
    all.extend(second);
    stages(&c, &mut |c, at| check_chunks_win(c, &all, at));
    assert!(c.compact().unwrap());
    check_chunks_win(&c, &all, "compacted");
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db.collection("c").unwrap();
    check_chunks_win(&c, &all, "reopened");
    // Random queries: always distinct documents, as many as asked for.
    for _ in 0..50 {
        let hits = c
            .query(&Query::dense(random_vector(&mut rng), 25))
            .unwrap()
            .hits;
        let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!((ids.len(), hits.len()), (25, 25));
    }
}

#[test]
fn overwrite_and_delete_take_every_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let docs: Vec<Document> = (0..30).map(|i| chunked(i, 4, &mut rng)).collect();
    c.upsert(docs.clone()).unwrap();
    for (step, sealed) in [(0, false), (1, true)] {
        if sealed {
            assert!(c.seal().unwrap());
        }
        // d000 goes from four chunks to two, d001 to none, d002 is deleted.
        let mut fewer = chunked(0, 2, &mut rng);
        fewer.text = format!("{} version {step}", fewer.text);
        let whole = chunked(1, 0, &mut rng);
        c.upsert(vec![fewer.clone(), whole.clone()]).unwrap();
        c.delete(&["d002".into()]).unwrap();
        for old in &docs[..3] {
            for ch in &old.chunks {
                let hits = c.query(&Query::dense(ch.vector.clone(), 30)).unwrap().hits;
                assert!(hits.iter().all(|h| h.id != "d002"), "deleted chunk found");
                for h in hits.iter().filter(|h| h.id == "d000") {
                    assert!(h.chunks.iter().all(|x| x.chunk < 2), "stale chunk: {h:?}");
                }
                for h in hits.iter().filter(|h| h.id == "d001") {
                    assert!(h.chunks.is_empty(), "a whole document reports chunks");
                }
            }
        }
        let got = c.get("d000").unwrap().unwrap();
        // Spans as written (vectors come back normalized: the collection is cosine).
        let spans = |d: &Document| {
            d.chunks
                .iter()
                .map(|c| (c.start, c.end))
                .collect::<Vec<_>>()
        };
        assert_eq!((spans(&got), &got.text), (spans(&fewer), &fewer.text));
        assert!(c.get("d001").unwrap().unwrap().chunks.is_empty());
        assert!(c.get("d002").unwrap().is_none());
        check_chunks_win(&c, &[fewer, whole], "after overwrite");
    }
}

#[test]
fn text_hits_name_the_chunk_that_holds_the_words() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let docs: Vec<Document> = (0..5).map(|i| chunked(i, 4, &mut rng)).collect();
    c.upsert(docs.clone()).unwrap();
    for at in ["memtable", "sealed"] {
        let hits = c.query(&Query::sparse("w3c2", 3).explained()).unwrap().hits;
        assert_eq!(hits[0].id, "d003", "{at}");
        let chunk = &hits[0].chunks;
        assert_eq!(chunk.len(), 1, "{at}");
        // Chosen as the best passage: its BM25 is its score.
        assert_eq!(chunk[0].chunk, 2, "{at}");
        assert!(chunk[0].score.is_some_and(|s| s > 0.0), "{at}");
        assert!(chunk[0].text.starts_with("w3c2"), "{at}");
        assert_eq!(hits[0].explain.unwrap().chunk, Some(2), "{at}");
        c.seal().unwrap();
    }
}

#[test]
fn chunks_outside_the_text_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection(
            "c",
            CollectionConfig {
                distance: Distance::L2,
                ..CollectionConfig::new(2)
            },
        )
        .unwrap();
    let chunk = |start, end| DocChunk {
        start,
        end,
        vector: vec![1.0, 0.0],
    };
    for chunks in [
        vec![chunk(0, 3), chunk(2, 99)],
        vec![chunk(3, 1), chunk(0, 2)],
        vec![chunk(2, 4), chunk(0, 2)],
        // Inside "é", not on a character boundary.
        vec![chunk(0, 1), chunk(1, 4)],
    ] {
        let doc = Document {
            id: "a".into(),
            text: "é and".into(),
            metadata: Metadata::new(),
            vector: vec![1.0, 0.0],
            chunks,
        };
        let err = c.upsert(vec![doc]).unwrap_err();
        assert!(matches!(err, EngineError::InvalidInput(_)), "{err}");
    }
    let bad_vector = Document {
        id: "a".into(),
        text: "abc".into(),
        metadata: Metadata::new(),
        vector: vec![1.0, 0.0],
        chunks: vec![
            chunk(0, 1),
            DocChunk {
                start: 1,
                end: 3,
                vector: vec![f32::NAN, 0.0],
            },
        ],
    };
    assert!(c.upsert(vec![bad_vector]).is_err());
    assert_eq!(c.count(), 0, "nothing was written");
}

#[test]
fn snapshots_carry_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection("src", CollectionConfig::new(DIM))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let sealed: Vec<Document> = (0..20).map(|i| chunked(i, i % 4, &mut rng)).collect();
    c.upsert(sealed.clone()).unwrap();
    c.seal().unwrap();
    // These stay in the WAL: the snapshot carries them as records.
    let logged: Vec<Document> = (20..30).map(|i| chunked(i, 3, &mut rng)).collect();
    c.upsert(logged.clone()).unwrap();
    let scope = SnapshotScope::Collection("src".into());
    db.create_snapshot(&scope, Some("s"), Compression::None)
        .unwrap();
    db.restore_snapshot(&scope, "s", Some("copy"), &RestoreLimits::default())
        .unwrap();
    let copy = db.collection("copy").unwrap();
    let all: Vec<Document> = sealed.into_iter().chain(logged).collect();
    for d in &all {
        let got = copy.get(&d.id).unwrap().unwrap();
        let spans = |d: &Document| {
            d.chunks
                .iter()
                .map(|c| (c.start, c.end))
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(&got), spans(d), "{}", d.id);
    }
    check_chunks_win(&copy, &all, "restored");
}

#[test]
fn group_by_chunk_lists_each_matching_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let docs: Vec<Document> = (0..12).map(|i| chunked(i, i % 4, &mut rng)).collect();
    c.upsert(docs.clone()).unwrap();
    for at in ["memtable", "sealed"] {
        let by_chunk = |mut q: Query| {
            q.group_by = GroupBy::Chunk;
            c.query(&q.explained()).unwrap().hits
        };
        let d = &docs[7];
        for (k, ch) in d.chunks.iter().enumerate() {
            let hits = by_chunk(Query::dense(ch.vector.clone(), 20));
            assert_eq!(
                (hits[0].id.as_str(), hits[0].chunks[0].chunk),
                (d.id.as_str(), k)
            );
            assert_eq!(hits[0].explain.unwrap().chunk, Some(k), "{at}");
            let mut pairs: Vec<(String, usize)> = hits
                .iter()
                .map(|h| (h.id.clone(), h.chunks.first().map_or(0, |x| x.chunk)))
                .collect();
            assert!(hits.iter().all(|h| h.chunks.len() <= 1), "{at}");
            // The other chunks of the same document are hits of their own.
            assert!(pairs.iter().filter(|p| p.0 == d.id).count() == d.chunks.len());
            pairs.sort();
            pairs.dedup();
            assert_eq!(pairs.len(), hits.len(), "{at}: a chunk listed twice");
        }
        // Keyword search scores chunks as passages: each word's own chunk comes first.
        let hits = by_chunk(Query::sparse("w7c1 w7c2 w7c2", 3));
        let got: Vec<(&str, usize)> = hits
            .iter()
            .map(|h| (h.id.as_str(), h.chunks[0].chunk))
            .collect();
        assert_eq!(got, [("d007", 2), ("d007", 1)], "{at}");
        let mut hybrid = Query::hybrid(d.chunks[0].vector.clone(), "w7c1", 5);
        hybrid.group_by = GroupBy::Chunk;
        let hits = c.query(&hybrid).unwrap().hits;
        let top: Vec<(&str, usize)> = hits
            .iter()
            .take(2)
            .map(|h| (h.id.as_str(), h.chunks[0].chunk))
            .collect();
        assert!(
            top.contains(&("d007", 0)) && top.contains(&("d007", 1)),
            "{at}: {top:?}"
        );
        c.seal().unwrap();
    }
}

#[test]
fn chunk_score_sum_favours_documents_that_match_often() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM))
        .unwrap();
    let axis = |i: usize, w: f32| {
        let mut v = vec![0.0; DIM];
        v[0] = 1.0;
        v[i] += w;
        v
    };
    let doc = |id: &str, vectors: Vec<Vec<f32>>| {
        let text = "one two three four five six".to_string();
        let chunks = vectors
            .into_iter()
            .enumerate()
            .map(|(k, vector)| DocChunk {
                start: k * 4,
                end: k * 4 + 3,
                vector,
            })
            .collect::<Vec<_>>();
        Document {
            id: id.into(),
            vector: chunks[0].vector.clone(),
            text,
            metadata: Metadata::new(),
            chunks,
        }
    };
    // "once" matches the query exactly in one chunk; "often" closely in three.
    c.upsert(vec![
        doc("once", vec![axis(0, 0.0), axis(5, 9.0)]),
        doc("often", vec![axis(1, 0.5), axis(2, 0.5), axis(3, 0.5)]),
    ])
    .unwrap();
    for at in ["memtable", "sealed"] {
        let mut q = Query::dense(axis(0, 0.0), 2);
        let ids = |q: &Query| -> Vec<String> {
            c.query(q).unwrap().hits.into_iter().map(|h| h.id).collect()
        };
        assert_eq!(ids(&q), ["once", "often"], "{at}");
        q.chunk_score = ChunkScore::Sum;
        let hits = c.query(&q).unwrap().hits;
        assert_eq!(
            (hits[0].id.as_str(), hits[0].chunks.len()),
            ("often", 3),
            "{at}"
        );
        // Three chunks at cos 0.894 each.
        assert!(
            (hits[0].score - 3.0 * 0.894_427).abs() < 1e-3,
            "{at}: {}",
            hits[0].score
        );
        c.seal().unwrap();
    }
}
