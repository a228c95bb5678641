//! WAL writing: group commit, rotation and removal, poisoning, the interval syncer.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use quiver_core::SyncPolicy;
use quiver_storage::wal::format::{parse_file_name, HEADER_LEN};
use quiver_storage::wal::{Wal, WalOptions};
use quiver_storage::StorageError;

fn opts(sync: SyncPolicy) -> WalOptions {
    WalOptions {
        sync,
        ..WalOptions::default()
    }
}

/// Polls `cond` until it holds; a generous bound only turns a hang into a failure.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn concurrent_appends_share_syncs_and_all_survive() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::Always), 0).unwrap();
    let wal = Arc::new(wal);
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (wal, start) = (Arc::clone(&wal), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                (0..PER_THREAD)
                    .map(|i| {
                        let payload = format!("t{t}-i{i}").into_bytes();
                        (wal.append(t as u8, &payload).unwrap(), payload)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut written: Vec<(u64, Vec<u8>)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    written.sort();
    let total = (THREADS * PER_THREAD) as u64;
    let lsns: Vec<u64> = written.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        lsns,
        (1..=total).collect::<Vec<_>>(),
        "unique and contiguous"
    );
    let syncs = wal.sync_count();
    assert!(syncs >= 1);
    assert!(
        syncs < total,
        "{syncs} syncs for {total} appends: nothing shared"
    );
    println!("{total} appends, {syncs} fdatasync calls");
    drop(wal);
    let (_, recs) = Wal::open(dir.path(), opts(SyncPolicy::Always), 0).unwrap();
    let got: Vec<(u64, Vec<u8>)> = recs.into_iter().map(|r| (r.lsn, r.payload)).collect();
    assert_eq!(got, written);
}

#[test]
fn appenders_waiting_on_a_sync_are_covered_by_one_more() {
    // Deterministic group commit: the first appender's sync is held while seven more
    // append; together they must need at most one further sync.
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::Always), 0).unwrap();
    let wal = Arc::new(wal);
    let before = wal.sync_count();
    wal.hold_syncs(true);
    let spawn = |i: u8| {
        let wal = Arc::clone(&wal);
        thread::spawn(move || wal.append(i, &[i; 10]).unwrap())
    };
    let mut handles = vec![spawn(0)];
    wait_until("the first append", || wal.last_lsn() == 1);
    handles.extend((1..8).map(spawn));
    wait_until("all appends written", || wal.last_lsn() == 8);
    wal.hold_syncs(false);
    let mut lsns: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    lsns.sort();
    assert_eq!(lsns, (1..=8).collect::<Vec<_>>());
    let syncs = wal.sync_count() - before;
    assert!((1..=2).contains(&syncs), "{syncs} syncs for 8 appends");
}

#[test]
fn rotation_remove_before_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let o = WalOptions {
        sync: SyncPolicy::Never,
        max_file_bytes: 400,
        repair: false,
    };
    let (wal, _) = Wal::open(dir.path(), o.clone(), 0).unwrap();
    for i in 1..=100u64 {
        assert_eq!(wal.append(1, &[i as u8; 40]).unwrap(), i);
    }
    let files = wal.file_paths();
    assert!(files.len() >= 10, "{} files", files.len());
    // Names sort in LSN order, every file has its own seed, and no file grows
    // more than one record past the limit.
    let firsts: Vec<u64> = files
        .iter()
        .map(|p| parse_file_name(&p.file_name().unwrap().to_string_lossy()).unwrap())
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(firsts[0], 1);
    let seeds: BTreeSet<Vec<u8>> = files
        .iter()
        .map(|p| fs::read(p).unwrap()[12..20].to_vec())
        .collect();
    assert_eq!(
        seeds.len(),
        files.len(),
        "header seeds must differ per file"
    );
    for p in &files {
        assert!(fs::metadata(p).unwrap().len() <= 400 + 17 + 40);
    }
    drop(wal);

    let (wal, recs) = Wal::open(dir.path(), o.clone(), 0).unwrap();
    assert_eq!(recs.len(), 100);
    assert!(recs
        .iter()
        .enumerate()
        .all(|(i, r)| r.lsn == i as u64 + 1 && r.payload == vec![(i + 1) as u8; 40]));

    wal.remove_before(40).unwrap();
    let left = wal.file_paths();
    let left_firsts: Vec<u64> = firsts
        .iter()
        .copied()
        .filter(|&f| left.iter().any(|p| p.ends_with(format!("{f:020}.wal"))))
        .collect();
    // The first kept file holds lsn 41; every removed file ended at or before 40.
    assert!(left_firsts[0] <= 41 && left_firsts.get(1).is_none_or(|&f| f > 41));
    for p in &files {
        assert_eq!(p.exists(), left.contains(p), "{}", p.display());
    }
    drop(wal);

    let (wal, recs) = Wal::open(dir.path(), o.clone(), 40).unwrap();
    assert_eq!(recs.first().map(|r| r.lsn), Some(41));
    assert_eq!(recs.last().map(|r| r.lsn), Some(100));
    assert_eq!(recs.len(), 60);
    assert_eq!(wal.append(2, b"more").unwrap(), 101);
    // The active file is never removed, even when everything is checkpointed.
    wal.remove_before(u64::MAX).unwrap();
    let last = wal.file_paths();
    assert_eq!(last.len(), 1);
    assert!(last[0].exists());
    drop(wal);
    let (_, recs) = Wal::open(dir.path(), o, 100).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].payload, b"more");
}

#[test]
fn damage_at_the_end_of_a_rotated_file_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let o = WalOptions {
        sync: SyncPolicy::Never,
        max_file_bytes: 300,
        repair: false,
    };
    let (wal, _) = Wal::open(dir.path(), o.clone(), 0).unwrap();
    for i in 1..=30u64 {
        wal.append(0, &[i as u8; 30]).unwrap();
    }
    let files = wal.file_paths();
    drop(wal);
    assert!(files.len() >= 3);
    // Cut the first file's last record short: a later valid file exists, so this
    // is not a torn write.
    let first = &files[0];
    let len = fs::metadata(first).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(first)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    match Wal::open(dir.path(), o.clone(), 0) {
        Err(StorageError::Corruption { file, offset, .. }) => {
            assert_eq!(&file, first);
            assert_eq!(offset, len - (17 + 30), "start of the cut record");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let repaired = WalOptions { repair: true, ..o };
    let (wal, recs) = Wal::open(dir.path(), repaired, 0).unwrap();
    let kept = recs.len() as u64;
    assert!(kept > 0 && kept < 30);
    assert!(recs.iter().enumerate().all(|(i, r)| r.lsn == i as u64 + 1));
    assert_eq!(wal.file_paths(), vec![first.clone()]);
    assert!(files[1..].iter().all(|p| !p.exists()));
    assert_eq!(wal.append(0, b"x").unwrap(), kept + 1);
}

#[test]
fn failed_sync_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::Always), 0).unwrap();
    assert_eq!(wal.append(0, b"one").unwrap(), 1);
    assert_eq!(wal.append(0, b"two").unwrap(), 2);
    assert!(!wal.is_poisoned());
    wal.inject_sync_failure();
    let err = wal.append(0, b"three").unwrap_err();
    assert!(matches!(err, StorageError::Poisoned(_)), "{err}");
    assert!(err.to_string().contains("injected sync failure"), "{err}");
    assert!(wal.is_poisoned());
    // Never retried and acknowledged: later appends and syncs fail too.
    let syncs = wal.sync_count();
    assert!(matches!(
        wal.append(0, b"four"),
        Err(StorageError::Poisoned(_))
    ));
    assert!(matches!(wal.sync(), Err(StorageError::Poisoned(_))));
    assert_eq!(wal.sync_count(), syncs, "no sync is retried");
    assert_eq!(wal.last_lsn(), 3, "nothing is written after poisoning");
    drop(wal);
    // Acknowledged records survive; the unacknowledged one may or may not.
    let (_, recs) = Wal::open(dir.path(), opts(SyncPolicy::Always), 0).unwrap();
    assert!(recs.len() >= 2);
    assert_eq!(recs[0].payload, b"one");
    assert_eq!(recs[1].payload, b"two");
}

#[test]
fn a_failed_group_sync_fails_every_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::Always), 0).unwrap();
    let wal = Arc::new(wal);
    wal.hold_syncs(true);
    wal.inject_sync_failure();
    let handles: Vec<_> = (0..4u8)
        .map(|i| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || wal.append(i, b"x"))
        })
        .collect();
    wait_until("all appends written", || wal.last_lsn() == 4);
    wal.hold_syncs(false);
    for h in handles {
        let res = h.join().unwrap();
        assert!(matches!(res, Err(StorageError::Poisoned(_))), "{res:?}");
    }
    assert!(wal.is_poisoned());
}

#[test]
fn sync_failure_in_interval_mode_poisons_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::IntervalMs(1)), 0).unwrap();
    wal.inject_sync_failure();
    assert_eq!(wal.append(0, b"a").unwrap(), 1);
    wait_until("the background sync", || wal.is_poisoned());
    assert!(matches!(
        wal.append(0, b"b"),
        Err(StorageError::Poisoned(_))
    ));
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::IntervalMs(2)), 0).unwrap();
    let before = wal.sync_count();
    for i in 1..=20u64 {
        assert_eq!(wal.append(3, &i.to_le_bytes()).unwrap(), i);
    }
    wait_until("a background sync", || wal.sync_count() > before);
    drop(wal); // stops and joins the thread
    let (_, recs) = Wal::open(dir.path(), opts(SyncPolicy::Never), 0).unwrap();
    assert_eq!(recs.len(), 20);
    assert_eq!(recs[19].payload, 20u64.to_le_bytes());
}

#[test]
fn never_policy_does_not_sync_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::Never), 0).unwrap();
    for _ in 0..50 {
        wal.append(0, b"x").unwrap();
    }
    assert_eq!(wal.sync_count(), 0);
    wal.sync().unwrap();
    assert_eq!(wal.sync_count(), 1);
    wal.sync().unwrap();
    assert_eq!(wal.sync_count(), 1, "nothing new to sync");
}

#[test]
fn file_layout_matches_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::Never), 0).unwrap();
    wal.append(7, b"hello").unwrap();
    let path = wal.file_paths()[0].clone();
    drop(wal);
    assert_eq!(path.file_name().unwrap(), "00000000000000000001.wal");
    let b = fs::read(&path).unwrap();
    assert_eq!(&b[0..8], b"QUIVWAL\0");
    assert_eq!(&b[8..12], &1u32.to_le_bytes());
    assert_eq!(&b[20..28], &1u64.to_le_bytes());
    assert_eq!(&b[28..32], &crc32fast::hash(&b[0..28]).to_le_bytes());
    let r = &b[HEADER_LEN..];
    assert_eq!(&r[0..4], &5u32.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&b[12..20]);
    h.update(&5u32.to_le_bytes());
    h.update(&1u64.to_le_bytes());
    h.update(&[7]);
    h.update(b"hello");
    assert_eq!(&r[4..8], &h.finalize().to_le_bytes());
    assert_eq!(&r[8..16], &1u64.to_le_bytes());
    assert_eq!(r[16], 7);
    assert_eq!(&r[17..], b"hello");
}

#[test]
fn oversized_payload_is_rejected_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::Never), 0).unwrap();
    let huge = vec![0u8; quiver_storage::wal::format::MAX_PAYLOAD + 1];
    assert!(matches!(wal.append(0, &huge), Err(StorageError::Codec(_))));
    assert_eq!(wal.last_lsn(), 0);
    assert_eq!(wal.append(0, b"ok").unwrap(), 1);
    assert!(Path::new(&wal.file_paths()[0]).metadata().unwrap().len() < 100);
}
