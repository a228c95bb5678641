//! The dense half of a query, and the compiled filter it shares with BM25.
//!
//! A query splits its work by what it needs the state lock for. The memtables change
//! under writers, so their filter sets are compiled and their graphs searched while the
//! query holds the state's read lock (their size is bounded by the seal threshold). The
//! sealed segments come from the [`SegmentList`](super::SegmentList) snapshot taken
//! under that same lock, and are filtered and searched after it is released: the bulk
//! of a query never holds a lock that a writer, seal or compaction waits for.
//!
//! Results stay lean until the end: a segment hit is `(score, segment, row)` and a
//! memtable hit is a shared id, so no id string is built per hit. The lists of all
//! segments and memtables are merged by score (ties: id ascending, borrowed from the
//! mapped segment or the memtable's shared id), and only the final `depth` hits are
//! turned into owned ids. With `exact`, every allowed row is scored by brute force
//! instead of walking the graphs; the scores are the same [`Distance::score`] the
//! graph searches report.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_core::{Condition, Distance, Filter};
use quiver_index::{compile_filter, RowSet};

use super::{parse_metadata, text_key, State};
use crate::dense::{SearchArgs, SegmentVectors, VecIndex};
use crate::live_segment::LiveSegment;
use crate::memtable::Memtable;
use crate::Result;

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

/// A memtable hit: its id outlives the state lock without a copy.
pub(super) type MemHit = (Arc<str>, f32);

/// The `depth` best allowed documents of one memtable, by its graph or exactly.
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
    let mut rows: Vec<(u64, f32)> = if a.exact {
        let t = Instant::now();
        let rows = (0..m.writes() as u64)
            .filter(|&seq| filter(seq))
            .filter_map(|seq| m.current(seq).map(|(_, d)| (seq, d)))
            .map(|(seq, d)| (seq, a.distance.score(a.query, &d.vector)))
            .collect();
        *index_time += t.elapsed();
        rows
    } else {
        let Some(graph) = m.graph() else {
            return Ok(Vec::new());
        };
        let args = a.search_args(set, m.live());
        let t = Instant::now();
        let hits = VecIndex::search(graph, &args, &filter, m, m.writes() as u64)?;
        *index_time += t.elapsed();
        hits.into_iter().map(|h| (h.row, h.score)).collect()
    };
    let id = |seq: u64| m.current(seq).map_or("", |(id, _)| id);
    keep_best(&mut rows, a.depth, |x, y| {
        best_first((x.1, id(x.0)), (y.1, id(y.0)))
    });
    Ok(rows
        .into_iter()
        .filter_map(|(seq, score)| m.current_id(seq).map(|id| (Arc::clone(id), score)))
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

/// A segment hit: index into the snapshot, row in that segment.
#[derive(Debug, Clone, Copy)]
pub(super) struct SegHit {
    pub(super) score: f32,
    pub(super) seg: u32,
    pub(super) row: u32,
}

/// The `depth` best allowed rows of every segment of the snapshot (each segment's own
/// list; [`merge`] ranks them together). Runs without the state lock.
pub(super) fn search_segments(
    segments: &[Arc<LiveSegment>],
    allowed: Option<&SegAllowed>,
    a: &DenseArgs<'_>,
    index_time: &mut Duration,
) -> Result<Vec<SegHit>> {
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let set = allowed.map(|x| &x.sets[i]);
        let s = seg.segment();
        // Segment rows and indexes fit u32: segments are written from one memtable
        // or one merge, far below 2^32 rows.
        let Ok(seg_ix) = u32::try_from(i) else { break };
        let filter =
            |row: u64| !seg.is_deleted(row as usize) && set.is_none_or(|x| x.contains(row));
        if a.exact {
            let t = Instant::now();
            let mut rows: Vec<(usize, f32)> = seg
                .live_rows()
                .filter(|&r| set.is_none_or(|x| x.contains(r as u64)))
                .map(|r| (r, a.distance.score(a.query, s.vector(r))))
                .collect();
            *index_time += t.elapsed();
            keep_best(&mut rows, a.depth, |x, y| {
                best_first((x.1, s.id_of(x.0)), (y.1, s.id_of(y.0)))
            });
            out.extend(rows.into_iter().filter_map(|(r, score)| {
                Some(SegHit {
                    score,
                    seg: seg_ix,
                    row: u32::try_from(r).ok()?,
                })
            }));
            continue;
        }
        let args = a.search_args(set, seg.live_count());
        let t = Instant::now();
        let hits = seg
            .graph()
            .search(&args, &filter, &SegmentVectors(s), s.len() as u64)?;
        *index_time += t.elapsed();
        out.extend(hits.into_iter().filter_map(|h| {
            Some(SegHit {
                score: h.score,
                seg: seg_ix,
                row: u32::try_from(h.row).ok()?,
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

/// The merged dense list, best first: owned ids (for fusion and the answer) and
/// where each hit lives.
#[derive(Debug, Default)]
pub(super) struct DenseList {
    pub(super) ranked: Vec<(String, f32)>,
    pub(super) at: Vec<At>,
}

/// Ranks every segment and memtable hit together and keeps the best `depth`; only
/// those become owned strings.
pub(super) fn merge(
    segments: &[Arc<LiveSegment>],
    seg_hits: &[SegHit],
    mem_hits: &[MemHit],
    depth: usize,
) -> DenseList {
    struct Cand<'a> {
        score: f32,
        id: &'a str,
        at: At,
    }
    let mut all: Vec<Cand<'_>> = Vec::with_capacity(seg_hits.len() + mem_hits.len());
    for h in seg_hits {
        let (seg, row) = (h.seg as usize, h.row as usize);
        all.push(Cand {
            score: h.score,
            id: segments[seg].segment().id_of(row),
            at: At::Segment(seg, row),
        });
    }
    for (id, score) in mem_hits {
        all.push(Cand {
            score: *score,
            id,
            at: At::Memtable,
        });
    }
    keep_best(&mut all, depth, |x, y| {
        best_first((x.score, x.id), (y.score, y.id))
    });
    DenseList {
        ranked: all.iter().map(|c| (c.id.to_string(), c.score)).collect(),
        at: all.iter().map(|c| c.at).collect(),
    }
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
