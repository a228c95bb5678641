//! Query execution: validate, compile the filter, run the dense and sparse searches,
//! fuse, fetch.
//!
//! The whole query runs under one read lock of the collection state, so every stage
//! sees the same segments, tombstones and memtables. The filter is compiled once into
//! [`Allowed`]: a row set per segment (segment rows), one per memtable (sequence
//! numbers) and the text keys of the same documents. The graph searches consult the
//! row sets while they walk; BM25 consults the key set while it scores. Text hits are
//! then resolved to the visible document of their id, which drops documents deleted
//! since the last text commit and re-checks the filter (text keys are hashes).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use quiver_core::{normalize, validate_vector, Document, Filter};
use quiver_index::{Hit as RowHit, RowFilter, RowSet, StageHit};

use super::{parse_metadata, text_key, visible_doc, Collection, State};
use crate::dense::{index_err, SearchArgs, SegmentVectors, VecIndex};
use crate::memtable::Memtable;
use crate::query::{
    Explain, Query, QueryHit, QueryMode, QueryResult, QueryTimings, HYBRID_CANDIDATES, MAX_TOP_K,
};
use crate::{EngineError, Result};

/// A filter compiled against one state of the collection.
struct Allowed {
    /// Parallel to `State::segments`.
    segments: Vec<RowSet>,
    active: RowSet,
    frozen: RowSet,
    text_keys: HashSet<u64>,
}

fn matches(filter: &Filter, metadata_json: &str) -> bool {
    parse_metadata(metadata_json).is_some_and(|m| filter.matches(&m))
}

impl Allowed {
    fn compile(st: &State, filter: &Filter) -> Result<Allowed> {
        let mut text_keys = HashSet::new();
        let mut segments = Vec::with_capacity(st.segments.len());
        for seg in &st.segments {
            let mut set = RowSet::new();
            for row in seg.live_rows() {
                let d = seg.segment().doc(row)?;
                if matches(filter, d.metadata_json) {
                    set.insert(row as u64);
                    text_keys.insert(text_key(d.id));
                }
            }
            segments.push(set);
        }
        let mut mem = |m: &Memtable, skip: &dyn Fn(&str) -> bool| {
            let mut set = RowSet::new();
            for (id, e) in m.iter() {
                if let Some(d) = &e.doc {
                    if !skip(id) && matches(filter, &d.metadata_json) {
                        set.insert(e.seq);
                        text_keys.insert(text_key(id));
                    }
                }
            }
            set
        };
        let active = mem(&st.active, &|_| false);
        let frozen = match &st.frozen {
            Some(f) => mem(f, &|id| st.active.contains(id)),
            None => RowSet::new(),
        };
        Ok(Allowed {
            segments,
            active,
            frozen,
            text_keys,
        })
    }
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidInput(msg.into())
}

/// Best first, ties by id, at most `k`.
fn rank(mut hits: Vec<(String, f32)>, k: usize) -> Vec<(String, f32)> {
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    hits.truncate(k);
    hits
}

fn stage(list: &[(String, f32)]) -> Vec<(String, f32, StageHit)> {
    list.iter()
        .enumerate()
        .map(|(i, (id, s))| {
            let hit = StageHit {
                rank: i + 1,
                score: *s,
            };
            (id.clone(), *s, hit)
        })
        .collect()
}

impl Collection {
    fn check_query<'q>(&self, q: &'q Query) -> Result<(Option<Vec<f32>>, Option<&'q str>)> {
        if q.top_k == 0 || q.top_k > MAX_TOP_K {
            return Err(invalid(format!(
                "top_k must be in 1..={MAX_TOP_K}, got {}",
                q.top_k
            )));
        }
        if q.ef.is_some_and(|ef| ef == 0 || ef > 4096) {
            return Err(invalid("ef must be in 1..=4096"));
        }
        q.fusion.validate().map_err(index_err)?;
        let (dense, sparse) = match q.mode {
            QueryMode::Dense => (true, false),
            QueryMode::Sparse => (false, true),
            QueryMode::Hybrid => (true, true),
        };
        let vector = if dense {
            let v = q
                .vector
                .as_ref()
                .ok_or_else(|| invalid("dense and hybrid queries need a vector"))?;
            validate_vector(v, self.inner.config.dim).map_err(|e| invalid(e.to_string()))?;
            let mut v = v.clone();
            if self.inner.config.distance.normalizes() {
                normalize(&mut v);
            }
            Some(v)
        } else {
            None
        };
        let text = if sparse {
            let t = q.text.as_deref().unwrap_or_default();
            if t.trim().is_empty() {
                return Err(invalid("sparse and hybrid queries need a non-empty text"));
            }
            Some(t)
        } else {
            None
        };
        Ok((vector, text))
    }

    /// Runs `q` (see [`Query`]). Text searches see the text index as of its last
    /// commit (see [`Collection::commit_text`]); everything else sees every write.
    pub fn query(&self, q: &Query) -> Result<QueryResult> {
        let (vector, text) = self.check_query(q)?;
        let mut timings = QueryTimings::default();
        let st = self.inner.state.read();

        let t = Instant::now();
        let allowed = q
            .filter
            .as_ref()
            .map(|f| Allowed::compile(&st, f))
            .transpose()?;
        timings.filter = t.elapsed();

        let depth = match q.mode {
            QueryMode::Hybrid => q.top_k.max(HYBRID_CANDIDATES),
            _ => q.top_k,
        };
        let mut docs: HashMap<String, Document> = HashMap::new();

        let t = Instant::now();
        let dense = match &vector {
            Some(v) => self.dense_search(&st, allowed.as_ref(), q, v, depth)?,
            None => Vec::new(),
        };
        timings.dense = t.elapsed();

        let t = Instant::now();
        let sparse = match text {
            Some(text) => self.sparse_search(&st, allowed.as_ref(), q, text, depth, &mut docs)?,
            None => Vec::new(),
        };
        timings.sparse = t.elapsed();

        let t = Instant::now();
        let ranked: Vec<(String, f32, Explain)> = match q.mode {
            QueryMode::Dense => stage(&dense)
                .into_iter()
                .map(|(id, s, h)| {
                    (
                        id,
                        s,
                        Explain {
                            dense: Some(h),
                            ..Explain::default()
                        },
                    )
                })
                .collect(),
            QueryMode::Sparse => stage(&sparse)
                .into_iter()
                .map(|(id, s, h)| {
                    (
                        id,
                        s,
                        Explain {
                            sparse: Some(h),
                            ..Explain::default()
                        },
                    )
                })
                .collect(),
            QueryMode::Hybrid => q
                .fusion
                .fuse(&dense, &sparse)
                .map_err(index_err)?
                .into_iter()
                .map(|f| {
                    let e = Explain {
                        dense: f.dense,
                        sparse: f.sparse,
                        fused: Some(f.score),
                    };
                    (f.key, f.score, e)
                })
                .collect(),
        };
        timings.fusion = t.elapsed();

        let t = Instant::now();
        let mut hits = Vec::with_capacity(q.top_k);
        for (id, score, explain) in ranked.into_iter().take(q.top_k) {
            let doc = match docs.remove(&id) {
                Some(d) => Some(d),
                None => visible_doc(&st, &id)?,
            };
            if let Some(d) = doc {
                hits.push(QueryHit {
                    id,
                    score,
                    text: d.text,
                    metadata: d.metadata,
                    explain: q.explain.then_some(explain),
                });
            }
        }
        timings.fetch = t.elapsed();
        Ok(QueryResult { hits, timings })
    }

    /// The `depth` nearest visible, allowed documents over every segment and memtable.
    fn dense_search(
        &self,
        st: &State,
        allowed: Option<&Allowed>,
        q: &Query,
        vector: &[f32],
        depth: usize,
    ) -> Result<Vec<(String, f32)>> {
        let config = &self.inner.config;
        let mut args = SearchArgs {
            query: vector,
            k: depth,
            ef: q.ef,
            rescore: config.rescore,
            allowed: None,
        };
        let mut out: Vec<(String, f32)> = Vec::new();
        for (i, seg) in st.segments.iter().enumerate() {
            let set = allowed.map(|a| &a.segments[i]);
            args.allowed = Some(set.map_or(seg.live_count(), RowSet::len));
            let filter =
                |row: u64| !seg.is_deleted(row as usize) && set.is_none_or(|s| s.contains(row));
            let s = seg.segment();
            let hits = seg
                .graph()
                .search(&args, &filter, &SegmentVectors(s), s.len() as u64)?;
            out.extend(
                hits.iter()
                    .map(|h| (s.id_of(h.row as usize).to_string(), h.score)),
            );
        }
        let mut mem = |m: &Memtable,
                       set: Option<&RowSet>,
                       shadowed: &(dyn Fn(&str) -> bool + Sync)| {
            let Some(graph) = m.graph() else {
                return Ok(());
            };
            let filter = |seq: u64| {
                set.is_none_or(|s| s.contains(seq))
                    && m.current(seq).is_some_and(|(id, _)| !shadowed(id))
            };
            args.allowed = Some(set.map_or(m.live(), RowSet::len));
            let hits: Vec<RowHit> = VecIndex::search(graph, &args, &filter, m, m.writes() as u64)?;
            for h in hits {
                if let Some((id, _)) = m.current(h.row) {
                    out.push((id.to_string(), h.score));
                }
            }
            Ok::<(), EngineError>(())
        };
        mem(&st.active, allowed.map(|a| &a.active), &|_| false)?;
        if let Some(f) = &st.frozen {
            mem(f, allowed.map(|a| &a.frozen), &|id| st.active.contains(id))?;
        }
        Ok(rank(out, depth))
    }

    /// The `depth` best BM25 hits that resolve to visible, allowed documents; the
    /// documents read on the way are kept in `docs` for the fetch stage.
    fn sparse_search(
        &self,
        st: &State,
        allowed: Option<&Allowed>,
        q: &Query,
        text: &str,
        depth: usize,
        docs: &mut HashMap<String, Document>,
    ) -> Result<Vec<(String, f32)>> {
        let key_filter = allowed.map(|a| move |key: u64| a.text_keys.contains(&key));
        let filter: Option<&dyn RowFilter> = key_filter.as_ref().map(|f| f as &dyn RowFilter);
        // A little extra for hits dropped below (deleted since the last commit).
        let want = depth.saturating_add(depth / 4).saturating_add(8);
        let found = self
            .inner
            .text
            .search(text, want, filter)
            .map_err(index_err)?;
        let mut out = Vec::with_capacity(depth);
        for hit in found {
            if out.len() == depth {
                break;
            }
            let Some(doc) = visible_doc(st, &hit.id)? else {
                continue;
            };
            if q.filter.as_ref().is_some_and(|f| !f.matches(&doc.metadata)) {
                continue;
            }
            out.push((hit.id.clone(), hit.score));
            docs.insert(hit.id, doc);
        }
        Ok(out)
    }
}
