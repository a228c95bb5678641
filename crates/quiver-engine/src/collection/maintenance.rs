//! Sealing and compaction: turning the memtable into an immutable segment and merging
//! small or sparse segments, while reads and writes continue.
//!
//! Crash ordering for both: write the new segment directory (renamed into place
//! only when complete) -> swap it into memory -> persist dirty tombstone bitmaps
//! (after a WAL sync, so no bit outlives the record that set it) -> replace the
//! manifest -> only then drop WAL files (seal) or old segment directories (compaction).
//! A new segment's HNSW graph is built and dumped into its directory before the swap;
//! a seal commits the text index before the manifest moves the checkpoint.
//! A crash before the manifest leaves an unreferenced segment that start-up deletes;
//! a crash after it leaves garbage start-up deletes too. Tombstone bits persisted
//! early are harmless: their WAL records are above the old checkpoint and replay
//! sets the same bits again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use quiver_storage::manifest::Manifest;
use quiver_storage::segment::{write_segment, SegmentRow};
use quiver_storage::StorageError;

use super::{write, Collection, Inner, SEGMENTS_DIR};
use crate::dense::VecIndex;
use crate::live_segment::{GraphSource, LiveSegment};
use crate::memtable::Memtable;
use crate::{EngineError, Result};

impl Collection {
    /// Seals the memtable into a segment now (if it holds anything), moves the
    /// checkpoint and drops the WAL files it covers. Returns whether it sealed.
    pub fn seal(&self) -> Result<bool> {
        let mut manifest = self.inner.maint.lock();
        let sealed = self.inner.seal_locked(&mut manifest)?;
        drop(manifest);
        if sealed {
            self.inner.signal_compactor();
        }
        Ok(sealed)
    }

    /// Merges small segments (fewer than `compact_small_rows` live rows) and sparse
    /// ones (at least half deleted) into one, dropping deleted rows. Reads and writes
    /// continue meanwhile. Returns whether anything was merged.
    pub fn compact(&self) -> Result<bool> {
        self.inner.compact()
    }
}

impl Inner {
    /// Called after every write: seals when the memtable passed a threshold, unless
    /// a seal or compaction is already running (the next write tries again). A
    /// failure is logged, not returned: the write itself is already durable.
    pub(super) fn seal_if_full(&self) {
        // Overwrites of the same ids grow the memtable's graph without adding entries.
        let full = |st: &super::State| {
            st.active.len() >= self.opts.seal_rows
                || st.active.bytes() >= self.opts.seal_bytes
                || st.active.writes() >= self.opts.seal_rows.saturating_mul(2)
        };
        if !full(&self.state.read()) {
            return;
        }
        let Some(mut manifest) = self.maint.try_lock() else {
            return;
        };
        if !full(&self.state.read()) {
            return;
        }
        match self.seal_locked(&mut manifest) {
            Ok(true) => {
                drop(manifest);
                self.signal_compactor();
            }
            Ok(false) => {}
            Err(e) => tracing::error!(collection = %self.name, error = %e, "seal failed"),
        }
    }

    fn signal_compactor(&self) {
        if let Some(tx) = self.compact_signal.lock().as_ref() {
            // A full channel already has a wake-up pending.
            let _ = tx.try_send(());
        }
    }

    pub(super) fn seal_locked(&self, manifest: &mut Manifest) -> Result<bool> {
        self.check_writable()?;
        let fresh = Memtable::with_graph(VecIndex::new(&self.config, self.opts.seal_rows)?);
        let (frozen, checkpoint) = {
            let _gate = self.gate.write();
            let mut st = self.state.write();
            if st.active.is_empty() {
                return Ok(false);
            }
            // No writer is between append and apply, so every record up to the WAL's
            // last LSN is in the memtable being frozen.
            let checkpoint = self.wal.last_lsn();
            let frozen = Arc::new(std::mem::replace(&mut st.active, fresh));
            st.frozen = Some(Arc::clone(&frozen));
            (frozen, checkpoint)
        };
        match self.seal_frozen(&frozen, manifest, checkpoint) {
            Ok(()) => Ok(true),
            Err(e) => {
                // Keep the frozen writes visible: fold them back under the newer ones.
                let mut st = self.state.write();
                let mut rows = Vec::new();
                if st.frozen.is_some() {
                    for (id, entry) in frozen.iter() {
                        if let (Some(seq), Some(d)) =
                            (st.active.insert_if_absent(id, entry), &entry.doc)
                        {
                            rows.push((seq, d.vector.clone()));
                        }
                    }
                    st.frozen = None;
                }
                let graph = st.active.graph().cloned();
                drop(st);
                if let Some(g) = graph {
                    write::insert_rows(&g, &rows);
                }
                Err(e)
            }
        }
    }

    /// Writes `rows` as the manifest's next segment and opens it with a fresh graph.
    /// Shared by seal and compaction; the caller publishes the manifest.
    fn write_next_segment(
        &self,
        manifest: &mut Manifest,
        rows: &mut [SegmentRow<'_>],
    ) -> Result<Arc<LiveSegment>> {
        let id = manifest.next_segment_id;
        let path = write_segment(&self.dir.join(SEGMENTS_DIR), id, self.config.dim, rows)?;
        manifest.next_segment_id = id + 1;
        Ok(Arc::new(LiveSegment::open(
            &path,
            &self.config,
            GraphSource::Build,
        )?))
    }

    fn seal_frozen(
        &self,
        frozen: &Memtable,
        manifest: &mut Manifest,
        checkpoint: u64,
    ) -> Result<()> {
        let mut rows: Vec<SegmentRow<'_>> = frozen
            .iter()
            .filter_map(|(id, e)| {
                e.doc.as_ref().map(|d| SegmentRow {
                    id,
                    text: &d.text,
                    metadata_json: &d.metadata_json,
                    lsn: e.lsn,
                    vector: &d.vector,
                })
            })
            .collect();
        let new_seg = if rows.is_empty() {
            None
        } else {
            Some(self.write_next_segment(manifest, &mut rows)?)
        };
        {
            let mut st = self.state.write();
            if let Some(seg) = &new_seg {
                // Writes that landed in the active memtable during the seal are newer
                // than the frozen copies now in the segment.
                for (id, _) in st.active.iter() {
                    if let Some(row) = seg.segment().find(id) {
                        seg.mark_deleted(row);
                    }
                }
                Arc::make_mut(&mut st.segments).push(Arc::clone(seg));
            }
            st.frozen = None;
        }
        if let Some(seg) = &new_seg {
            manifest.segments.push(seg.id());
        }
        self.persist_tombstones()?;
        // The text index must cover the new checkpoint before the WAL below it goes.
        self.commit_text()?;
        let mut next = manifest.clone();
        next.checkpoint_lsn = checkpoint.max(manifest.checkpoint_lsn);
        next.store(&self.dir)?;
        *manifest = next;
        self.checkpoint
            .store(manifest.checkpoint_lsn, Ordering::Release);
        self.wal.remove_before(manifest.checkpoint_lsn)?;
        Ok(())
    }

    /// Writes every changed tombstone bitmap. The WAL is synced first: every bit was
    /// set after its record was appended, so after the sync no persisted bit can
    /// outlive a lost record.
    fn persist_tombstones(&self) -> Result<()> {
        let snapshots = {
            let st = self.state.read();
            let mut out = Vec::new();
            for seg in st.segments.iter() {
                if seg.take_dirty() {
                    out.push((Arc::clone(seg), seg.tombstones()?));
                }
            }
            out
        };
        let result = self.wal.sync().map_err(EngineError::from).and_then(|()| {
            for (seg, t) in &snapshots {
                t.store(seg.segment().dir())?;
            }
            Ok(())
        });
        if result.is_err() {
            // Retry on the next seal or compaction.
            for (seg, _) in &snapshots {
                seg.set_dirty();
            }
        }
        result
    }

    pub(super) fn compact(&self) -> Result<bool> {
        let mut manifest = self.maint.lock();
        self.check_writable()?;
        let small = self.opts.compact_small_rows;
        // Pick candidates and snapshot their live rows.
        let picked: Vec<(Arc<LiveSegment>, Vec<usize>)> = {
            let st = self.state.read();
            let sparse = |s: &LiveSegment| s.deleted_count() * 2 >= s.segment().len();
            let cands: Vec<&Arc<LiveSegment>> = st
                .segments
                .iter()
                .filter(|s| s.live_count() < small || sparse(s))
                .collect();
            let worth =
                cands.len() >= 2 || cands.iter().any(|s| s.deleted_count() > 0 && sparse(s));
            if !worth {
                return Ok(false);
            }
            cands
                .into_iter()
                .map(|s| (Arc::clone(s), s.live_rows().collect()))
                .collect()
        };

        let mut docs = Vec::new();
        for (seg, rows) in &picked {
            for &row in rows {
                docs.push(seg.segment().doc(row)?);
            }
        }
        let new_seg = if docs.is_empty() {
            None
        } else {
            let mut rows: Vec<SegmentRow<'_>> = docs
                .iter()
                .map(|d| SegmentRow {
                    id: d.id,
                    text: d.text,
                    metadata_json: d.metadata_json,
                    lsn: d.lsn,
                    vector: d.vector,
                })
                .collect();
            Some(self.write_next_segment(&mut manifest, &mut rows)?)
        };

        let old_ids: Vec<u64> = picked.iter().map(|(s, _)| s.id()).collect();
        {
            let mut st = self.state.write();
            if let Some(new) = &new_seg {
                // Rows deleted or superseded while the merge ran: carry the bits over.
                let by_id: HashMap<&str, usize> = (0..new.segment().len())
                    .map(|r| (new.segment().id_of(r), r))
                    .collect();
                for (seg, rows) in &picked {
                    for &row in rows {
                        if seg.is_deleted(row) {
                            if let Some(&r) = by_id.get(seg.segment().id_of(row)) {
                                new.mark_deleted(r);
                            }
                        }
                    }
                }
                Arc::make_mut(&mut st.segments).push(Arc::clone(new));
            }
            Arc::make_mut(&mut st.segments).retain(|s| !old_ids.contains(&s.id()));
        }
        // The in-memory manifest follows the swap at once, so a later seal never
        // stores a list that disagrees with the segments writes are marking.
        manifest.segments.retain(|id| !old_ids.contains(id));
        if let Some(new) = &new_seg {
            manifest.segments.push(new.id());
        }
        self.persist_tombstones()?;
        manifest.store(&self.dir)?;
        drop(manifest);
        for (seg, _) in &picked {
            // Open mappings stay valid; a failure here only leaves garbage that the
            // next open removes.
            if let Err(e) = std::fs::remove_dir_all(seg.segment().dir()) {
                tracing::warn!(collection = %self.name, segment = seg.id(), error = %e, "could not remove merged segment");
            }
        }
        tracing::debug!(collection = %self.name, merged = ?old_ids, "compacted");
        Ok(true)
    }
}

/// The background thread of one collection: it compacts after each seal (when
/// background compaction is on) and commits waiting text index updates on a timer.
/// It holds only a weak reference between runs and exits when its channel closes.
#[derive(Debug)]
pub(super) struct Compactor {
    handle: JoinHandle<()>,
}

impl Compactor {
    pub(super) fn start(inner: &Arc<Inner>) -> Result<(Compactor, SyncSender<()>)> {
        let (tx, rx) = sync_channel::<()>(1);
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let interval = inner.opts.text_commit_interval;
        let handle = std::thread::Builder::new()
            .name(format!("maint-{}", inner.name))
            .spawn(move || loop {
                let woke = match rx.recv_timeout(interval) {
                    Ok(()) => true,
                    Err(RecvTimeoutError::Timeout) => false,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                let Some(inner) = weak.upgrade() else { break };
                if woke && inner.opts.background_compaction {
                    if let Err(e) = inner.compact() {
                        tracing::error!(collection = %inner.name, error = %e, "compaction failed");
                    }
                }
                inner.commit_text_if_pending();
            })
            .map_err(|e| StorageError::io(&inner.dir, e))?;
        Ok((Compactor { handle }, tx))
    }

    /// Waits for the thread; the caller has already dropped every sender.
    pub(super) fn stop(self) {
        let _ = self.handle.join();
    }
}
