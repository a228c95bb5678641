//! Query execution: validate, compile the filter, run the dense and sparse searches,
//! fuse, fetch.
//!
//! A query takes the state's read lock twice, briefly: first to snapshot the segment
//! list and to compile the filter over, and search, the memtables (see `dense_query`);
//! last to resolve text hits and memtable hits to their documents. The sealed
//! segments, where nearly all the work is, are filtered and searched in between on the
//! snapshot, holding no lock. Read-your-writes holds: a write acknowledged before the
//! query started is in the memtable (and its graph) when the first lock is taken, and
//! every older version of its id is already marked deleted in the segments.
//!
//! The filter is compiled once, from the metadata indexes: a row set per segment
//! (segment rows), one per memtable (sequence numbers) and, when the query has a text
//! half, the text keys of the same documents. The graph searches plan by the sets'
//! sizes (see `plan`) and consult them while they walk; BM25 consults the key set while
//! it scores.
//! Text hits are then resolved to the visible document of their id, which drops
//! documents deleted since the last text commit and re-checks the filter (text keys
//! are hashes). The text index is committed first when writes are waiting (see `text`),
//! so sparse and hybrid queries see every acknowledged write, as dense queries do.
//! Fusion ranks documents, or chunks with `group_by: chunk` (see `chunk_hits`); the
//! best `top_k` then become hits (see `fetch`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use quiver_core::{normalize, validate_vector};
use quiver_index::{PassageScorer, RowFilter, StageHit};

use super::chunk_hits;
use super::dense_query::{self, DenseArgs, DenseList};
use super::{visible_hit, Collection, HitDoc, State};
use crate::dense::index_err;
use crate::query::{
    Explain, GroupBy, Query, QueryMode, QueryResult, QueryTimings, HYBRID_CANDIDATES, MAX_TOP_K,
};
use crate::{EngineError, Result};

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidInput(msg.into())
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

    /// Runs `q` (see [`Query`]). Every mode sees every write acknowledged before the
    /// call: a text search first commits the text index if writes are waiting.
    pub fn query(&self, q: &Query) -> Result<QueryResult> {
        let (vector, text) = self.check_query(q)?;
        let mut timings = QueryTimings::default();
        let depth = match q.mode {
            QueryMode::Hybrid => q.top_k.max(HYBRID_CANDIDATES),
            _ => q.top_k,
        };
        let config = &self.inner.config;
        let args = vector.as_deref().map(|v| DenseArgs {
            query: v,
            depth,
            ef: q.ef,
            rescore: config.rescore,
            exact: q.exact,
            distance: config.distance,
        });
        let mut text_keys = HashSet::new();

        // Under the lock: the snapshot, and everything that reads the memtables.
        let (segments, mem_hits) = {
            let st = self.inner.state.read();
            let segments = Arc::clone(&st.segments);
            let t = Instant::now();
            let mem_allowed = q
                .filter
                .as_ref()
                .map(|f| dense_query::compile_memtables(&st, f));
            if let (Some(allowed), Some(_)) = (&mem_allowed, text) {
                dense_query::memtable_text_keys(&st, allowed, &mut text_keys);
            }
            timings.filter += t.elapsed();
            let hits = match &args {
                Some(a) => {
                    let t = Instant::now();
                    let hits = dense_query::search_memtables(
                        &st,
                        mem_allowed.as_ref(),
                        a,
                        &mut timings.dense_index,
                    )?;
                    timings.dense += t.elapsed();
                    hits
                }
                None => Vec::new(),
            };
            (segments, hits)
        };

        // No lock: the segments of the snapshot.
        let t = Instant::now();
        let seg_allowed = q
            .filter
            .as_ref()
            .map(|f| dense_query::compile_segments(&segments, f));
        if let (Some(allowed), Some(_)) = (&seg_allowed, text) {
            dense_query::segment_text_keys(&segments, allowed, &mut text_keys);
        }
        timings.filter += t.elapsed();
        let dense = match &args {
            Some(a) => {
                let t = Instant::now();
                let seg_hits = dense_query::search_segments(
                    &segments,
                    seg_allowed.as_ref(),
                    a,
                    &mut timings.dense_index,
                )?;
                let merged =
                    dense_query::merge(&segments, &seg_hits, &mem_hits, depth, q.chunk_score);
                timings.dense += t.elapsed();
                merged
            }
            None => DenseList::default(),
        };

        let t = Instant::now();
        let found = match text {
            Some(text) => {
                // Read-your-writes: the text index holds every acknowledged write.
                self.inner.catch_up_text()?;
                let filtered = q.filter.is_some().then_some(&text_keys);
                self.text_hits(filtered, text, depth)?
            }
            None => Vec::new(),
        };
        timings.sparse = t.elapsed();

        // Text hits become documents under a short lock (ids may live in a memtable).
        let t = Instant::now();
        let mut docs: HashMap<String, HitDoc> = HashMap::new();
        let sparse = if found.is_empty() {
            Vec::new()
        } else {
            resolve_text_hits(&self.inner.state.read(), q, found, depth, &mut docs)?
        };
        timings.sparse += t.elapsed();

        let t = Instant::now();
        // Keyword passages are scored with the committed index's statistics, once per
        // query and only when a chunk must be chosen by its words.
        let mut passages: Option<PassageScorer> = None;
        let ranked = match (q.group_by, text) {
            (GroupBy::Chunk, Some(text)) => {
                let scorer = passages.insert(self.passage_scorer(text)?);
                let sparse = chunk_hits::sparse_list(scorer, &sparse, &docs, depth);
                rank(q, &chunk_hits::dense_list(&dense, depth), &sparse)?
            }
            (GroupBy::Chunk, None) => rank(q, &chunk_hits::dense_list(&dense, depth), &[])?,
            (GroupBy::Document, _) => rank(q, &dense.ranked, &sparse)?,
        };
        timings.fusion = t.elapsed();

        let t = Instant::now();
        let ranked: Vec<_> = ranked.into_iter().take(q.top_k).collect();
        let hits = self.fetch(q, ranked, &segments, &dense, docs, passages)?;
        timings.fetch = t.elapsed();
        Ok(QueryResult { hits, timings })
    }

    /// BM25 hits for `text`, a little deeper than `depth` for the hits that resolve to
    /// nothing (deleted since the last commit); `keys` restricts them to a filter.
    fn text_hits(
        &self,
        keys: Option<&HashSet<u64>>,
        text: &str,
        depth: usize,
    ) -> Result<Vec<quiver_index::TextHit>> {
        let key_filter = keys.map(|k| move |key: u64| k.contains(&key));
        let filter: Option<&dyn RowFilter> = key_filter.as_ref().map(|f| f as &dyn RowFilter);
        let want = depth.saturating_add(depth / 4).saturating_add(8);
        self.inner
            .text
            .search(text, want, filter)
            .map_err(index_err)
    }
}

/// The `depth` best text hits that resolve to visible, allowed documents; the
/// documents read on the way are kept in `docs` for the fetch stage.
fn resolve_text_hits(
    st: &State,
    q: &Query,
    found: Vec<quiver_index::TextHit>,
    depth: usize,
    docs: &mut HashMap<String, HitDoc>,
) -> Result<Vec<(String, f32)>> {
    let mut out = Vec::with_capacity(depth.min(found.len()));
    for hit in found {
        if out.len() == depth {
            break;
        }
        let Some(doc) = visible_hit(st, &hit.id)? else {
            continue;
        };
        if q.filter
            .as_ref()
            .is_some_and(|f| !f.matches(&doc.0.metadata))
        {
            continue;
        }
        out.push((hit.id.clone(), hit.score));
        docs.insert(hit.id, doc);
    }
    Ok(out)
}

/// The final list of the query's mode, best first, with each hit's explanation.
fn rank(
    q: &Query,
    dense: &[(String, f32)],
    sparse: &[(String, f32)],
) -> Result<Vec<(String, f32, Explain)>> {
    let single = |list: &[(String, f32)], is_dense: bool| {
        stage(list)
            .into_iter()
            .map(|(id, s, h)| {
                let e = if is_dense {
                    Explain {
                        dense: Some(h),
                        ..Explain::default()
                    }
                } else {
                    Explain {
                        sparse: Some(h),
                        ..Explain::default()
                    }
                };
                (id, s, e)
            })
            .collect()
    };
    Ok(match q.mode {
        QueryMode::Dense => single(dense, true),
        QueryMode::Sparse => single(sparse, false),
        QueryMode::Hybrid => q
            .fusion
            .fuse(dense, sparse)
            .map_err(index_err)?
            .into_iter()
            .map(|f| {
                let e = Explain {
                    dense: f.dense,
                    sparse: f.sparse,
                    fused: Some(f.score),
                    rerank: None,
                    chunk: None,
                };
                (f.key, f.score, e)
            })
            .collect(),
    })
}
