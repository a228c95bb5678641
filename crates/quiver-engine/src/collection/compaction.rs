//! Compaction: merging small segments (fewer than `compact_small_rows` live rows) and
//! sparse ones (at least half deleted) into one, dropping deleted rows.
//!
//! The merged graph grows the largest input's build graph when that input kept one
//! (see `LiveSegment`'s `BuildGraph`): only the other inputs' vectors are inserted.
//! Without one (after a restart) it is built from nothing.
//!
//! A background compaction starts once writes have been quiet for `compact_quiet` (or
//! once `compact_max_waiting` small segments wait): merging re-inserts the smaller
//! inputs' vectors, work that would otherwise take cores from a bulk load still
//! indexing its own writes.
//!
//! Only the choice of segments and the final swap hold the maintenance lock; the long
//! part (reading the rows, writing the new segment, building its graph) holds no lock
//! that a seal, snapshot, query or write needs, and builds the graph on a pool of at
//! most half the cores, so seals and writes keep going meanwhile. Rows deleted or
//! superseded during the merge are carried over to the new segment at the swap. A
//! collection being closed cancels the build between batches of inserts and removes
//! the unfinished segment: its inputs were never touched. The crash ordering is the
//! seal's (see `seal`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_storage::segment::{write_segment, Segment, SegmentChunk, SegmentRow};
use quiver_storage::StorageError;

use super::{Collection, Inner, SEGMENTS_DIR};
use crate::live_segment::{BuildGraph, LiveSegment};
use crate::segment_graph::{insert_until_cancelled, SegmentGraph};
use crate::Result;

/// Segments chosen for a merge, each with the live rows it had when chosen.
type Picked = Vec<(Arc<LiveSegment>, Vec<usize>)>;

impl Collection {
    /// Merges small and sparse segments into one now, on the calling thread. Reads,
    /// writes and seals continue meanwhile. Returns whether anything was merged.
    pub fn compact(&self) -> Result<bool> {
        self.inner.compact()
    }
}

/// Takes the build graphs the picked segments kept (they are merged away either way)
/// and returns the one over the most live rows, with its segment's place in `picked`.
fn take_largest_build_graph(picked: &Picked) -> Option<(usize, BuildGraph)> {
    picked
        .iter()
        .enumerate()
        .filter_map(|(i, (seg, rows))| seg.take_build_graph().map(|g| (rows.len(), i, g)))
        .max_by_key(|(live, _, _)| *live)
        .map(|(_, i, g)| (i, g))
}

/// Threads a compaction's graph build may use: half the cores, at least one.
fn build_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl Inner {
    /// How much longer a background compaction should wait for writes to go quiet;
    /// `None` to start now (quiet long enough, or too many small segments waiting).
    pub(super) fn compaction_wait(&self) -> Option<Duration> {
        let since = self.counters.since_last_write();
        let quiet = self.opts.compact_quiet;
        if since >= quiet {
            return None;
        }
        let small = self.opts.compact_small_rows;
        let waiting = self
            .state
            .read()
            .segments
            .iter()
            .filter(|s| s.live_count() < small)
            .count();
        (waiting < self.opts.compact_max_waiting).then(|| quiet - since)
    }

    pub(super) fn compact(&self) -> Result<bool> {
        let _one_at_a_time = self.compacting.lock();
        let Some((picked, id)) = self.pick()? else {
            return Ok(false);
        };
        let start = Instant::now();
        self.counters.compacting.store(true, Ordering::Release);
        let result = self.merge(&picked, id);
        self.counters.compacting.store(false, Ordering::Release);
        let merged = result?;
        if merged {
            self.counters.compaction_done(start.elapsed());
        }
        Ok(merged)
    }

    /// Chooses the segments to merge and reserves the new segment's id.
    fn pick(&self) -> Result<Option<(Picked, u64)>> {
        let mut manifest = self.maint.lock();
        self.check_writable()?;
        let small = self.opts.compact_small_rows;
        let st = self.state.read();
        let sparse = |s: &LiveSegment| s.deleted_count() * 2 >= s.segment().len();
        let cands: Vec<&Arc<LiveSegment>> = st
            .segments
            .iter()
            .filter(|s| s.live_count() < small || sparse(s))
            .collect();
        let worth = cands.len() >= 2 || cands.iter().any(|s| s.deleted_count() > 0 && sparse(s));
        if !worth {
            return Ok(None);
        }
        let picked = cands
            .into_iter()
            .map(|s| (Arc::clone(s), s.live_rows().collect()))
            .collect();
        let id = manifest.next_segment_id;
        manifest.next_segment_id = id + 1;
        Ok(Some((picked, id)))
    }

    /// Writes the picked segments' live rows as segment `id`, then swaps it in.
    /// Returns false when the collection began closing first.
    fn merge(&self, picked: &Picked, id: u64) -> Result<bool> {
        let mut docs = Vec::new();
        let mut chunks: Vec<Vec<SegmentChunk<'_>>> = Vec::new();
        for (seg, rows) in picked {
            for &row in rows {
                docs.push(seg.segment().doc(row)?);
                chunks.push(
                    seg.segment()
                        .chunks(row)
                        .into_iter()
                        .map(|c| SegmentChunk {
                            start: c.start,
                            end: c.end,
                            vector: c.vector,
                        })
                        .collect(),
                );
            }
        }
        let new_seg = if docs.is_empty() {
            None
        } else {
            let mut rows: Vec<SegmentRow<'_>> = docs
                .iter()
                .zip(&chunks)
                .map(|(d, chunks)| SegmentRow {
                    id: d.id,
                    text: d.text,
                    metadata_json: d.metadata_json,
                    lsn: d.lsn,
                    vector: d.vector,
                    chunks,
                })
                .collect();
            let path = write_segment(&self.dir.join(SEGMENTS_DIR), id, self.config.dim, &mut rows)?;
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(build_threads())
                .thread_name(|i| format!("compact-build-{i}"))
                .build()
                .map_err(|e| StorageError::io(&self.dir, std::io::Error::other(e)))?;
            let base = take_largest_build_graph(picked);
            let mut kept = None;
            let built = self.open_written(&path, |segment| {
                pool.install(|| match base {
                    Some((i, base)) => {
                        Ok(self
                            .grow_graph(segment, picked, i, base)?
                            .map(|(graph, keep)| {
                                kept = keep;
                                graph
                            }))
                    }
                    None => SegmentGraph::build(segment, &self.config, &self.closing),
                })
            })?;
            if let (Some(seg), Some(graph)) = (&built, kept) {
                seg.keep_build_graph(graph);
            }
            match built {
                Some(seg) => Some(Arc::new(seg)),
                None => {
                    tracing::info!(collection = %self.name, "compaction cancelled by close");
                    return Ok(false);
                }
            }
        };
        self.swap_in(picked, new_seg)?;
        Ok(true)
    }

    /// The merged segment's graph from input `base`'s build graph: its live rows' nodes
    /// keep their places, the other inputs' live rows' nodes are inserted, and its
    /// deleted rows are left out at export. Also returns the grown build graph when the
    /// merged segment is small enough to be merged again. `None` once the collection
    /// begins closing.
    fn grow_graph(
        &self,
        segment: &Segment,
        picked: &Picked,
        base: usize,
        mut graph: BuildGraph,
    ) -> Result<Option<(SegmentGraph, Option<BuildGraph>)>> {
        let mut node_of_key: Vec<Option<usize>> = Vec::new();
        let mut set = |key: u64, node: Option<usize>| {
            let key = usize::try_from(key).unwrap_or(usize::MAX);
            if key >= node_of_key.len() {
                node_of_key.resize(key + 1, None);
            }
            node_of_key[key] = node;
        };
        // The nodes of input row `r` and of its copy in the merged segment, in order.
        let pairs = |seg: &Segment, r: usize| {
            let to = segment.find(seg.id_of(r)).map(|row| segment.row_nodes(row));
            seg.row_nodes(r)
                .enumerate()
                .map(move |(c, from)| (from, to.clone().map(|t| t.start + c)))
        };
        let (base_seg, base_rows) = &picked[base];
        for &r in base_rows {
            for (from, to) in pairs(base_seg.segment(), r) {
                match graph.key_of_node.get(from) {
                    Some(&key) if key < graph.next_key => set(key, to),
                    // A node missing from the graph: the export finds it missing and
                    // rebuilds.
                    _ => {}
                }
            }
        }
        let mut inserts: Vec<(u64, &[f32])> = Vec::new();
        for (seg, rows) in picked
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != base)
            .map(|(_, p)| p)
        {
            for &r in rows {
                for (from, to) in pairs(seg.segment(), r) {
                    let key = graph.next_key;
                    graph.next_key += 1;
                    set(key, to);
                    inserts.push((key, seg.segment().node_vector(from)));
                }
            }
        }
        if !insert_until_cancelled(&graph.graph, &inserts, &self.closing)? {
            return Ok(None);
        }
        let flat = SegmentGraph::from_graph(segment, &self.config, &graph.graph, &node_of_key)?;
        if segment.len() >= self.opts.compact_small_rows {
            return Ok(Some((flat, None)));
        }
        let mut key_of_node = vec![u64::MAX; segment.nodes()];
        for (key, node) in node_of_key.iter().enumerate() {
            if let Some(node) = *node {
                key_of_node[node] = key as u64;
            }
        }
        graph.key_of_node = key_of_node;
        Ok(Some((flat, Some(graph))))
    }

    /// Replaces the picked segments with `new_seg`, in memory and in the manifest, then
    /// removes their directories.
    fn swap_in(&self, picked: &Picked, new_seg: Option<Arc<LiveSegment>>) -> Result<()> {
        let mut manifest = self.maint.lock();
        let old_ids: Vec<u64> = picked.iter().map(|(s, _)| s.id()).collect();
        {
            let mut st = self.state.write();
            if let Some(new) = &new_seg {
                // Rows deleted or superseded while the merge ran: carry the bits over.
                let by_id: HashMap<&str, usize> = (0..new.segment().len())
                    .map(|r| (new.segment().id_of(r), r))
                    .collect();
                for (seg, rows) in picked {
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
        for (seg, _) in picked {
            // Open mappings stay valid; a failure here only leaves garbage that the
            // next open removes.
            if let Err(e) = std::fs::remove_dir_all(seg.segment().dir()) {
                tracing::warn!(collection = %self.name, segment = seg.id(), error = %e, "could not remove merged segment");
            }
        }
        tracing::debug!(collection = %self.name, merged = ?old_ids, "compacted");
        Ok(())
    }
}
