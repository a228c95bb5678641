//! Crash test with a real process: a child writes numbered operations with
//! `SyncPolicy::Always` (a small seal threshold, seals and compactions on background
//! threads, so kills also land in seals, compactions and start-up recovery) and prints
//! every acknowledged one; the parent SIGKILLs it at random moments, reopens the data and
//! checks that
//! - every acknowledged operation survived, and
//! - the recovered state is exactly the result of a prefix of the issued operations
//!   (no holes, nothing half-applied), and
//! - both indexes agree with it: a dense (HNSW) query by each live document's vector
//!   finds it among the top 3, and a sparse (BM25) query by its unique word finds it
//!   first, and
//! - chunked documents kept exactly their newest chunks: every chunk's vector finds its
//!   document with that chunk winning, and an overwrite that changes the number of
//!   chunks (the document "hot" alternates between 0, 2 and 3) leaves none behind, and
//! - no file is left behind: the segment directories are exactly the live segments.
//!
//! The child is this test binary re-executed with `QUIVER_KILL_CHILD` set, running
//! only `child_writer_process`. Cycles come from `QUIVER_KILL_CYCLES` (default 50;
//! thousands work, they just take longer); `QUIVER_KILL_SEED` fixes the random kill
//! schedule (the seed in use is printed).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use quiver_core::{CollectionConfig, Distance, DocChunk, Document, Metadata, SyncPolicy};
use quiver_engine::{Collection, CollectionOptions, Database, DbOptions, Query, SEGMENTS_DIR};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "QUIVER_KILL_CHILD";
const DIR_ENV: &str = "QUIVER_KILL_DIR";
const START_ENV: &str = "QUIVER_KILL_START";
const COLLECTION: &str = "crash";

fn options() -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Always,
            seal_rows: 10,
            compact_small_rows: 40,
            // Merge while writes go on, so the tests meet compactions mid-write.
            compact_quiet: Duration::ZERO,
            background_compaction: true,
            ..CollectionOptions::default()
        },
    }
}

/// Operation `n`: every fifth is a delete of a document written two operations
/// earlier; the others upsert three new documents and overwrite "hot".
fn is_delete(n: u64) -> bool {
    n % 5 == 4
}

/// The unique word in the text of document `b{n}-{j}`.
fn word(n: u64, j: u64) -> String {
    format!("tok{n}q{j}")
}

fn vector(n: u64, j: u64) -> Vec<f32> {
    vec![n as f32, j as f32, 1.0, 0.0]
}

/// `count` chunks over `text`, overlapping, each with its own vector.
fn chunks(n: u64, j: u64, text: &str, count: usize) -> Vec<DocChunk> {
    let step = text.len() / (count + 1);
    (0..count)
        .map(|k| DocChunk {
            start: k * step,
            end: if k + 1 == count {
                text.len()
            } else {
                (k + 2) * step
            },
            vector: vec![n as f32, j as f32, 1.0, 10.0 + k as f32],
        })
        .collect()
}

fn upsert_docs(n: u64) -> Vec<Document> {
    let mut docs: Vec<Document> = (0..3)
        .map(|j| {
            let text = match j {
                1 => format!("{} alpha beta gamma delta", word(n, j)),
                _ => word(n, j),
            };
            Document {
                chunks: if j == 1 {
                    chunks(n, j, &text, 3)
                } else {
                    Vec::new()
                },
                id: format!("b{n}-{j}"),
                text,
                metadata: Metadata::new(),
                vector: vector(n, j),
            }
        })
        .collect();
    let text = format!("{n} hot document text");
    docs.push(Document {
        chunks: chunks(n, 9, &text, [0, 2, 3][n as usize % 3]),
        id: "hot".into(),
        text,
        metadata: Metadata::new(),
        vector: vector(n, 9),
    });
    docs
}

/// A document as recovery must find it: vector and chunks.
type Stored = (Vec<f32>, Vec<DocChunk>);

/// The state after operations `0..p`: id -> vector and chunks.
fn simulate(p: u64) -> BTreeMap<String, Stored> {
    let mut state = BTreeMap::new();
    for n in 0..p {
        if is_delete(n) {
            state.remove(&format!("b{}-2", n - 2));
        } else {
            for d in upsert_docs(n) {
                state.insert(d.id, (d.vector, d.chunks));
            }
        }
    }
    state
}

/// Not a test on its own: the body of the child process (a no-op otherwise).
#[test]
fn child_writer_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let dir = std::env::var(DIR_ENV).unwrap();
    let mut n: u64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    let db = Database::open(Path::new(&dir), options()).unwrap();
    let c = match db.collection(COLLECTION) {
        Ok(c) => c,
        Err(_) => db
            .create_collection(
                COLLECTION,
                CollectionConfig {
                    distance: Distance::L2,
                    ..CollectionConfig::new(4)
                },
            )
            .unwrap(),
    };
    let started = Instant::now();
    let stdout = std::io::stdout();
    // Bounded so an orphaned child cannot run forever.
    while started.elapsed() < Duration::from_secs(60) {
        let lsn = if is_delete(n) {
            c.delete(&[format!("b{}-2", n - 2)]).unwrap()
        } else {
            c.upsert(upsert_docs(n)).unwrap()
        };
        let mut out = stdout.lock();
        writeln!(out, "ACK {n} {lsn}").unwrap();
        out.flush().unwrap();
        n += 1;
    }
}

fn recovered_state(dir: &Path) -> BTreeMap<String, Stored> {
    let db = Database::open(dir, options()).unwrap();
    let Ok(c) = db.collection(COLLECTION) else {
        return BTreeMap::new();
    };
    // No orphans: once the seal a full replayed memtable starts has finished, the
    // segment directories are exactly the live segments.
    assert!(c.wait_idle(Duration::from_secs(60)));
    let mut on_disk: Vec<String> = std::fs::read_dir(c.dir().join(SEGMENTS_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut live: Vec<String> = c.segments().iter().map(|s| s.id().to_string()).collect();
    live.sort();
    assert_eq!(on_disk, live, "segment directories after restart");
    let mut ids = Vec::new();
    c.for_each_live(|d| ids.push(d.id.to_string()));
    let state: BTreeMap<String, Stored> = ids
        .into_iter()
        .map(|id| {
            let d = c.get(&id).unwrap().unwrap();
            (id, (d.vector, d.chunks))
        })
        .collect();
    assert_eq!(c.count(), state.len());
    if let Some(hot) = c.get("hot").unwrap() {
        let n: u64 = hot.text.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(hot.vector, vector(n, 9));
    }
    check_indexes(&c, &state);
    state
}

/// Every live document is found by its vector (HNSW) and by its word (BM25), and a
/// chunked one by each chunk's vector, that chunk winning.
fn check_indexes(c: &Collection, state: &BTreeMap<String, Stored>) {
    for (id, (v, chunks)) in state {
        let dense = c.query(&Query::dense(v.clone(), 3)).unwrap().hits;
        let ids: Vec<&str> = dense.iter().map(|h| h.id.as_str()).collect();
        if chunks.is_empty() {
            assert!(
                ids.contains(&id.as_str()),
                "dense query for {id} gave {ids:?}"
            );
        }
        let mut seen = ids.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ids.len(), "a document listed twice: {ids:?}");
        for (k, chunk) in chunks.iter().enumerate() {
            let hits = c
                .query(&Query::dense(chunk.vector.clone(), 3))
                .unwrap()
                .hits;
            let hit = hits.iter().find(|h| &h.id == id);
            let won = hit.and_then(|h| h.chunks.first()).map(|ch| ch.chunk);
            assert_eq!(won, Some(k), "chunk {k} of {id}: {hits:?}");
        }
        let text = match id.strip_prefix('b').and_then(|r| r.split_once('-')) {
            Some((n, j)) => word(n.parse().unwrap(), j.parse().unwrap()),
            None => c.get(id).unwrap().unwrap().text,
        };
        let sparse = c.query(&Query::sparse(text.as_str(), 1)).unwrap().hits;
        assert_eq!(
            sparse.first().map(|h| h.id.as_str()),
            Some(id.as_str()),
            "sparse query {text:?}"
        );
    }
}

/// Which prefix length `p` produced `state`, if any.
fn matching_prefix(state: &BTreeMap<String, Stored>) -> Option<u64> {
    let newest = state
        .keys()
        .filter_map(|id| {
            id.strip_prefix('b')?
                .strip_suffix("-0")?
                .parse::<u64>()
                .ok()
        })
        .max();
    let candidates: Vec<u64> = match newest {
        None => vec![0],
        Some(m) => vec![m + 1, m + 2],
    };
    candidates.into_iter().find(|&p| simulate(p) == *state)
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let cycles: u64 = std::env::var("QUIVER_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("QUIVER_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("kill test: {cycles} cycles, QUIVER_KILL_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut next: u64 = 0;
    let mut total_acked = 0u64;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "child_writer_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .env(DIR_ENV, dir.path())
            .env(START_ENV, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness prints "test child_writer_process ... " without a
                // newline before the body runs, so the first ACK shares its line.
                if let Some(rest) = line.find("ACK ").map(|i| &line[i + 4..]) {
                    let n: u64 = rest.split(' ').next().unwrap().parse().unwrap();
                    acked.push(n);
                    let _ = tx.send(());
                }
            }
            acked
        });
        // A quarter of the kills land at a random time (often during start-up
        // recovery); the rest after a random number of acknowledged operations.
        if rng.random_range(0..4) == 0 {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        } else {
            let wait_for = rng.random_range(1..40);
            for _ in 0..wait_for {
                if rx.recv().is_err() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let acked = reader.join().unwrap();
        assert_eq!(
            status.code(),
            None,
            "cycle {cycle}: child exited by itself ({status})"
        );
        if !acked.is_empty() {
            let expect: Vec<u64> = (next..next + acked.len() as u64).collect();
            assert_eq!(
                acked, expect,
                "cycle {cycle}: acknowledgements out of sequence"
            );
            total_acked += acked.len() as u64;
        }

        let state = recovered_state(dir.path());
        let p = matching_prefix(&state).unwrap_or_else(|| {
            panic!("cycle {cycle} (seed {seed}): recovered state is not a prefix of the issued operations: {state:?}")
        });
        if let Some(&last) = acked.last() {
            assert!(p > last, "cycle {cycle} (seed {seed}): operation {last} was acknowledged but only {p} operations survived");
        }
        assert!(
            p >= next,
            "cycle {cycle} (seed {seed}): lost operations from an earlier cycle ({p} < {next})"
        );
        next = p;
    }
    println!("kill test: {total_acked} acknowledged operations, {next} in the final state");
    assert!(total_acked > 0, "no cycle acknowledged anything");
}
