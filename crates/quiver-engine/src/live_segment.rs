//! A sealed segment as the engine holds it: the immutable mapped [`Segment`] plus its
//! in-memory tombstone bitmap, its flat HNSW graph (see `segment_graph`) and its
//! metadata index (see `segment_fields`). Bits are atomics so
//! readers may test them while a writer marks rows; a dirty flag says the bitmap differs
//! from its file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use quiver_core::CollectionConfig;
use quiver_index::{RowSet, SealedFields};
use quiver_storage::segment::{Segment, Tombstones};

use crate::dense::VecIndex;
use crate::segment_fields;
use crate::segment_graph::SegmentGraph;
use crate::Result;

/// The built graph a segment's flat graph was exported from, kept in memory while
/// the segment is small enough to be merged again: compaction then inserts only the
/// other inputs' vectors into it instead of building the merged graph from nothing.
#[derive(Debug)]
pub(crate) struct BuildGraph {
    pub(crate) graph: Arc<VecIndex>,
    /// The graph key of each segment node (`Segment::nodes`).
    pub(crate) key_of_node: Vec<u64>,
    /// A key no node of the graph has yet, and none above it.
    pub(crate) next_key: u64,
}

/// A live segment: rows, which of them are deleted or superseded, and its graph.
#[derive(Debug)]
pub struct LiveSegment {
    segment: Segment,
    graph: SegmentGraph,
    fields: SealedFields,
    build_graph: Mutex<Option<BuildGraph>>,
    bits: Vec<AtomicU64>,
    deleted: AtomicU64,
    dirty: AtomicBool,
}

impl LiveSegment {
    /// Opens the segment in `dir`, its persisted tombstones and its saved graph (rebuilt
    /// only when missing or damaged).
    pub(crate) fn open(dir: &Path, config: &CollectionConfig) -> Result<LiveSegment> {
        let segment = Segment::open(dir)?;
        let graph = SegmentGraph::open(&segment, config)?;
        Self::new(segment, graph)
    }

    /// A segment with the graph its writer just made, its persisted tombstones and its
    /// metadata index (built and saved now if the segment has none yet).
    pub(crate) fn new(segment: Segment, graph: SegmentGraph) -> Result<LiveSegment> {
        let tombstones = Tombstones::load(segment.dir(), segment.len() as u64)?;
        let deleted = tombstones.deleted();
        let fields = segment_fields::open_or_build(&segment)?;
        Ok(LiveSegment {
            segment,
            graph,
            fields,
            build_graph: Mutex::new(None),
            bits: tombstones
                .words()
                .iter()
                .map(|&w| AtomicU64::new(w))
                .collect(),
            deleted: AtomicU64::new(deleted),
            dirty: AtomicBool::new(false),
        })
    }

    /// The underlying immutable segment.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// The segment's HNSW graph, mapped from its file.
    pub(crate) fn graph(&self) -> &SegmentGraph {
        &self.graph
    }

    /// The segment's metadata index.
    pub(crate) fn fields(&self) -> &SealedFields {
        &self.fields
    }

    /// The rows deleted or superseded, as of now.
    pub(crate) fn deleted_rows(&self) -> RowSet {
        RowSet::from_words(
            self.bits
                .iter()
                .map(|w| w.load(Ordering::Acquire))
                .collect(),
        )
    }

    /// Keeps the graph this segment's flat graph came from, for a later merge.
    pub(crate) fn keep_build_graph(&self, graph: BuildGraph) {
        *self.build_graph.lock() = Some(graph);
    }

    /// Takes the kept build graph, if any (a merge is about to grow it).
    pub(crate) fn take_build_graph(&self) -> Option<BuildGraph> {
        self.build_graph.lock().take()
    }

    /// Segment id.
    pub fn id(&self) -> u64 {
        self.segment.id()
    }

    /// Whether `row` is deleted or superseded by a newer version of its id.
    pub fn is_deleted(&self, row: usize) -> bool {
        match self.bits.get(row / 64) {
            Some(w) => w.load(Ordering::Acquire) & (1 << (row % 64)) != 0,
            None => true,
        }
    }

    /// Rows not deleted.
    pub fn live_count(&self) -> usize {
        self.segment.len() - self.deleted.load(Ordering::Acquire) as usize
    }

    /// Rows deleted or superseded.
    pub fn deleted_count(&self) -> usize {
        self.deleted.load(Ordering::Acquire) as usize
    }

    /// Indices of the rows not deleted, ascending.
    pub fn live_rows(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.segment.len()).filter(|&r| !self.is_deleted(r))
    }

    /// The live row holding `id`, if any.
    pub fn find_live(&self, id: &str) -> Option<usize> {
        self.segment.find(id).filter(|&r| !self.is_deleted(r))
    }

    /// Marks `row` deleted; returns true if it was live.
    pub(crate) fn mark_deleted(&self, row: usize) -> bool {
        let Some(word) = self.bits.get(row / 64) else {
            return false;
        };
        let bit = 1u64 << (row % 64);
        let was_live = word.fetch_or(bit, Ordering::AcqRel) & bit == 0;
        if was_live {
            self.deleted.fetch_add(1, Ordering::AcqRel);
            self.dirty.store(true, Ordering::Release);
        }
        was_live
    }

    /// Clears and returns the dirty flag.
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn set_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// A copy of the bitmap, for persisting.
    pub(crate) fn tombstones(&self) -> Result<Tombstones> {
        let words = self
            .bits
            .iter()
            .map(|w| w.load(Ordering::Acquire))
            .collect();
        Ok(Tombstones::from_words(self.segment.len() as u64, words)?)
    }
}
