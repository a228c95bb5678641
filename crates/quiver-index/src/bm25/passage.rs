//! BM25 of passages: how well each chunk of a stored text answers a query.
//!
//! A chunk is scored as if it were a document of the index, with the index's own
//! statistics (`idf` of each term, `avgdl`) and its `k1` and `b`, and its own length in
//! analyzed tokens (exact, where the index rounds long documents' lengths; see
//! `score.rs`). Chunk and document scores therefore share one scale, and a chunk
//! holding the whole text scores about as its document does. Scoring reads the text
//! once through the index's analyzer, whatever the number of chunks.

use std::collections::HashMap;
use std::ops::Range;

use quiver_core::Bm25Config;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::Score;

/// Scores passages of texts against one query (see [`crate::TextIndex::passage_scorer`]).
pub struct PassageScorer {
    /// Each analyzed query term with `qtf * idf * (k1 + 1)`.
    weights: HashMap<String, Score>,
    params: Bm25Config,
    avgdl: Score,
    analyzer: TextAnalyzer,
}

impl std::fmt::Debug for PassageScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassageScorer")
            .field("weights", &self.weights)
            .field("avgdl", &self.avgdl)
            .finish_non_exhaustive()
    }
}

impl PassageScorer {
    pub(crate) fn new(
        weights: HashMap<String, Score>,
        params: Bm25Config,
        avgdl: Score,
        analyzer: TextAnalyzer,
    ) -> Self {
        PassageScorer {
            weights,
            params,
            avgdl,
            analyzer,
        }
    }

    /// The BM25 score of each byte range of `text` in `spans`; a token counts in every
    /// range that holds it whole (chunks overlap).
    pub fn score(&mut self, text: &str, spans: &[Range<usize>]) -> Vec<f32> {
        // Every analyzed token's place, and the weight of the query term it is.
        let mut tokens: Vec<(usize, usize, Option<usize>)> = Vec::new();
        let mut terms: Vec<Score> = Vec::new();
        let mut term_of: HashMap<&str, usize> = HashMap::new();
        let mut stream = self.analyzer.token_stream(text);
        while let Some(t) = stream.next() {
            let term = self.weights.get_key_value(t.text.as_str()).map(|(k, &w)| {
                *term_of.entry(k.as_str()).or_insert_with(|| {
                    terms.push(w);
                    terms.len() - 1
                })
            });
            tokens.push((t.offset_from, t.offset_to, term));
        }
        let Bm25Config { k1, b } = self.params;
        let mut tf = vec![0u32; terms.len()];
        spans
            .iter()
            .map(|span| {
                tf.iter_mut().for_each(|n| *n = 0);
                let first = tokens.partition_point(|t| t.0 < span.start);
                let mut len = 0u32;
                for &(_, to, term) in tokens[first..].iter().take_while(|t| t.0 < span.end) {
                    if to <= span.end {
                        len += 1;
                        if let Some(i) = term {
                            tf[i] += 1;
                        }
                    }
                }
                let norm = k1 * (1.0 - b + b * len as Score / self.avgdl);
                terms
                    .iter()
                    .zip(&tf)
                    .filter(|(_, &n)| n > 0)
                    .map(|(w, &n)| w * (n as Score / (n as Score + norm)))
                    .sum()
            })
            .collect()
    }
}
