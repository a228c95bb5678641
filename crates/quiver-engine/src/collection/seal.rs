//! Sealing: freezing a full memtable and writing it into an immutable segment on the
//! sealer thread, while reads and writes continue.
//!
//! A write that fills the memtable freezes it (under the writers' gate, so the frozen
//! table holds every record up to the WAL's last LSN, its checkpoint) and returns; the
//! frozen table stays searchable until its segment is swapped in. At most one frozen
//! memtable waits: a write that finds the active one full while another is still being
//! sealed waits for that seal before it is applied (back-pressure, counted as a write
//! stall), unless the last seal failed, in which case the memtable grows past its limit
//! rather than refusing writes the WAL can still take. A failed seal leaves the frozen
//! memtable in place; the sealer retries it.
//!
//! The segment's graph is the memtable's own, exported with write sequence numbers
//! mapped to segment rows (`SegmentGraph::from_graph`): no vector is inserted twice.
//! While the segment is small enough to be merged again, it keeps that graph in memory
//! (`BuildGraph`), so compaction can grow it rather than start over.
//!
//! Crash ordering (compaction follows it too): write the new segment directory (renamed
//! into place only when complete) with its graph -> swap it into memory -> persist dirty
//! tombstone bitmaps (after a WAL sync, so no bit outlives the record that set it) ->
//! commit the text index -> replace the manifest -> only then drop WAL files. A crash
//! before the manifest leaves an unreferenced segment that start-up deletes; one after
//! it leaves WAL files below the checkpoint that start-up ignores and deletes. Tombstone
//! bits persisted early are harmless: their WAL records are above the old checkpoint
//! and replay sets the same bits again.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_core::DocChunk;
use quiver_storage::manifest::Manifest;
use quiver_storage::segment::{write_segment, Segment, SegmentChunk, SegmentRow};

use super::{Collection, Inner, State, SEGMENTS_DIR};
use crate::dense::VecIndex;
use crate::live_segment::{BuildGraph, LiveSegment};
use crate::memtable::{MemDoc, Memtable};
use crate::segment_graph::SegmentGraph;
use crate::{EngineError, Result};

/// Longest a waiting writer sleeps before it looks at the memtables again.
const ROOM_POLL: Duration = Duration::from_millis(200);
/// How often [`Collection::wait_idle`] looks.
const IDLE_POLL: Duration = Duration::from_millis(5);

impl Collection {
    /// Seals now, on the calling thread: the frozen memtable if one waits, then the
    /// active one. Moves the checkpoint and drops the WAL files it covers. Returns
    /// whether anything was sealed.
    pub fn seal(&self) -> Result<bool> {
        let mut sealed = self.inner.seal_queued()?;
        if self.inner.freeze(true)? {
            sealed |= self.inner.seal_queued()?;
        }
        Ok(sealed)
    }

    /// Waits until no frozen memtable waits for its seal and no seal or compaction runs
    /// or is due, or until `timeout`; returns whether that point was reached. Useful before
    /// measuring, or to see background work finish.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let queued = self.inner.state.read().frozen.is_some();
            if !queued && !self.inner.counters.busy() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if queued {
                self.inner.signal_sealer();
            }
            std::thread::sleep(IDLE_POLL);
        }
    }
}

/// A document's chunks as the segment writer takes them.
pub(super) fn segment_chunks(chunks: &[DocChunk]) -> Vec<SegmentChunk<'_>> {
    chunks
        .iter()
        .map(|c| SegmentChunk {
            start: c.start,
            end: c.end,
            vector: &c.vector,
        })
        .collect()
}

impl Inner {
    /// Whether the active memtable has reached a seal threshold.
    fn full(&self, st: &State) -> bool {
        // Overwrites of the same ids grow the memtable's graph without adding entries.
        st.active.len() >= self.opts.seal_rows
            || st.active.bytes() >= self.opts.seal_bytes
            || st.active.writes() >= self.opts.seal_rows.saturating_mul(2)
    }

    /// Called before every write: when the active memtable is full and the previous one
    /// is still being sealed, waits until that seal is done (back-pressure), then
    /// freezes the full one. Never waits while seals are failing or the collection is
    /// closing.
    pub(super) fn make_room(&self) {
        if !self.full(&self.state.read()) {
            return;
        }
        let start = Instant::now();
        let mut waited = false;
        let mut room = self.room.lock();
        loop {
            let blocked = {
                let st = self.state.read();
                self.full(&st) && st.frozen.is_some()
            };
            if !blocked
                || self.seal_failing.load(Ordering::Acquire)
                || self.closing.load(Ordering::Acquire)
            {
                break;
            }
            waited = true;
            self.signal_sealer();
            self.room_freed.wait_for(&mut room, ROOM_POLL);
        }
        drop(room);
        if waited {
            self.counters.stalled(start.elapsed());
        }
        self.freeze_if_full();
    }

    /// Called after every write: freezes a full memtable and wakes the sealer. A
    /// failure is logged, not returned: the write itself is already durable.
    pub(super) fn freeze_if_full(&self) {
        if !self.full(&self.state.read()) {
            return;
        }
        match self.freeze(false) {
            Ok(true) => self.signal_sealer(),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(collection = %self.name, error = %e, "freezing the memtable failed")
            }
        }
    }

    /// Freezes the active memtable (when full, or when `force` and not empty) unless a
    /// frozen one is still waiting. Returns whether it froze.
    pub(super) fn freeze(&self, force: bool) -> Result<bool> {
        let fresh = Memtable::with_graph(VecIndex::new(&self.config)?);
        let _gate = self.gate.write();
        let mut st = self.state.write();
        if st.frozen.is_some() || st.active.is_empty() || !(force || self.full(&st)) {
            return Ok(false);
        }
        // No writer is between append and apply, so every record up to the WAL's last
        // LSN is in the memtable being frozen, and its graph holds all of them.
        st.frozen_lsn = self.wal.last_lsn();
        let frozen = std::mem::replace(&mut st.active, fresh);
        st.frozen = Some(Arc::new(frozen));
        Ok(true)
    }

    fn signal_sealer(&self) {
        if let Some(s) = self.signals.lock().as_ref() {
            s.seal();
        }
    }

    fn signal_compactor(&self) {
        if !self.opts.background_compaction {
            return;
        }
        if let Some(s) = self.signals.lock().as_ref() {
            self.counters.compaction_due.store(true, Ordering::Release);
            s.compact();
        }
    }

    /// Seals the frozen memtable, if one waits, and makes a compaction due. On failure it stays frozen and
    /// searchable, and writes stop waiting for it until a later attempt succeeds.
    pub(super) fn seal_queued(&self) -> Result<bool> {
        let mut manifest = self.maint.lock();
        let (frozen, checkpoint) = {
            let st = self.state.read();
            match &st.frozen {
                Some(f) => (Arc::clone(f), st.frozen_lsn),
                None => return Ok(false),
            }
        };
        let start = Instant::now();
        self.counters.sealing.store(true, Ordering::Release);
        let result = self
            .check_writable()
            .and_then(|()| self.seal_frozen(&frozen, &mut manifest, checkpoint));
        if result.is_ok() {
            // Before `sealing` clears, so `wait_idle` never sees a gap between the
            // seal and the compaction it makes due.
            self.signal_compactor();
        }
        self.counters.sealing.store(false, Ordering::Release);
        self.counters.seal_done(start.elapsed(), result.is_ok());
        self.seal_failing.store(result.is_err(), Ordering::Release);
        drop(manifest);
        // Waiting writers look again: there is room now, or the seal failed.
        let _room = self.room.lock();
        self.room_freed.notify_all();
        result.map(|()| true)
    }

    /// Writes `frozen` as the manifest's next segment, its graph exported from the
    /// memtable's, and opens it.
    fn write_frozen(
        &self,
        frozen: &Memtable,
        manifest: &mut Manifest,
    ) -> Result<Option<LiveSegment>> {
        #[cfg(feature = "fault-injection")]
        self.faults.seal()?;
        let docs: Vec<(&str, u64, &MemDoc)> = frozen
            .iter()
            .filter_map(|(id, e)| e.doc.as_ref().map(|d| (id, e.lsn, d)))
            .collect();
        let chunks: Vec<Vec<SegmentChunk<'_>>> = docs
            .iter()
            .map(|(_, _, d)| segment_chunks(&d.chunks))
            .collect();
        let mut rows: Vec<SegmentRow<'_>> = docs
            .iter()
            .zip(&chunks)
            .map(|(&(id, lsn, d), chunks)| SegmentRow {
                id,
                text: &d.text,
                metadata_json: &d.metadata_json,
                lsn,
                vector: &d.vector,
                chunks,
            })
            .collect();
        if rows.is_empty() {
            return Ok(None);
        }
        // The id is used up even if this seal fails: a retry never meets a half-made
        // directory of the same name.
        let id = manifest.next_segment_id;
        manifest.next_segment_id = id + 1;
        let path = write_segment(&self.dir.join(SEGMENTS_DIR), id, self.config.dim, &mut rows)?;
        let mut key_of_node = Vec::new();
        let opened = self.open_written(&path, |segment| {
            // A document's nodes are consecutive in the memtable and in the segment.
            key_of_node = (0..segment.nodes())
                .map(|node| {
                    let row = segment.node_row(node);
                    let chunk = (node - segment.row_nodes(row).start) as u64;
                    frozen
                        .get(segment.id_of(row))
                        .map_or(u64::MAX, |e| e.seq + chunk)
                })
                .collect();
            let mut node_of_seq = vec![None; frozen.writes()];
            for (node, &seq) in key_of_node.iter().enumerate() {
                if let Some(slot) = usize::try_from(seq)
                    .ok()
                    .and_then(|s| node_of_seq.get_mut(s))
                {
                    *slot = Some(node);
                }
            }
            match frozen.graph() {
                Some(g) => SegmentGraph::from_graph(segment, &self.config, g, &node_of_seq),
                None => SegmentGraph::build_whole(segment, &self.config),
            }
            .map(Some)
        })?;
        if let (Some(seg), Some(graph)) = (&opened, frozen.graph()) {
            if seg.segment().len() < self.opts.compact_small_rows {
                seg.keep_build_graph(BuildGraph {
                    graph: Arc::clone(graph),
                    key_of_node,
                    next_key: frozen.writes() as u64,
                });
            }
        }
        Ok(opened)
    }

    /// Opens the segment just written at `path` with the graph `graph` makes for it.
    /// When that fails or gives no graph (a cancelled build) the directory is removed
    /// again: nothing refers to it yet.
    pub(super) fn open_written(
        &self,
        path: &Path,
        graph: impl FnOnce(&Segment) -> Result<Option<SegmentGraph>>,
    ) -> Result<Option<LiveSegment>> {
        let opened = Segment::open(path)
            .map_err(EngineError::from)
            .and_then(|segment| {
                let Some(graph) = graph(&segment)? else {
                    return Ok(None);
                };
                LiveSegment::new(segment, graph).map(Some)
            });
        if !matches!(opened, Ok(Some(_))) {
            if let Err(e) = std::fs::remove_dir_all(path) {
                tracing::warn!(collection = %self.name, dir = %path.display(), error = %e, "could not remove an unfinished segment");
            }
        }
        opened
    }

    fn seal_frozen(
        &self,
        frozen: &Memtable,
        manifest: &mut Manifest,
        checkpoint: u64,
    ) -> Result<()> {
        let new_seg = self.write_frozen(frozen, manifest)?.map(Arc::new);
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
    pub(super) fn persist_tombstones(&self) -> Result<()> {
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
}
