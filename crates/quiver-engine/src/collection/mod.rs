//! A collection: its mutable segment (memtable), sealed segments, WAL and manifest,
//! and the read paths over them.
//!
//! Visibility rule: the newest write of an id wins. Every id has at most one visible
//! version, found in this order: the active memtable, the frozen memtable (being
//! sealed), then at most one live segment row. The invariant that keeps segment rows
//! unique is maintained on every write: applying a write of an id marks that id's
//! segment rows deleted (tombstone bits), and swapping in a new segment marks rows
//! that the active memtable has already overwritten.
//!
//! Locks, always taken in this order: `maint` (seal / compaction, holds the manifest),
//! `text_commit` (one text index commit at a time), `gate` (writers shared across WAL
//! append + apply; a seal takes it exclusively only to freeze the memtable, so the
//! checkpoint LSN covers every applied record, and a text commit briefly to read an
//! LSN every applied record is below), and `state` (memtables and the segment list).

mod chunk_hits;
mod compaction;
mod dense_query;
#[cfg(feature = "fault-injection")]
mod faults;
mod fetch;
mod listing;
mod query;
mod seal;
mod text;
mod workers;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};
use quiver_core::{
    normalize, validate_name, validate_vector, ChunkingConfig, CollectionConfig, DocChunk,
    Document, Filter, Metadata,
};
use quiver_index::TextIndex;
use quiver_storage::manifest::Manifest;
use quiver_storage::segment::{self, segment_path, Segment};
use quiver_storage::wal::{Wal, WalOptions};
use quiver_storage::{fsutil, StorageError};

use crate::dense::{index_err, VecIndex};
use crate::live_segment::LiveSegment;
use crate::memtable::{MemDoc, Memtable};
use crate::search::{Hit, TopK};
use crate::{config_file, CollectionOptions, EngineError, Result};

/// Sub-directory holding segment directories.
pub const SEGMENTS_DIR: &str = "segments";
/// Sub-directory holding WAL files.
pub const WAL_DIR: &str = "wal";
pub use listing::Page;
pub use text::{text_key, TEXT_DIR};
pub use workers::MaintenanceStats;

/// What a collection holds right now, and what its last open recovered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CollectionStats {
    /// Live segments.
    pub segments: usize,
    /// Rows in live segments, deleted ones included.
    pub segment_rows: usize,
    /// Rows in live segments that are neither deleted nor superseded.
    pub segment_live_rows: usize,
    /// Entries (documents and deletes) in the memtables.
    pub memtable_entries: usize,
    /// Every WAL record at or below this LSN is in the segments.
    pub checkpoint_lsn: u64,
    /// LSN of the last write.
    pub last_lsn: u64,
    /// WAL records replayed by the last open.
    pub replayed_records: usize,
    /// Documents and deletes in those records.
    pub replayed_rows: usize,
    /// Segment rows mapped by the last open.
    pub mapped_rows: usize,
    /// Background seals and compactions.
    pub maintenance: MaintenanceStats,
}

/// One live document seen by [`Collection::for_each_live`].
#[derive(Debug, Clone, Copy)]
pub struct LiveDoc<'a> {
    pub id: &'a str,
    pub lsn: u64,
    pub vector: &'a [f32],
}

/// A collection held at one LSN for a snapshot (see [`Collection::with_pinned`]).
#[derive(Debug)]
pub(crate) struct Pinned {
    /// Every WAL record up to this LSN is applied; none after it is in the pinned files.
    pub(crate) lsn: u64,
    /// The manifest on disk while pinned (segments and checkpoint).
    pub(crate) manifest: Manifest,
    /// The WAL's files, oldest first.
    pub(crate) wal_files: Vec<PathBuf>,
}

/// The live segment list as queries hold it: a query clones the `Arc` under the state
/// lock and searches the segments after releasing it. Seal and compaction replace the
/// list (`Arc::make_mut` copies it when a query still holds the old one), so a running
/// query keeps the segments it started with, mapped and valid, until it drops them.
pub(crate) type SegmentList = Arc<Vec<Arc<LiveSegment>>>;

/// Memtables and segments; guarded by `Inner::state`.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) active: Memtable,
    /// A full memtable waiting for (or in) its seal; searchable meanwhile.
    pub(crate) frozen: Option<Arc<Memtable>>,
    /// The WAL's last LSN when `frozen` was frozen: its seal's checkpoint.
    pub(crate) frozen_lsn: u64,
    pub(crate) segments: SegmentList,
}

#[derive(Debug)]
pub(crate) struct Inner {
    name: String,
    dir: PathBuf,
    /// Settings as created; `chunking` may change while the collection is empty (the
    /// current value is `chunking` below).
    config: CollectionConfig,
    chunking: RwLock<Option<ChunkingConfig>>,
    opts: CollectionOptions,
    wal: Wal,
    gate: RwLock<()>,
    state: RwLock<State>,
    maint: Mutex<Manifest>,
    /// Held through a whole compaction, so two never pick the same segments.
    compacting: Mutex<()>,
    /// Writers waiting for room (see `seal`) sleep on `room_freed` under `room`.
    room: Mutex<()>,
    room_freed: Condvar,
    /// The last seal failed: writers stop waiting for seals until one succeeds.
    seal_failing: AtomicBool,
    /// Set when the collection closes: a running compaction gives up.
    closing: AtomicBool,
    counters: workers::Counters,
    #[cfg(feature = "fault-injection")]
    faults: faults::Faults,
    /// Copy of the manifest's checkpoint, readable without waiting for `maint`.
    checkpoint: AtomicU64,
    replayed_records: usize,
    replayed_rows: usize,
    mapped_rows: usize,
    /// Wake-ups of the background threads; `None` once closing.
    signals: Mutex<Option<workers::Signals>>,
    /// The BM25 index over every visible document's text.
    text: TextIndex,
    /// Text updates since the last text commit.
    text_pending: AtomicU64,
    /// LSN recorded by the last text commit.
    text_committed: AtomicU64,
    text_commit: Mutex<()>,
}

/// An open collection. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Collection {
    inner: Arc<Inner>,
    workers: Option<workers::Workers>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.inner.name)
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Collection {
    fn drop(&mut self) {
        // Stop a running compaction, disconnect the background threads, then wait for
        // them so no file of this collection is touched after the handle is gone. A
        // frozen memtable left unsealed is in the WAL, and the next open replays it.
        self.inner.closing.store(true, Ordering::Release);
        self.inner.signals.lock().take();
        if let Some(w) = self.workers.take() {
            w.stop();
        }
        // Close: later opens then replay nothing into the text index.
        self.inner.commit_text_if_pending();
    }
}

fn to_document(
    id: &str,
    text: &str,
    metadata_json: &str,
    vector: &[f32],
    chunks: Vec<DocChunk>,
) -> Result<Document> {
    let metadata: Metadata = serde_json::from_str(metadata_json)
        .map_err(|e| StorageError::Codec(format!("metadata of {id:?}: {e}")))?;
    Ok(Document {
        chunks,
        id: id.to_string(),
        text: text.to_string(),
        metadata,
        vector: vector.to_vec(),
    })
}

fn mem_document(id: &str, doc: &MemDoc) -> Result<Document> {
    to_document(
        id,
        &doc.text,
        &doc.metadata_json,
        &doc.vector,
        doc.chunks.clone(),
    )
}

/// The document in `row` of a segment, with its chunks.
fn segment_document(segment: &Segment, row: usize) -> Result<Document> {
    let d = segment.doc(row)?;
    let chunks = segment
        .chunks(row)
        .into_iter()
        .map(|c| DocChunk {
            start: c.start,
            end: c.end,
            vector: c.vector.to_vec(),
        })
        .collect();
    to_document(d.id, d.text, d.metadata_json, d.vector, chunks)
}

/// The visible version of `id` in `st` (active memtable, frozen one, then segments).
fn visible_doc(st: &State, id: &str) -> Result<Option<Document>> {
    find_visible(st, id, |d| mem_document(id, d), segment_document)
}

/// Finds the visible version of `id` (active memtable, frozen one, then segments) and
/// reads it with `mem` or `seg`; `None` when it is absent or deleted.
fn find_visible<T>(
    st: &State,
    id: &str,
    mem: impl FnOnce(&MemDoc) -> Result<T>,
    seg: impl FnOnce(&Segment, usize) -> Result<T>,
) -> Result<Option<T>> {
    let in_memtable = st
        .active
        .get(id)
        .or_else(|| st.frozen.as_ref().and_then(|f| f.get(id)));
    if let Some(e) = in_memtable {
        return e.doc.as_ref().map(mem).transpose();
    }
    for s in st.segments.iter() {
        if let Some(row) = s.find_live(id) {
            return seg(s.segment(), row).map(Some);
        }
    }
    Ok(None)
}

/// A document as a query answers it: without its chunks' vectors, which no hit
/// returns, but with their byte ranges.
type HitDoc = (Document, Vec<std::ops::Range<usize>>);

/// The visible version of `id` in `st` for a query's answer (see [`HitDoc`]).
fn visible_hit(st: &State, id: &str) -> Result<Option<HitDoc>> {
    let mem = |d: &MemDoc| -> Result<HitDoc> {
        let spans = d.chunks.iter().map(|c| c.start..c.end).collect();
        let doc = to_document(id, &d.text, &d.metadata_json, &d.vector, Vec::new())?;
        Ok((doc, spans))
    };
    find_visible(st, id, mem, segment_hit)
}

/// Row `row` of a segment as a query answers it (see [`HitDoc`]).
fn segment_hit(segment: &Segment, row: usize) -> Result<HitDoc> {
    let spans = segment.chunks(row).iter().map(|c| c.start..c.end).collect();
    let d = segment.doc(row)?;
    let doc = to_document(d.id, d.text, d.metadata_json, d.vector, Vec::new())?;
    Ok((doc, spans))
}

/// Parses stored metadata for filter evaluation; unreadable metadata matches nothing.
fn parse_metadata(json: &str) -> Option<Metadata> {
    serde_json::from_str(json).ok()
}

impl Collection {
    /// Opens the collection in `dir` (its name is the directory's name) and recovers
    /// it: maps the manifest's segments with their tombstones, deletes leftovers of
    /// interrupted writes, and replays the WAL past the checkpoint.
    pub fn open(dir: &Path, opts: CollectionOptions) -> Result<Collection> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        validate_name(&name)?;
        let config = config_file::load(dir)?;
        fsutil::remove_temp_files(dir)?;
        let manifest = Manifest::load(dir)?.unwrap_or_default();

        let seg_dir = dir.join(SEGMENTS_DIR);
        fsutil::create_dir_durable(&seg_dir)?;
        let removed = segment::remove_stale(&seg_dir, &manifest.segments)?;
        if !removed.is_empty() {
            tracing::info!(collection = %name, ?removed, "removed unfinished or unreferenced segments");
        }
        let mut state = State::default();
        let mut mapped_rows = 0;
        for &id in &manifest.segments {
            let path = segment_path(&seg_dir, id);
            fsutil::remove_temp_files(&path)?;
            let seg = LiveSegment::open(&path, &config)?;
            if seg.segment().dim() != config.dim {
                return Err(StorageError::Corruption {
                    file: path,
                    offset: 0,
                    reason: format!(
                        "segment dim {} differs from collection dim {}",
                        seg.segment().dim(),
                        config.dim
                    ),
                }
                .into());
            }
            mapped_rows += seg.segment().len();
            Arc::make_mut(&mut state.segments).push(Arc::new(seg));
        }
        state.active = Memtable::with_graph(VecIndex::new(&config)?);

        let wal_opts = WalOptions {
            sync: opts.sync,
            max_file_bytes: opts.wal_file_bytes,
            repair: opts.repair,
        };
        let wal_dir = dir.join(WAL_DIR);
        let (wal, records) = Wal::open(&wal_dir, wal_opts, manifest.checkpoint_lsn)?;
        let (text, text_start) = text::open(
            dir,
            config.analyzer,
            manifest.checkpoint_lsn,
            wal.last_lsn(),
        )?;
        let text = text.with_bm25(config.bm25);
        let mut replayed_rows = 0;
        let replayed_records = records.len();
        let mut graph_rows = Vec::new();
        for rec in records {
            if rec.lsn <= manifest.checkpoint_lsn {
                continue;
            }
            let into_text = match text_start {
                text::TextStart::Replay(after) => rec.lsn > after,
                text::TextStart::Rebuild => false,
            };
            let (n, applied) =
                write::replay(&mut state, &rec, &wal_dir, into_text.then_some(&text))?;
            replayed_rows += n;
            graph_rows.extend(applied.rows);
        }
        if replayed_records > 0 {
            tracing::info!(collection = %name, replayed_records, replayed_rows, "replayed WAL");
        }
        // Versions a later record overwrote need no graph node.
        graph_rows.retain(|(seq, _)| state.active.current(*seq).is_some());
        if let Some(g) = state.active.graph() {
            write::insert_rows(g, &graph_rows);
        }
        if text_start == text::TextStart::Rebuild {
            let n = text::rebuild(&text, &state)?;
            tracing::info!(collection = %name, documents = n, "indexed text");
        }
        let wal_last = wal.last_lsn();
        if text.last_lsn().map_err(index_err)? != Some(wal_last) {
            wal.sync()?;
            text.commit(wal_last).map_err(index_err)?;
        }

        let inner = Arc::new(Inner {
            name,
            dir: dir.to_path_buf(),
            chunking: RwLock::new(config.chunking),
            config,
            opts,
            wal,
            gate: RwLock::new(()),
            state: RwLock::new(state),
            checkpoint: AtomicU64::new(manifest.checkpoint_lsn),
            maint: Mutex::new(manifest),
            compacting: Mutex::new(()),
            room: Mutex::new(()),
            room_freed: Condvar::new(),
            seal_failing: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            counters: workers::Counters::default(),
            #[cfg(feature = "fault-injection")]
            faults: faults::Faults::default(),
            replayed_records,
            replayed_rows,
            mapped_rows,
            signals: Mutex::new(None),
            text,
            text_pending: AtomicU64::new(0),
            text_committed: AtomicU64::new(wal_last),
            text_commit: Mutex::new(()),
        });
        let (workers, signals) = workers::Workers::start(&inner)?;
        *inner.signals.lock() = Some(signals);
        // A replayed memtable may already be full: hand it to the sealer.
        inner.freeze_if_full();
        Ok(Collection {
            inner,
            workers: Some(workers),
        })
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The collection's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Snapshot hook: runs `f` with the collection pinned at its current LSN. Seals,
    /// compactions and text commits wait until `f` returns (so the manifest, tombstone
    /// files, text index and WAL file list stay as pinned); writers wait only while the
    /// LSN is read and the text index commits the few writes since the commit just
    /// before. `f` should only link files.
    pub(crate) fn with_pinned<T>(&self, f: impl FnOnce(&Pinned) -> Result<T>) -> Result<T> {
        let manifest = self.inner.maint.lock();
        // Commits most pending text now, while writers continue.
        if let Err(e) = self.inner.commit_text() {
            tracing::warn!(collection = %self.inner.name, error = %e, "text commit before snapshot failed");
        }
        let _text = self.inner.text_commit.lock();
        let (lsn, wal_files) = {
            // No writer is between append and apply: every record up to the LSN is in.
            let _gate = self.inner.gate.write();
            let lsn = self.inner.wal.last_lsn();
            // Commit exactly at the LSN, so a restored copy replays nothing into the text
            // index (a replayed record it already holds would leave a deleted duplicate
            // that shifts BM25 statistics). Only the writes since the commit just above
            // are pending. On failure the copy catches up by replay.
            if let Err(e) = self.inner.commit_text_at(lsn) {
                tracing::warn!(collection = %self.inner.name, error = %e, "text commit for snapshot failed");
            }
            (lsn, self.inner.wal.file_paths())
        };
        f(&Pinned {
            lsn,
            manifest: manifest.clone(),
            wal_files,
        })
    }

    /// The collection's fixed settings.
    pub fn config(&self) -> CollectionConfig {
        CollectionConfig {
            chunking: *self.inner.chunking.read(),
            ..self.inner.config.clone()
        }
    }

    /// Changes how texts are cut into chunks on ingest. Only an empty collection may
    /// change it: the documents it holds were embedded under the old setting, and
    /// mixing the two would rank them unevenly. The new setting is stored before it
    /// takes effect. `chunking` must suit the embedding model (the caller checks its
    /// input limit; see `ChunkingConfig::validate`).
    pub fn set_chunking(&self, chunking: Option<ChunkingConfig>) -> Result<()> {
        self.inner.check_writable()?;
        let config = CollectionConfig {
            chunking,
            ..self.inner.config.clone()
        };
        config.validate()?;
        // No write is between its WAL append and its memtable apply meanwhile.
        let _gate = self.inner.gate.write();
        let held = self.count();
        if held > 0 {
            return Err(EngineError::NotEmpty(format!(
                "collection {:?} holds {held} documents embedded with its current \
                 chunking; chunking can only change while it is empty. To re-embed, \
                 create a new collection with the chunking you want and import the \
                 texts again (for example with `quiver import`), then drop this one",
                self.inner.name
            )));
        }
        let mut current = self.inner.chunking.write();
        config_file::store(&self.inner.dir, &config)?;
        *current = chunking;
        Ok(())
    }

    /// LSN of the last write appended to the WAL.
    pub fn last_lsn(&self) -> u64 {
        self.inner.wal.last_lsn()
    }

    /// True once a failed sync has turned the collection read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.wal.is_poisoned()
    }

    /// Test hook: the WAL's next sync fails as if the device reported an error.
    #[doc(hidden)]
    pub fn inject_wal_sync_failure(&self) {
        self.inner.wal.inject_sync_failure();
    }

    /// Forces every acknowledged write to stable storage (useful with
    /// `SyncPolicy::Never` / `IntervalMs` before a planned shutdown).
    /// Also commits the text index, making every text update visible to searches.
    pub fn sync(&self) -> Result<()> {
        self.inner.wal.sync()?;
        self.inner.commit_text()
    }

    /// Commits the text index now: text searches see every write made so far.
    pub fn commit_text(&self) -> Result<()> {
        self.inner.commit_text()
    }

    /// The LSN recorded by the text index's last commit (`None` before the first).
    pub fn text_index_lsn(&self) -> Result<Option<u64>> {
        self.inner.text.last_lsn().map_err(index_err)
    }

    /// Documents visible to text searches (committed, not deleted).
    pub fn text_index_docs(&self) -> u64 {
        self.inner.text.num_docs()
    }

    /// The visible version of `id`, if any.
    pub fn get(&self, id: &str) -> Result<Option<Document>> {
        visible_doc(&self.inner.state.read(), id)
    }

    /// Number of visible documents.
    pub fn count(&self) -> usize {
        let st = self.inner.state.read();
        let frozen = st.frozen.as_ref().map_or(0, |f| {
            f.iter()
                .filter(|(id, e)| e.doc.is_some() && !st.active.contains(id))
                .count()
        });
        st.active.live() + frozen + st.segments.iter().map(|s| s.live_count()).sum::<usize>()
    }

    /// Calls `f` for every visible document (memtables first, then segments).
    /// Holds the read lock throughout, so keep `f` short.
    pub fn for_each_live(&self, mut f: impl FnMut(LiveDoc<'_>)) {
        let st = self.inner.state.read();
        for (id, e) in st.active.iter() {
            if let Some(d) = &e.doc {
                f(LiveDoc {
                    id,
                    lsn: e.lsn,
                    vector: &d.vector,
                });
            }
        }
        if let Some(frozen) = &st.frozen {
            for (id, e) in frozen.iter() {
                if let (Some(d), false) = (&e.doc, st.active.contains(id)) {
                    f(LiveDoc {
                        id,
                        lsn: e.lsn,
                        vector: &d.vector,
                    });
                }
            }
        }
        for seg in st.segments.iter() {
            let s = seg.segment();
            for row in seg.live_rows() {
                f(LiveDoc {
                    id: s.id_of(row),
                    lsn: s.lsn_of(row),
                    vector: s.vector(row),
                });
            }
        }
    }

    /// Exact nearest neighbours of `query` by brute force over every visible
    /// document: the ground truth approximate indexes are measured against.
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        self.search_exact_filtered(query, k, None)
    }

    /// [`Collection::search_exact`] restricted to documents whose metadata matches
    /// `filter`: the ground truth for filtered queries.
    pub fn search_exact_filtered(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>> {
        validate_vector(query, self.inner.config.dim)?;
        let distance = self.inner.config.distance;
        let mut q = query.to_vec();
        if distance.normalizes() {
            normalize(&mut q);
        }
        let keep =
            |json: &str| filter.is_none_or(|f| parse_metadata(json).is_some_and(|m| f.matches(&m)));
        // A chunked document scores as its best chunk, as in queries.
        let mem_score = |d: &MemDoc| {
            (0..d.nodes())
                .map(|c| distance.score(&q, d.node_vector(c)))
                .fold(f32::NEG_INFINITY, f32::max)
        };
        let st = self.inner.state.read();
        let mut top = TopK::new(k);
        for (id, e) in st.active.iter() {
            if let Some(d) = e.doc.as_ref().filter(|d| keep(&d.metadata_json)) {
                top.push(id, mem_score(d));
            }
        }
        if let Some(frozen) = &st.frozen {
            for (id, e) in frozen.iter() {
                if let (Some(d), false) = (&e.doc, st.active.contains(id)) {
                    if keep(&d.metadata_json) {
                        top.push(id, mem_score(d));
                    }
                }
            }
        }
        for seg in st.segments.iter() {
            let s = seg.segment();
            for row in seg.live_rows() {
                if filter.is_some() && !keep(s.doc(row)?.metadata_json) {
                    continue;
                }
                let score = s
                    .row_nodes(row)
                    .map(|n| distance.score(&q, s.node_vector(n)))
                    .fold(f32::NEG_INFINITY, f32::max);
                top.push(s.id_of(row), score);
            }
        }
        Ok(top.into_hits())
    }

    /// The live segments, oldest id first. Each carries its rows, vectors, LSNs and
    /// tombstones; per-segment indexes are built from these.
    pub fn segments(&self) -> Vec<Arc<LiveSegment>> {
        let mut segs = Vec::clone(&self.inner.state.read().segments);
        segs.sort_by_key(|s| s.id());
        segs
    }

    /// Current sizes and what the last open recovered.
    pub fn stats(&self) -> CollectionStats {
        let checkpoint_lsn = self.inner.checkpoint.load(Ordering::Acquire);
        let st = self.inner.state.read();
        CollectionStats {
            segments: st.segments.len(),
            segment_rows: st.segments.iter().map(|s| s.segment().len()).sum(),
            segment_live_rows: st.segments.iter().map(|s| s.live_count()).sum(),
            memtable_entries: st.active.len() + st.frozen.as_ref().map_or(0, |f| f.len()),
            checkpoint_lsn,
            last_lsn: self.inner.wal.last_lsn(),
            replayed_records: self.inner.replayed_records,
            replayed_rows: self.inner.replayed_rows,
            mapped_rows: self.inner.mapped_rows,
            maintenance: self
                .inner
                .counters
                .snapshot(usize::from(st.frozen.is_some())),
        }
    }
}

impl Inner {
    fn read_only_error(&self) -> EngineError {
        EngineError::ReadOnly(format!(
            "collection {:?}: a WAL sync failed; reopen after fixing the disk",
            self.name
        ))
    }

    /// Fails with `ReadOnly` once the WAL is poisoned.
    fn check_writable(&self) -> Result<()> {
        if self.wal.is_poisoned() {
            return Err(self.read_only_error());
        }
        Ok(())
    }
}
