//! What queries say about documents stored in chunks: which chunks a hit reports, and
//! the per-chunk lists a `group_by: chunk` query ranks.
//!
//! With [`GroupBy::Chunk`](crate::GroupBy) every list is keyed by chunk rather than by
//! document: the dense list holds each chunk the graph searches found, the sparse list
//! each chunk of the BM25 hits scored as a passage (see `quiver_index::PassageScorer`),
//! and fusion joins them on the same key, `id` + NUL + chunk number. A document stored
//! whole is its own chunk 0.

use std::collections::HashMap;
use std::ops::Range;

use quiver_index::PassageScorer;

use super::dense_query::DenseList;
use super::HitDoc;
use crate::query::HitChunk;

/// Separates a chunk key's document id from its chunk number.
const SEP: char = '\0';

/// The key of chunk `n` of document `id` in per-chunk lists.
fn chunk_key(id: &str, n: u32) -> String {
    format!("{id}{SEP}{n}")
}

/// The document id and chunk number of a chunk key (the id may hold NUL itself, the
/// number never does).
pub(super) fn split_key(key: &str) -> (String, u32) {
    match key.rsplit_once(SEP) {
        Some((id, n)) => (id.to_string(), n.parse().unwrap_or(0)),
        None => (key.to_string(), 0),
    }
}

/// Keeps the `depth` best of `list`, best first (ties: key ascending).
fn best(mut list: Vec<(String, f32)>, depth: usize) -> Vec<(String, f32)> {
    list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list.truncate(depth);
    list
}

/// The dense list per chunk: every chunk the searches found, by similarity.
pub(super) fn dense_list(dense: &DenseList, depth: usize) -> Vec<(String, f32)> {
    let list = dense
        .ranked
        .iter()
        .zip(&dense.chunks)
        .flat_map(|((id, _), chunks)| chunks.iter().map(move |&(n, s)| (chunk_key(id, n), s)))
        .collect();
    best(list, depth)
}

/// The sparse list per chunk: each chunk of the BM25 hits `sparse` (their documents in
/// `docs`) scored as a passage; a document stored whole keeps its own score.
pub(super) fn sparse_list(
    scorer: &mut PassageScorer,
    sparse: &[(String, f32)],
    docs: &HashMap<String, HitDoc>,
    depth: usize,
) -> Vec<(String, f32)> {
    let mut list = Vec::new();
    for (id, score) in sparse {
        let Some((doc, spans)) = docs.get(id) else {
            continue;
        };
        if spans.len() < 2 {
            list.push((chunk_key(id, 0), *score));
            continue;
        }
        for (n, s) in scorer.score(&doc.text, spans).into_iter().enumerate() {
            if s > 0.0 {
                list.push((chunk_key(id, n as u32), s));
            }
        }
    }
    best(list, depth)
}

/// The chunk of `spans` that scores best as a passage, with its score; `None` when
/// none holds a query term.
pub(super) fn best_passage(
    scorer: &mut PassageScorer,
    text: &str,
    spans: &[Range<usize>],
) -> Option<(u32, f32)> {
    let scores = scorer.score(text, spans);
    let mut best: Option<(u32, f32)> = None;
    for (n, s) in scores.into_iter().enumerate() {
        if s > 0.0 && best.is_none_or(|b| s > b.1) {
            best = Some((n as u32, s));
        }
    }
    best
}

/// The chunks a hit reports (see [`crate::QueryHit::chunks`]): `picked`, numbers into
/// `stored` with their scores, best first; none for a document stored whole.
pub(super) fn hit_chunks(
    text: &str,
    stored: &[Range<usize>],
    picked: &[(u32, f32)],
) -> Vec<HitChunk> {
    if stored.len() < 2 {
        return Vec::new();
    }
    // A few chunks: counting the characters before each is cheaper than a table.
    let chars = |b: usize| text.get(..b).map_or(0, |p| p.chars().count());
    picked
        .iter()
        .filter_map(|&(n, score)| {
            let n = n as usize;
            stored
                .get(n)
                .map(|c| HitChunk::new(text, n, c, Some(score), &chars))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_split_back() {
        assert_eq!(split_key(&chunk_key("doc", 7)), ("doc".to_string(), 7));
        assert_eq!(split_key(&chunk_key("a\0b", 0)), ("a\0b".to_string(), 0));
    }
}
