//! The fetch stage of a query: the final ranked ids become hits with their text,
//! metadata, highlights and, for documents stored in chunks, the chunks they report.
//!
//! Segment hits are read from the query's snapshot without a lock; memtable documents
//! under one short read lock, taken only if a hit needs it. Highlights and passage
//! scores read each returned text through the analyzer after that lock is released, so
//! writers never wait for them.

use std::collections::HashMap;
use std::sync::Arc;

use quiver_index::PassageScorer;

use super::chunk_hits;
use super::dense_query::{At, DenseList};
use super::{segment_hit, visible_hit, Collection, HitDoc};
use crate::dense::index_err;
use crate::live_segment::LiveSegment;
use crate::query::{Explain, GroupBy, Query, QueryHit, QueryMode};
use crate::Result;

/// Where a dense hit lives and the chunks the search found of it.
type Located<'a> = (At, &'a [(u32, f32)]);

impl Collection {
    /// Turns `ranked` (ids, or chunk keys with [`GroupBy::Chunk`]) into hits. `docs`
    /// holds the documents the sparse stage read already; `passages` the scorer it made,
    /// if it made one.
    pub(super) fn fetch(
        &self,
        q: &Query,
        ranked: Vec<(String, f32, Explain)>,
        segments: &[Arc<LiveSegment>],
        dense: &DenseList,
        mut docs: HashMap<String, HitDoc>,
        mut passages: Option<PassageScorer>,
    ) -> Result<Vec<QueryHit>> {
        let located: HashMap<&str, Located<'_>> = dense
            .ranked
            .iter()
            .zip(dense.at.iter().zip(&dense.chunks))
            .map(|((id, _), (at, chunks))| (id.as_str(), (*at, chunks.as_slice())))
            .collect();
        let by_chunk = q.group_by == GroupBy::Chunk;
        let ranked: Vec<(String, Option<u32>, f32, Explain)> = ranked
            .into_iter()
            .map(|(key, score, e)| match by_chunk {
                true => {
                    let (id, n) = chunk_hits::split_key(&key);
                    (id, Some(n), score, e)
                }
                false => (key, None, score, e),
            })
            .collect();
        // Memtable documents are read under the lock, once, and only if a hit needs it.
        let needs_lock = ranked.iter().any(|(id, ..)| {
            !docs.contains_key(id)
                && !matches!(located.get(id.as_str()), Some((At::Segment(..), _)))
        });
        let st = needs_lock.then(|| self.inner.state.read());
        let mut hits = Vec::with_capacity(q.top_k);
        let mut chunks = Vec::with_capacity(q.top_k);
        for (id, chunk, score, explain) in ranked {
            let place = located.get(id.as_str());
            // A document may be a hit once per chunk: keep it for the next.
            let cached = match by_chunk {
                true => docs.get(&id).cloned(),
                false => docs.remove(&id),
            };
            let doc = match (cached, place, &st) {
                (Some(d), ..) => Some(d),
                (None, Some((At::Segment(seg, row), _)), _) => {
                    Some(segment_hit(segments[*seg].segment(), *row)?)
                }
                (None, _, Some(st)) => visible_hit(st, &id)?,
                (None, _, None) => None,
            };
            if let Some((d, spans)) = doc {
                let picked: Vec<(u32, f32)> = match (chunk, place) {
                    (Some(n), _) => vec![(n, score)],
                    (None, Some((_, found))) => found.to_vec(),
                    (None, None) => Vec::new(),
                };
                chunks.push((spans, picked));
                hits.push(QueryHit {
                    id,
                    score,
                    text: d.text,
                    metadata: d.metadata,
                    explain: q.explain.then_some(explain),
                    highlights: Vec::new(),
                    chunks: Vec::new(),
                });
            }
        }
        drop(st);
        // Marked after the memtable lock is released: writers need not wait for it.
        let reads_text = matches!(q.mode, QueryMode::Sparse | QueryMode::Hybrid) && q.highlight;
        if let (Some(text), true) = (&q.text, reads_text) {
            let mut highlighter = self.inner.text.highlighter(text);
            for hit in &mut hits {
                hit.highlights = highlighter.mark(&hit.text);
            }
        }
        for (hit, (spans, mut picked)) in hits.iter_mut().zip(chunks) {
            if let (true, Some(text), true, true) =
                (picked.is_empty(), &q.text, spans.len() > 1, reads_text)
            {
                let scorer = match &mut passages {
                    Some(s) => s,
                    None => passages.insert(self.passage_scorer(text)?),
                };
                picked.extend(chunk_hits::best_passage(scorer, &hit.text, &spans));
            }
            if picked.is_empty() && spans.len() > 1 {
                // Nothing to choose by: the document's opening chunk.
                picked.push((0, hit.score));
            }
            hit.chunks = chunk_hits::hit_chunks(&hit.text, &spans, &picked);
            if let Some(e) = &mut hit.explain {
                e.chunk = hit.chunks.first().map(|c| c.chunk);
            }
        }
        Ok(hits)
    }

    /// The passage scorer of the text index for `text`.
    pub(super) fn passage_scorer(&self, text: &str) -> Result<PassageScorer> {
        self.inner.text.passage_scorer(text).map_err(index_err)
    }
}
