//! Property test: the WAL against a plain list of records, with reopen, checkpoints
//! (`remove_before`) and torn tails as steps. Respects `PROPTEST_CASES`.
#![allow(clippy::unwrap_used)]

use std::fs;

use proptest::prelude::*;
use quiver_core::SyncPolicy;
use quiver_storage::wal::format::{parse_file_name, HEADER_LEN, RECORD_HEADER_LEN};
use quiver_storage::wal::{Wal, WalOptions, WalRecord};

#[derive(Debug, Clone)]
enum Op {
    Append {
        kind: u8,
        len: usize,
    },
    Reopen,
    /// Cut this many bytes off the last file (a crash mid-write), then reopen.
    Tear(u64),
    /// Checkpoint at this percentage of the last LSN and remove covered files.
    Checkpoint(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), 0usize..120).prop_map(|(kind, len)| Op::Append { kind, len }),
        1 => Just(Op::Reopen),
        1 => (1u64..200).prop_map(Op::Tear),
        1 => (0u64..=100).prop_map(Op::Checkpoint),
    ]
}

fn opts() -> WalOptions {
    WalOptions {
        sync: SyncPolicy::Never,
        max_file_bytes: 256,
        repair: false,
    }
}

/// What the log must hold: every record written and not torn off, and the
/// checkpoint below which records are no longer returned.
struct Model {
    recs: Vec<WalRecord>,
    ckpt: u64,
}

impl Model {
    fn last_lsn(&self) -> u64 {
        self.recs.last().map_or(0, |r| r.lsn).max(self.ckpt)
    }

    fn live(&self) -> Vec<WalRecord> {
        self.recs
            .iter()
            .filter(|r| r.lsn > self.ckpt)
            .cloned()
            .collect()
    }
}

fn reopen(dir: &std::path::Path, model: &Model) -> Wal {
    let (wal, recs) = Wal::open(dir, opts(), model.ckpt).unwrap();
    assert_eq!(recs, model.live());
    assert_eq!(wal.last_lsn(), model.last_lsn());
    wal
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model {
        recs: Vec::new(),
        ckpt: 0,
    };
    let mut wal = reopen(dir.path(), &model);
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append { kind, len } => {
                let payload: Vec<u8> = (0..len).map(|i| (i + step) as u8).collect();
                let lsn = wal.append(kind, &payload).unwrap();
                assert_eq!(lsn, model.last_lsn() + 1);
                model.recs.push(WalRecord { lsn, kind, payload });
            }
            Op::Reopen => {
                drop(wal);
                wal = reopen(dir.path(), &model);
            }
            Op::Tear(cut) => {
                let last = wal.file_paths().pop().unwrap();
                drop(wal);
                let first = parse_file_name(&last.file_name().unwrap().to_string_lossy()).unwrap();
                let len = fs::metadata(&last).unwrap().len();
                let new_len = len - cut.min(len - HEADER_LEN as u64);
                let f = fs::OpenOptions::new().write(true).open(&last).unwrap();
                f.set_len(new_len).unwrap();
                drop(f);
                // Records of the last file survive only if they end before the cut.
                let mut end = HEADER_LEN as u64;
                model.recs.retain(|r| {
                    if r.lsn < first {
                        return true;
                    }
                    end += (RECORD_HEADER_LEN + r.payload.len()) as u64;
                    end <= new_len
                });
                wal = reopen(dir.path(), &model);
            }
            Op::Checkpoint(pct) => {
                let c = wal.last_lsn() * pct / 100;
                model.ckpt = model.ckpt.max(c);
                wal.remove_before(model.ckpt).unwrap();
            }
        }
    }
    drop(wal);
    reopen(dir.path(), &model);
}

proptest! {
    #[test]
    fn wal_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
