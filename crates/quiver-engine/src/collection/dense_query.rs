//! The dense half of a query, and the compiled filter it shares with BM25.
//!
//! A query splits its work by what it needs the state lock for. The memtables change
//! under writers, so their filter sets are compiled and their graphs searched while the
//! query holds the state's read lock (their size is bounded by the seal threshold). The
//! sealed segments come from the [`SegmentList`](super::SegmentList) snapshot taken
//! under that same lock, and are filtered and searched after it is released: the bulk
//! of a query never holds a lock that a writer, seal or compaction waits for.
//!
//! Graphs hold nodes: one per chunk of a chunked document, else one per document. A
//! search asks each graph for more nodes than `depth` when its documents average more
//! than one (see [`node_depth`]) and [`merge`] groups them per document: a document
//! scores as its best chunk, and keeps the list of its chunks that were found.
//!
//! Results stay lean until the end: a segment hit is `(score, segment, row, chunk)` and
//! a memtable hit a shared id and chunk, so no id string is built per hit. The lists of
//! all segments and memtables are merged by score (ties: id ascending, borrowed from
//! the mapped segment or the memtable's shared id), and only the final `depth`
//! documents are turned into owned ids. With `exact`, every allowed row is scored by brute force
//! instead of walking the graphs; the scores are the same [`Distance::score`] the
//! graph searches report.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_core::{Condition, Distance, Filter};
use quiver_index::{compile_filter, RowSet, VectorSource};

use super::{parse_metadata, text_key, State};
use crate::dense::{SearchArgs, SegmentVectors, VecIndex};
use crate::live_segment::LiveSegment;
use crate::memtable::Memtable;
use crate::query::{ChunkScore, SUM_CHUNKS};
use crate::Result;
use quiver_storage::segment::Segment;

/// Evaluates one condition on stored metadata: the metadata index's slow path.
fn verify(metadata_json: Option<&str>, c: &Condition) -> bool {
    metadata_json
        .and_then(parse_metadata)
        .is_some_and(|m| c.matches(&m))
}

/// A filter compiled against the memtables (built under the state lock). The sets may
/// hold overwritten versions; searches check each row is the newest of its id.
pub(super) struct MemAllowed {
    active: RowSet,
    frozen: RowSet,
}

/// A filter compiled against a segment snapshot: one row set per segment, parallel to
/// the snapshot's list, deleted rows left out.
pub(super) struct SegAllowed {
    sets: Vec<RowSet>,
}

fn compile_memtable(m: &Memtable, filter: &Filter) -> RowSet {
    let check =
        |seq: u64, c: &Condition| verify(m.current(seq).map(|(_, d)| d.metadata_json.as_str()), c);
    compile_filter(filter, m.fields(), m.writes() as u64, &check)
}

/// Compiles `filter` over the memtables' metadata indexes (memtable sequence numbers).
pub(super) fn compile_memtables(st: &State, filter: &Filter) -> MemAllowed {
    MemAllowed {
        active: compile_memtable(&st.active, filter),
        frozen: st
            .frozen
            .as_ref()
            .map_or_else(RowSet::new, |f| compile_memtable(f, filter)),
    }
}

/// Adds the text keys of the memtable documents `allowed` holds.
pub(super) fn memtable_text_keys(st: &State, allowed: &MemAllowed, keys: &mut HashSet<u64>) {
    let mut add = |m: &Memtable, set: &RowSet, shadowed: &dyn Fn(&str) -> bool| {
        for seq in set.iter() {
            if let Some((id, _)) = m.current(seq) {
                if !shadowed(id) {
                    keys.insert(text_key(id));
                }
            }
        }
    };
    add(&st.active, &allowed.active, &|_| false);
    if let Some(f) = &st.frozen {
        add(f, &allowed.frozen, &|id| st.active.contains(id));
    }
}

/// Compiles `filter` over the segments' metadata indexes (no lock needed: segments are
/// immutable, tombstones are atomics).
pub(super) fn compile_segments(segments: &[Arc<LiveSegment>], filter: &Filter) -> SegAllowed {
    let sets = segments
        .iter()
        .map(|seg| {
            let s = seg.segment();
            let check = |row: u64, c: &Condition| {
                let doc = usize::try_from(row).ok().and_then(|r| s.doc(r).ok());
                verify(doc.map(|d| d.metadata_json), c)
            };
            let mut set = compile_filter(filter, seg.fields(), s.len() as u64, &check);
            if seg.deleted_count() > 0 {
                set.subtract(&seg.deleted_rows());
            }
            set
        })
        .collect();
    SegAllowed { sets }
}

/// Adds the text keys of the segment rows `allowed` holds.
pub(super) fn segment_text_keys(
    segments: &[Arc<LiveSegment>],
    allowed: &SegAllowed,
    keys: &mut HashSet<u64>,
) {
    for (seg, set) in segments.iter().zip(&allowed.sets) {
        for row in set.iter() {
            if let Ok(r) = usize::try_from(row) {
                keys.insert(text_key(seg.segment().id_of(r)));
            }
        }
    }
}

/// What one dense search asks for.
pub(super) struct DenseArgs<'a> {
    /// Query at full `dim`, normalized for cosine collections.
    pub(super) query: &'a [f32],
    pub(super) depth: usize,
    pub(super) ef: Option<usize>,
    pub(super) rescore: usize,
    /// Brute force over every allowed row instead of the graphs.
    pub(super) exact: bool,
    pub(super) distance: Distance,
}

impl DenseArgs<'_> {
    /// Arguments for one graph with `live` rows, `set` being the filter's rows there.
    fn search_args<'s>(&'s self, set: Option<&'s RowSet>, live: usize) -> SearchArgs<'s> {
        SearchArgs {
            query: self.query,
            k: self.depth,
            ef: self.ef,
            rescore: self.rescore,
            allowed: set.map_or(live, RowSet::len),
            live,
            rows: set,
        }
    }
}

/// Best first: higher score, then smaller id.
fn best_first(a: (f32, &str), b: (f32, &str)) -> Ordering {
    b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

/// Keeps the best `k` of `v` by `cmp`, sorted best first.
fn keep_best<T>(v: &mut Vec<T>, k: usize, mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if k == 0 {
        v.clear();
        return;
    }
    if v.len() > k {
        v.select_nth_unstable_by(k - 1, &mut cmp);
        v.truncate(k);
    }
    v.sort_unstable_by(cmp);
}

/// A memtable hit: its id outlives the state lock without a copy; score; chunk.
pub(super) type MemHit = (Arc<str>, f32, u32);

/// Most nodes a graph search returns per document wanted.
const MAX_NODES_PER_DOC: usize = 4;

/// Nodes to ask a graph of `live` documents and `live_nodes` nodes for, so that its
/// best `depth` documents are likely among them: `depth` times the chunks per
/// document, at most [`MAX_NODES_PER_DOC`] times.
pub(super) fn node_depth(depth: usize, live: usize, live_nodes: usize) -> usize {
    let per_doc = live_nodes.div_ceil(live.max(1)).clamp(1, MAX_NODES_PER_DOC);
    depth.saturating_mul(per_doc)
}

/// The best allowed nodes of one memtable, by its graph or exactly.
fn search_memtable(
    m: &Memtable,
    set: Option<&RowSet>,
    shadowed: &(dyn Fn(&str) -> bool + Sync),
    a: &DenseArgs<'_>,
    index_time: &mut Duration,
) -> Result<Vec<MemHit>> {
    let filter = |seq: u64| {
        set.is_none_or(|s| s.contains(seq)) && m.current(seq).is_some_and(|(id, _)| !shadowed(id))
    };
    let k = node_depth(a.depth, m.live(), m.live_nodes());
    let mut rows: Vec<(u64, f32)> = if a.exact {
        let t = Instant::now();
        let rows = (0..m.writes() as u64)
            .filter(|&seq| filter(seq))
            .filter_map(|seq| m.vector(seq).map(|v| (seq, a.distance.score(a.query, v))))
            .collect();
        *index_time += t.elapsed();
        rows
    } else {
        let Some(graph) = m.graph() else {
            return Ok(Vec::new());
        };
        let mut args = a.search_args(set, m.live_nodes());
        args.k = k;
        let t = Instant::now();
        let hits = VecIndex::search(graph, &args, &filter, m, m.writes() as u64)?;
        *index_time += t.elapsed();
        hits.into_iter().map(|h| (h.row, h.score)).collect()
    };
    let id = |seq: u64| m.current(seq).map_or("", |(id, _)| id);
    keep_best(&mut rows, k, |x, y| {
        best_first((x.1, id(x.0)), (y.1, id(y.0)))
    });
    Ok(rows
        .into_iter()
        .filter_map(|(seq, score)| m.node(seq).map(|(id, _, c)| (Arc::clone(id), score, c)))
        .collect())
}

/// Searches the active and frozen memtables; the caller holds the state lock.
pub(super) fn search_memtables(
    st: &State,
    allowed: Option<&MemAllowed>,
    a: &DenseArgs<'_>,
    index_time: &mut Duration,
) -> Result<Vec<MemHit>> {
    let mut out = search_memtable(
        &st.active,
        allowed.map(|x| &x.active),
        &|_| false,
        a,
        index_time,
    )?;
    if let Some(f) = &st.frozen {
        out.extend(search_memtable(
            f,
            allowed.map(|x| &x.frozen),
            &|id| st.active.contains(id),
            a,
            index_time,
        )?);
    }
    Ok(out)
}

/// A segment hit: index into the snapshot, row in that segment, chunk of that row.
#[derive(Debug, Clone, Copy)]
pub(super) struct SegHit {
    pub(super) score: f32,
    pub(super) seg: u32,
    pub(super) row: u32,
    pub(super) chunk: u32,
}

/// The allowed rows of a segment with chunks as its nodes.
fn node_set(s: &Segment, rows: &RowSet) -> RowSet {
    let mut nodes = RowSet::new();
    for row in rows.iter() {
        nodes.add_all(s.row_nodes(row as usize).map(|n| n as u64));
    }
    nodes
}

/// The best allowed nodes of every segment of the snapshot (each segment's own list;
/// [`merge`] ranks them together). Runs without the state lock.
pub(super) fn search_segments(
    segments: &[Arc<LiveSegment>],
    allowed: Option<&SegAllowed>,
    a: &DenseArgs<'_>,
    index_time: &mut Duration,
) -> Result<Vec<SegHit>> {
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let row_set = allowed.map(|x| &x.sets[i]);
        let s = seg.segment();
        // Segment rows, nodes and indexes fit u32: segments are written from one
        // memtable or one merge, far below 2^32 rows.
        let Ok(seg_ix) = u32::try_from(i) else { break };
        let chunked = s.has_chunks();
        let nodes = if chunked {
            row_set.map(|set| node_set(s, set))
        } else {
            None
        };
        let set = if chunked { nodes.as_ref() } else { row_set };
        let live_nodes = if chunked {
            // Deleted rows' chunks are not counted; an estimate is all the plan needs.
            (seg.live_count() as u64 * s.nodes() as u64 / s.len().max(1) as u64) as usize
        } else {
            seg.live_count()
        };
        let k = node_depth(a.depth, seg.live_count(), live_nodes);
        let row_allowed =
            |row: usize| !seg.is_deleted(row) && row_set.is_none_or(|x| x.contains(row as u64));
        let filter = |node: u64| row_allowed(s.node_row(node as usize));
        let hits: Vec<(usize, f32)> = if a.exact {
            let t = Instant::now();
            let mut nodes: Vec<(usize, f32)> = seg
                .live_rows()
                .filter(|&r| row_set.is_none_or(|x| x.contains(r as u64)))
                .flat_map(|r| s.row_nodes(r))
                .map(|n| (n, a.distance.score(a.query, s.node_vector(n))))
                .collect();
            *index_time += t.elapsed();
            keep_best(&mut nodes, k, |x, y| {
                best_first(
                    (x.1, s.id_of(s.node_row(x.0))),
                    (y.1, s.id_of(s.node_row(y.0))),
                )
            });
            nodes
        } else {
            let mut args = a.search_args(set, live_nodes);
            args.k = k;
            let t = Instant::now();
            let hits = seg
                .graph()
                .search(&args, &filter, &SegmentVectors(s), s.nodes() as u64)?;
            *index_time += t.elapsed();
            hits.into_iter()
                .map(|h| (h.row as usize, h.score))
                .collect()
        };
        out.extend(hits.into_iter().filter_map(|(node, score)| {
            let row = s.node_row(node);
            Some(SegHit {
                score,
                seg: seg_ix,
                row: u32::try_from(row).ok()?,
                chunk: u32::try_from(node - s.row_nodes(row).start).ok()?,
            })
        }));
    }
    Ok(out)
}

/// Where a ranked dense hit lives, for the fetch stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At {
    /// Segment index in the query's snapshot, and row.
    Segment(usize, usize),
    /// A memtable: fetched by id under the state lock.
    Memtable,
}

/// The merged dense list, best first: owned ids (for fusion and the answer), where
/// each document lives, and its chunks the searches found (chunk number and score,
/// best first; the first is the document's score).
#[derive(Debug, Default)]
pub(super) struct DenseList {
    pub(super) ranked: Vec<(String, f32)>,
    pub(super) at: Vec<At>,
    pub(super) chunks: Vec<Vec<(u32, f32)>>,
}

/// Ranks every segment and memtable hit together, groups them per document (a
/// document scores as `chunk_score` says) and keeps the best `depth` documents; only
/// those become owned strings.
pub(super) fn merge(
    segments: &[Arc<LiveSegment>],
    seg_hits: &[SegHit],
    mem_hits: &[MemHit],
    depth: usize,
    chunk_score: ChunkScore,
) -> DenseList {
    struct Cand<'a> {
        score: f32,
        id: &'a str,
        at: At,
        chunk: u32,
    }
    let mut all: Vec<Cand<'_>> = Vec::with_capacity(seg_hits.len() + mem_hits.len());
    for h in seg_hits {
        let (seg, row) = (h.seg as usize, h.row as usize);
        all.push(Cand {
            score: h.score,
            id: segments[seg].segment().id_of(row),
            at: At::Segment(seg, row),
            chunk: h.chunk,
        });
    }
    for (id, score, chunk) in mem_hits {
        all.push(Cand {
            score: *score,
            id,
            at: At::Memtable,
            chunk: *chunk,
        });
    }
    all.sort_unstable_by(|x, y| best_first((x.score, x.id), (y.score, y.id)));
    /// One document: its score, where it lives, its chunks found, best first.
    struct Group<'a> {
        score: f32,
        id: &'a str,
        at: At,
        chunks: Vec<(u32, f32)>,
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut place: HashMap<&str, usize> = HashMap::new();
    for c in all {
        match place.get(c.id) {
            Some(&i) => groups[i].chunks.push((c.chunk, c.score)),
            None => {
                place.insert(c.id, groups.len());
                groups.push(Group {
                    score: c.score,
                    id: c.id,
                    at: c.at,
                    chunks: vec![(c.chunk, c.score)],
                });
            }
        }
    }
    if chunk_score == ChunkScore::Sum {
        for g in &mut groups {
            g.score = g.chunks.iter().take(SUM_CHUNKS).map(|c| c.1).sum();
        }
    }
    keep_best(&mut groups, depth, |x, y| {
        best_first((x.score, x.id), (y.score, y.id))
    });
    let mut out = DenseList::default();
    for g in groups {
        out.ranked.push((g.id.to_string(), g.score));
        out.at.push(g.at);
        out.chunks.push(g.chunks);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_best_orders_by_score_then_id() {
        let mut v = vec![(0.5, "c"), (0.9, "d"), (0.5, "b"), (-1.0, "a"), (0.5, "a")];
        keep_best(&mut v, 3, |x, y| best_first(*x, *y));
        assert_eq!(v, vec![(0.9, "d"), (0.5, "a"), (0.5, "b")]);
        keep_best(&mut v, 0, |x, y| best_first(*x, *y));
        assert!(v.is_empty());
        let mut short = vec![(0.1, "x"), (0.2, "y")];
        keep_best(&mut short, 5, |x, y| best_first(*x, *y));
        assert_eq!(short, vec![(0.2, "y"), (0.1, "x")]);
    }
}
