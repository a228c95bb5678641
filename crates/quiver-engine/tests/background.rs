//! Background maintenance: seals and compactions started by the write thresholds alone.
//! - Searches while they run return every acknowledged document exactly once, in its
//!   newest acknowledged version or a newer one.
//! - A failed seal leaves the frozen memtable searchable and is retried.
//! - Closing a collection during a long compaction is prompt and loses nothing.
//! - A compaction waits for writes to go quiet, or for enough small segments.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_core::{CollectionConfig, Distance, Document, Metadata, SyncPolicy};
use quiver_engine::{CollectionOptions, Database, DbOptions, Query};

fn l2(dim: usize) -> CollectionConfig {
    CollectionConfig {
        distance: Distance::L2,
        ..CollectionConfig::new(dim)
    }
}

fn options(seal_rows: usize, compact_small_rows: usize) -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows,
            compact_small_rows,
            // Merge while writes go on, so the tests meet compactions mid-write.
            compact_quiet: Duration::ZERO,
            background_compaction: true,
            ..CollectionOptions::default()
        },
    }
}

fn doc(id: String, vector: Vec<f32>) -> Document {
    Document {
        chunks: Vec::new(),
        id,
        text: String::new(),
        metadata: Metadata::new(),
        vector,
    }
}

/// New document `n{i}`.
fn new_vector(i: usize) -> Vec<f32> {
    vec![i as f32, 1.0, 0.0, 0.0]
}

/// Version `round` of the overwritten document `o{j}`.
fn hot_vector(j: usize, round: usize) -> Vec<f32> {
    vec![-1.0 - j as f32, round as f32, 0.0, 0.0]
}

const HOT: usize = 10;
const ROUNDS: usize = 150;
const NEW_PER_ROUND: usize = 4;

#[test]
fn searches_during_background_seals_see_each_document_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options(30, 120)).unwrap();
    let c = db.create_collection("bg", l2(4)).unwrap();
    // Acknowledged rounds: every write of rounds below this has returned.
    let acked = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (c, acked, done) = (Arc::clone(&c), Arc::clone(&acked), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut checks = 0;
            while !done.load(Ordering::Acquire) {
                let rounds = acked.load(Ordering::Acquire);
                let all = Query::dense(vec![0.0; 4], 10_000).with_exact(true);
                let hits = c.query(&all).unwrap().hits;
                let mut seen: HashMap<&str, usize> = HashMap::new();
                for h in &hits {
                    *seen.entry(h.id.as_str()).or_default() += 1;
                }
                assert!(seen.values().all(|&n| n == 1), "an id twice");
                for i in 0..rounds * NEW_PER_ROUND {
                    assert!(seen.contains_key(format!("n{i}").as_str()), "n{i} missing");
                }
                // Each hot document is seen in its newest acknowledged version or a
                // newer one, never an older one.
                for j in 0..HOT.min(rounds) {
                    let id = format!("o{j}");
                    let got = c.get(&id).unwrap().unwrap().vector[1] as usize;
                    let newest = (0..rounds).rev().find(|r| r % HOT == j).unwrap();
                    assert!(got >= newest, "{id}: version {got} < {newest}");
                }
                if rounds > 0 {
                    // The graph search finds the newest document too, once.
                    let last = rounds * NEW_PER_ROUND - 1;
                    let q = Query::dense(new_vector(last), 3);
                    let found = c.query(&q).unwrap().hits;
                    let n = found.iter().filter(|h| h.id == format!("n{last}")).count();
                    assert_eq!(n, 1, "graph search for n{last}: {found:?}");
                }
                checks += 1;
            }
            checks
        })
    };
    for round in 0..ROUNDS {
        let mut batch: Vec<Document> = (0..NEW_PER_ROUND)
            .map(|k| {
                let i = round * NEW_PER_ROUND + k;
                doc(format!("n{i}"), new_vector(i))
            })
            .collect();
        let j = round % HOT;
        batch.push(doc(format!("o{j}"), hot_vector(j, round)));
        c.upsert(batch).unwrap();
        acked.store(round + 1, Ordering::Release);
    }
    assert!(c.wait_idle(Duration::from_secs(120)));
    done.store(true, Ordering::Release);
    let checks = reader.join().unwrap();
    let stats = c.stats();
    assert!(checks > 0);
    assert!(stats.maintenance.seals >= 5, "{:?}", stats.maintenance);
    assert!(
        stats.maintenance.compactions >= 1,
        "{:?}",
        stats.maintenance
    );
    assert_eq!(c.count(), ROUNDS * NEW_PER_ROUND + HOT);
}

#[test]
fn a_failed_seal_keeps_the_frozen_memtable_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), options(20, 0)).unwrap();
    let c = db.create_collection("f", l2(4)).unwrap();
    c.inject_seal_failures(2);
    for i in 0..25 {
        c.upsert(vec![doc(format!("n{i}"), new_vector(i))]).unwrap();
    }
    // The first attempt fails within the sealer's first wake-up; the memtable that
    // filled stays frozen and searchable meanwhile.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.stats().maintenance.failed_seals == 0 {
        assert!(Instant::now() < deadline, "no seal attempt");
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = c.stats();
    assert_eq!(stats.segments, 0);
    assert_eq!(stats.maintenance.queued_memtables, 1);
    assert_eq!(c.count(), 25);
    let q = Query::dense(new_vector(3), 1);
    assert_eq!(c.query(&q).unwrap().hits[0].id, "n3");
    // Retries (after 1 s, then 2 s) succeed once the injected failures are used up.
    assert!(c.wait_idle(Duration::from_secs(30)));
    let stats = c.stats();
    assert_eq!(stats.maintenance.failed_seals, 2);
    assert_eq!((stats.segments, stats.maintenance.queued_memtables), (1, 0));
    assert_eq!(c.count(), 25);
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), options(20, 0)).unwrap();
    assert_eq!(db.collection("f").unwrap().count(), 25);
}

#[test]
fn closing_during_a_compaction_is_prompt_and_loses_nothing() {
    const N: usize = 30_000;
    const DIM: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(N / 2, N * 10);
    let db = Database::open(dir.path(), opts.clone()).unwrap();
    let c = db.create_collection("big", l2(DIM)).unwrap();
    let vector = |i: usize| -> Vec<f32> {
        (0..DIM)
            .map(|d| ((i * 31 + d * 17) % 97) as f32 - 48.0)
            .collect()
    };
    for chunk in (0..N).collect::<Vec<_>>().chunks(1_000) {
        let batch = chunk
            .iter()
            .map(|&i| doc(format!("d{i}"), vector(i)))
            .collect();
        c.upsert(batch).unwrap();
    }
    // The second seal starts a compaction of both segments.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !c.stats().maintenance.compacting {
        assert!(Instant::now() < deadline, "no compaction started");
        assert_eq!(
            c.stats().maintenance.compactions,
            0,
            "compaction too quick to interrupt"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let closing = Instant::now();
    drop(c);
    drop(db);
    let took = closing.elapsed();
    println!("closed during a compaction in {took:?}");
    assert!(took < Duration::from_secs(2), "close took {took:?}");
    let db = Database::open(dir.path(), opts).unwrap();
    let c = db.collection("big").unwrap();
    assert_eq!(c.count(), N);
    assert_eq!(c.get("d123").unwrap().unwrap().vector, vector(123));
}

/// A compaction waits for writes to go quiet, unless enough small segments wait.
#[test]
fn compaction_waits_for_writes_to_go_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(100, 10_000);
    opts.collection.compact_quiet = Duration::from_millis(1_500);
    opts.collection.compact_max_waiting = 4;
    let db = Database::open(dir.path(), opts).unwrap();
    let c = db.create_collection("q", l2(4)).unwrap();
    let write = |from: usize, to: usize| {
        for i in from..to {
            c.upsert(vec![doc(format!("n{i}"), new_vector(i))]).unwrap();
        }
    };
    let seals_reach = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.stats().maintenance.seals < n {
            assert!(Instant::now() < deadline, "seals stopped");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // Two seals while writing: two small segments wait, no merge yet.
    write(0, 250);
    seals_reach(2);
    write(250, 260);
    assert_eq!(c.stats().maintenance.compactions, 0, "merged mid-write");
    // Quiet for longer than `compact_quiet`: the merge runs.
    std::thread::sleep(Duration::from_millis(2_500));
    assert!(c.wait_idle(Duration::from_secs(60)));
    assert_eq!(c.stats().maintenance.compactions, 1);
    assert_eq!(c.stats().segments, 1);
    // Writes without pause: the fourth waiting small segment starts a merge anyway.
    let start = Instant::now();
    write(260, 700);
    seals_reach(6);
    // Keep writing (the same document, so the count is known whether or not the
    // merge has already started) until the merge is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        write(700, 701);
        if c.stats().maintenance.compactions >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no merge under steady writes");
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("merged under steady writes after {:?}", start.elapsed());
    // On a mismatch, say which ids are missing or visible twice.
    let missing: Vec<usize> = (0..701)
        .filter(|i| c.get(&format!("n{i}")).unwrap().is_none())
        .collect();
    let mut seen = std::collections::HashMap::new();
    c.for_each_live(|d| *seen.entry(d.id.to_string()).or_insert(0) += 1);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(
        c.count(),
        701,
        "missing {missing:?}, visible twice {twice:?}, {:?}",
        c.stats()
    );
}
