//! WAL recovery: torn tails at every byte offset, bit flips, mid-log corruption, repair.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use quiver_core::SyncPolicy;
use quiver_storage::wal::format::{HEADER_LEN, RECORD_HEADER_LEN};
use quiver_storage::wal::{Wal, WalOptions, WalRecord};
use quiver_storage::StorageError;

fn opts() -> WalOptions {
    WalOptions {
        sync: SyncPolicy::Never,
        ..WalOptions::default()
    }
}

fn repair_opts() -> WalOptions {
    WalOptions {
        repair: true,
        ..opts()
    }
}

/// Payload of record `i` (1-based): varied lengths, including empty.
fn payload(i: u64) -> Vec<u8> {
    let len = (i * 7 % 45) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

fn kind(i: u64) -> u8 {
    (i % 5) as u8
}

fn expected(n: u64) -> Vec<WalRecord> {
    (1..=n)
        .map(|i| WalRecord {
            lsn: i,
            kind: kind(i),
            payload: payload(i),
        })
        .collect()
}

/// Writes records 1..=n into a fresh log in `dir`; returns the single file's path
/// and the byte offset where each record starts (plus the file end).
fn write_log(dir: &Path, n: u64) -> (PathBuf, Vec<usize>) {
    let (wal, recs) = Wal::open(dir, opts(), 0).unwrap();
    assert!(recs.is_empty());
    let mut starts = vec![HEADER_LEN];
    for i in 1..=n {
        assert_eq!(wal.append(kind(i), &payload(i)).unwrap(), i);
        starts.push(starts[starts.len() - 1] + RECORD_HEADER_LEN + payload(i).len());
    }
    let files = wal.file_paths();
    drop(wal);
    assert_eq!(files.len(), 1);
    assert_eq!(
        fs::metadata(&files[0]).unwrap().len() as usize,
        starts[n as usize]
    );
    (files[0].clone(), starts)
}

/// A new directory holding `bytes` under the same file name as `file`.
fn copy_with(file: &Path, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file.file_name().unwrap());
    fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn torn_tail_at_every_offset_of_the_last_records() {
    const N: u64 = 12;
    let src = tempfile::tempdir().unwrap();
    let (file, starts) = write_log(src.path(), N);
    let bytes = fs::read(&file).unwrap();
    let all = expected(N);
    // Every cut from the start of record N-2 to one byte before the end.
    for cut in starts[(N - 3) as usize]..bytes.len() {
        let (dir, _) = copy_with(&file, &bytes[..cut]);
        let whole = starts.iter().filter(|&&s| s <= cut).count() as u64 - 1;
        let (wal, recs) = Wal::open(dir.path(), opts(), 0).unwrap();
        assert_eq!(recs, all[..whole as usize], "cut at byte {cut}");
        assert_eq!(wal.last_lsn(), whole);
        // Appending continues the LSNs right after the last whole record.
        assert_eq!(wal.append(9, b"after").unwrap(), whole + 1);
        drop(wal);
        let (_, again) = Wal::open(dir.path(), opts(), 0).unwrap();
        assert_eq!(again.len() as u64, whole + 1, "cut at byte {cut}");
        assert_eq!(again[..whole as usize], all[..whole as usize]);
        assert_eq!(again[whole as usize].payload, b"after");
        assert_eq!(again[whole as usize].lsn, whole + 1);
    }
}

#[test]
fn bit_flips_in_tail_records_never_surface_as_data() {
    const N: u64 = 12;
    let src = tempfile::tempdir().unwrap();
    let (file, starts) = write_log(src.path(), N);
    let bytes = fs::read(&file).unwrap();
    let all = expected(N);
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    for rec in (N - 3)..N {
        let (start, end) = (starts[rec as usize], starts[rec as usize + 1]);
        for at in start..end {
            // xorshift: a different bit at every byte, reproducibly.
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << (rng_state % 8);
            let (dir, path) = copy_with(&file, &damaged);
            match Wal::open(dir.path(), opts(), 0) {
                Ok((_, recs)) => {
                    // Only damage in the very last record may read as a torn tail.
                    assert_eq!(rec, N - 1, "flip at byte {at} opened");
                    assert_eq!(recs, all[..rec as usize], "flip at byte {at}");
                }
                Err(StorageError::Corruption { file, offset, .. }) => {
                    assert!(rec < N - 1, "flip at byte {at} in the last record refused");
                    assert_eq!(file, path);
                    assert_eq!(offset, start as u64, "flip at byte {at}");
                }
                Err(e) => panic!("flip at byte {at}: unexpected error {e}"),
            }
        }
    }
}

#[test]
fn mid_log_damage_is_refused_then_repaired() {
    const N: u64 = 50;
    let src = tempfile::tempdir().unwrap();
    let (file, starts) = write_log(src.path(), N);
    let mut bytes = fs::read(&file).unwrap();
    let bad = 20usize; // record 21 (1-based) is damaged
    bytes[starts[bad] + RECORD_HEADER_LEN - 1] ^= 0x40; // its kind byte
    let (dir, path) = copy_with(&file, &bytes);

    let err = Wal::open(dir.path(), opts(), 0).unwrap_err();
    match &err {
        StorageError::Corruption { file, offset, .. } => {
            assert_eq!(file, &path);
            assert_eq!(*offset, starts[bad] as u64);
        }
        other => panic!("expected corruption, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("at byte {}", starts[bad])), "{msg}");
    // Refusing must not have changed the file.
    assert_eq!(fs::read(&path).unwrap(), bytes);

    let (wal, recs) = Wal::open(dir.path(), repair_opts(), 0).unwrap();
    assert_eq!(recs, expected(N)[..bad]);
    assert_eq!(wal.append(1, b"x").unwrap(), bad as u64 + 1);
    drop(wal);
    let (_, recs) = Wal::open(dir.path(), opts(), 0).unwrap();
    assert_eq!(recs.len(), bad + 1);
    assert_eq!(recs[..bad], expected(N)[..bad]);
}

#[test]
fn damaged_length_field_is_found_by_the_forward_scan() {
    const N: u64 = 30;
    let src = tempfile::tempdir().unwrap();
    let (file, starts) = write_log(src.path(), N);
    let mut bytes = fs::read(&file).unwrap();
    // A huge length makes record 11 look like it runs past the end of the file.
    bytes[starts[10] + 3] = 0x7f;
    let (dir, _) = copy_with(&file, &bytes);
    match Wal::open(dir.path(), opts(), 0) {
        Err(StorageError::Corruption { offset, .. }) => assert_eq!(offset, starts[10] as u64),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let src = tempfile::tempdir().unwrap();
    let (file, _) = write_log(src.path(), 5);
    let mut bytes = fs::read(&file).unwrap();
    let end = bytes.len();
    bytes.extend_from_slice(&[0xA5; 100]);
    let (dir, path) = copy_with(&file, &bytes);
    let (_, recs) = Wal::open(dir.path(), opts(), 0).unwrap();
    assert_eq!(recs, expected(5));
    assert_eq!(fs::metadata(&path).unwrap().len() as usize, end);
}

#[test]
fn records_from_another_file_never_parse() {
    // Two logs with identical records differ only in their seeds: splicing the
    // records of one behind the other's header must not yield data.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (fa, _) = write_log(a.path(), 6);
    let (fb, _) = write_log(b.path(), 6);
    let (ba, bb) = (fs::read(&fa).unwrap(), fs::read(&fb).unwrap());
    assert_ne!(ba[12..20], bb[12..20], "seeds must differ");
    let mut spliced = ba[..HEADER_LEN].to_vec();
    spliced.extend_from_slice(&bb[HEADER_LEN..]);
    let (dir, _) = copy_with(&fa, &spliced);
    let (_, recs) = Wal::open(dir.path(), opts(), 0).unwrap();
    assert!(recs.is_empty());
}

#[test]
fn interrupted_file_creation_is_cleaned_up() {
    for len in [0usize, 5, HEADER_LEN - 1, HEADER_LEN] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.wal");
        fs::write(&path, vec![0u8; len]).unwrap();
        let (wal, recs) = Wal::open(dir.path(), opts(), 0).unwrap();
        assert!(recs.is_empty());
        assert_eq!(wal.append(0, b"a").unwrap(), 1, "header of {len} bytes");
    }
}

#[test]
fn damaged_header_with_records_is_corruption() {
    let src = tempfile::tempdir().unwrap();
    let (file, _) = write_log(src.path(), 5);
    let mut bytes = fs::read(&file).unwrap();
    bytes[14] ^= 1; // inside the seed
    let (dir, path) = copy_with(&file, &bytes);
    match Wal::open(dir.path(), opts(), 0) {
        Err(StorageError::Corruption { file, offset, .. }) => {
            assert_eq!((file, offset), (path.clone(), 0));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let (wal, recs) = Wal::open(dir.path(), repair_opts(), 0).unwrap();
    assert!(recs.is_empty());
    assert_eq!(wal.append(0, b"a").unwrap(), 1);
}

#[test]
fn lsn_gap_between_records_is_corruption() {
    let src = tempfile::tempdir().unwrap();
    let (file, starts) = write_log(src.path(), 6);
    let bytes = fs::read(&file).unwrap();
    // Drop record 3 entirely: records 4.. are valid but out of sequence.
    let mut gapped = bytes[..starts[2]].to_vec();
    gapped.extend_from_slice(&bytes[starts[3]..]);
    let (dir, _) = copy_with(&file, &gapped);
    match Wal::open(dir.path(), opts(), 0) {
        Err(StorageError::Corruption { offset, reason, .. }) => {
            assert_eq!(offset, starts[2] as u64);
            assert!(reason.contains("lsn 4"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn after_lsn_filters_and_sets_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10);
    let (wal, recs) = Wal::open(dir.path(), opts(), 7).unwrap();
    assert_eq!(recs, expected(10)[7..]);
    assert_eq!(wal.last_lsn(), 10);
    drop(wal);
    // A checkpoint beyond the log: nothing to replay, numbering continues above it.
    let (wal, recs) = Wal::open(dir.path(), opts(), 25).unwrap();
    assert!(recs.is_empty());
    assert_eq!(wal.last_lsn(), 25);
    assert_eq!(wal.append(0, b"z").unwrap(), 26);
    drop(wal);
    let (_, recs) = Wal::open(dir.path(), opts(), 25).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].lsn, 26);
    // Asking for records the log no longer has is refused.
    assert!(matches!(
        Wal::open(dir.path(), opts(), 3),
        Err(StorageError::Corruption { .. })
    ));
}
