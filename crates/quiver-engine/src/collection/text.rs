//! The collection's full-text index (`<collection>/text/`, a tantivy index; format and
//! commit payload: `quiver_index::TextIndex`).
//!
//! Every applied upsert or delete updates it under the same lock and LSN check as the
//! memtable, so it always holds the newest version of each id. Its documents are keyed
//! by [`text_key`], a stable hash of the document id, which is what a query's compiled
//! filter is checked against while BM25 scores.
//!
//! Commits record an LSN `N` such that every WAL record up to `N` is in the commit.
//! They happen when a seal moves the checkpoint (before the manifest, so the index is
//! never behind the checkpoint and the WAL it would need is never deleted), every
//! `text_commit_ops` operations, on the background timer, on `sync`, and on close. The
//! WAL is synced before each commit, so the index never holds a write that the WAL
//! could still lose.
//!
//! Uncommitted changes are not visible to text searches, so a query with a text half
//! first commits whatever is waiting (`catch_up_text`): every acknowledged write is seen
//! by sparse and hybrid queries as it is by dense ones. What that costs: a query that
//! follows writes pays for one commit (a WAL sync and a small tantivy segment; about a
//! millisecond or two on a local SSD, more under a heavy write load), and queries that
//! arrive while writes keep coming commit as often as they come, each sharing the
//! commit in flight. Queries with no new writes before them pay nothing.
//!
//! On open, the WAL records past the commit's LSN are replayed into the index. An index
//! that is missing, unreadable, behind the checkpoint or ahead of the WAL is rebuilt
//! from the live documents, with a warning.
//!
//! An index keeps the analyzer pipeline version it was created with (its schema names it,
//! see `quiver_index::Analyzer`), so an `en` index from before `en` followed Lucene's word
//! rules still splits `John's` into `john` and `s`, for documents and queries alike. A
//! rebuilt index gets the current pipeline: removing `text/` while the collection is
//! closed re-tokenizes its documents at the next open. BM25's `k1` and `b` apply at query
//! time only, from the collection's config.

use std::path::Path;
use std::sync::atomic::Ordering;

use quiver_core::TextAnalyzer;
use quiver_index::{Analyzer, TextIndex};

use super::{Inner, State};
use crate::dense::index_err;
use crate::{EngineError, Result};

/// Sub-directory holding the text index.
pub const TEXT_DIR: &str = "text";

/// The text index's key of a document: 64-bit FNV-1a of its id. Stable across
/// releases and platforms (it is stored in the index). Two ids may collide; a query
/// therefore re-checks the filter on the documents its hits resolve to.
pub fn text_key(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) fn analyzer(a: TextAnalyzer) -> Analyzer {
    match a {
        TextAnalyzer::En => Analyzer::En,
        TextAnalyzer::Simple => Analyzer::Simple,
        TextAnalyzer::Cjk => Analyzer::Cjk,
    }
}

/// What recovery must do with the text index it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextStart {
    /// Replay WAL records with a greater LSN.
    Replay(u64),
    /// Index every live document again.
    Rebuild,
}

fn recreate(dir: &Path, a: Analyzer, reason: &str) -> Result<(TextIndex, TextStart)> {
    tracing::warn!(dir = %dir.display(), reason, "rebuilding text index");
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| quiver_storage::StorageError::io(dir, e))?;
    }
    let index = TextIndex::open_or_create(dir, a).map_err(index_err)?;
    Ok((index, TextStart::Rebuild))
}

/// Opens the text index of the collection in `coll_dir` and decides how to catch it
/// up, given the manifest's checkpoint and the WAL's last LSN.
pub(super) fn open(
    coll_dir: &Path,
    a: TextAnalyzer,
    checkpoint: u64,
    wal_last: u64,
) -> Result<(TextIndex, TextStart)> {
    let dir = coll_dir.join(TEXT_DIR);
    let a = analyzer(a);
    let fresh = !dir.join("meta.json").exists();
    let index = match TextIndex::open_or_create(&dir, a) {
        Ok(i) => i,
        Err(e) => return recreate(&dir, a, &e.to_string()),
    };
    let reason = match index.last_lsn() {
        Ok(Some(n)) if n >= checkpoint && n <= wal_last => {
            return Ok((index, TextStart::Replay(n)))
        }
        Ok(Some(n)) if n < checkpoint => {
            format!("committed at LSN {n}, behind checkpoint {checkpoint}")
        }
        Ok(Some(n)) => format!("committed at LSN {n}, ahead of the WAL's last LSN {wal_last}"),
        Ok(None) if fresh => return Ok((index, TextStart::Rebuild)),
        Ok(None) => "no commit recorded".to_string(),
        Err(e) => e.to_string(),
    };
    drop(index);
    recreate(&dir, a, &reason)
}

/// Upserts or deletes one document's text, logging failures: the write is already in
/// the WAL, and the next open repairs the index by replay.
pub(super) fn apply(text: &TextIndex, id: &str, body: Option<&str>) {
    let result = match body {
        Some(t) if !t.is_empty() => text.upsert(id, text_key(id), t),
        _ => text.delete(id),
    };
    if let Err(e) = result {
        tracing::error!(id, error = %e, "text index update failed");
    }
}

/// Indexes every visible document of `st` (recovery of a lost or damaged index).
pub(super) fn rebuild(text: &TextIndex, st: &State) -> Result<usize> {
    let mut n = 0;
    for (id, e) in st.active.iter() {
        if let Some(d) = &e.doc {
            apply(text, id, Some(&d.text));
            n += 1;
        }
    }
    for seg in st.segments.iter() {
        for row in seg.live_rows() {
            let d = seg.segment().doc(row)?;
            apply(text, d.id, Some(d.text));
            n += 1;
        }
    }
    Ok(n)
}

impl Inner {
    /// Commits the text index (see the module docs for the LSN it records).
    pub(super) fn commit_text(&self) -> Result<()> {
        let _serial = self.text_commit.lock();
        // With the gate held exclusively no writer sits between append and apply, so
        // every record up to this LSN has reached the index writer.
        let lsn = {
            let _gate = self.gate.write();
            self.wal.last_lsn()
        };
        self.commit_text_at(lsn)
    }

    /// Commits the text index as holding every record up to `lsn`. The caller holds
    /// `text_commit`, and has made sure every record up to `lsn` reached the index writer.
    pub(super) fn commit_text_at(&self, lsn: u64) -> Result<()> {
        let pending = self.text_pending.swap(0, Ordering::AcqRel);
        if pending == 0 && self.text_committed.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let result = self
            .wal
            .sync()
            .map_err(EngineError::from)
            .and_then(|()| self.text.commit(lsn).map_err(index_err));
        match result {
            Ok(()) => {
                self.text_committed.fetch_max(lsn, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                self.text_pending.fetch_add(pending, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    /// Commits when changes are waiting; failures are logged (the WAL holds the data).
    pub(super) fn commit_text_if_pending(&self) {
        if self.text_pending.load(Ordering::Acquire) == 0 || self.wal.is_poisoned() {
            return;
        }
        if let Err(e) = self.commit_text() {
            tracing::error!(collection = %self.name, error = %e, "text index commit failed");
        }
    }

    /// Makes every write acknowledged so far visible to text searches: commits now,
    /// unless a commit already covers the WAL's last LSN. Queries that arrive together
    /// share one commit (each waits for `text_commit`, then finds the work done), so a
    /// burst of queries after a burst of writes costs one commit, not one per query.
    /// A collection whose WAL failed (read-only) keeps what was committed.
    pub(super) fn catch_up_text(&self) -> Result<()> {
        let behind = || self.text_committed.load(Ordering::Acquire) < self.wal.last_lsn();
        if !behind() || self.wal.is_poisoned() {
            return Ok(());
        }
        let _serial = self.text_commit.lock();
        if !behind() {
            return Ok(());
        }
        let lsn = {
            let _gate = self.gate.write();
            self.wal.last_lsn()
        };
        self.commit_text_at(lsn)
    }

    /// Called after every write: commits once enough operations are waiting.
    pub(super) fn commit_text_if_due(&self) {
        if self.text_pending.load(Ordering::Acquire) >= self.opts.text_commit_ops as u64 {
            self.commit_text_if_pending();
        }
    }
}
