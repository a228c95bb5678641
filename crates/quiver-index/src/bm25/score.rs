//! BM25 over tantivy's postings with a collection's own `k1` and `b`.
//!
//! tantivy's BM25 fixes k1 = 1.2 and b = 0.75, so Quiver reads the postings and scores
//! them itself:
//!
//! ```text
//! score(d) = sum over query terms t of  qtf(t) * idf(t) * (k1 + 1) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))
//! idf(t)   = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))
//! ```
//!
//! `qtf(t)` is how often the query holds `t`, `tf` how often `d` does, `N` the documents of
//! every segment (deleted ones count until a merge drops them, as in Lucene and tantivy),
//! `n(t)` those holding `t`, `|d|` the document's length as tantivy's field norm keeps it
//! (exact up to 40 tokens, above that rounded down to one of 256 steps, as Lucene's norms
//! are) and `avgdl` the mean exact length.
//!
//! The statistics, the f32 operations and their order are tantivy's (its `Bm25Weight`, a
//! `BoostQuery` for `qtf`, a `BooleanQuery` summing clauses in term order), so with the
//! default k1 and b the scores are the ones tantivy's own query gives, to the bit.

use quiver_core::Bm25Config;
use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::{Postings, SegmentPostings};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Score, Searcher, SegmentReader, Term, TERMINATED};

/// A query's terms with their weights, ready to score any segment of one searcher.
pub(crate) struct Bm25Query {
    field: Field,
    /// Each term with `qtf * idf * (k1 + 1)`, in the order scores are summed.
    terms: Vec<(Term, Score)>,
    /// `k1 * (1 - b + b * |d| / avgdl)` for every field norm id.
    norms: [Score; 256],
}

/// `ln(1 + (N - n + 0.5) / (n + 0.5))`, Lucene's non-negative BM25 idf.
pub(crate) fn idf(doc_freq: u64, docs: u64) -> Score {
    let x = (docs.saturating_sub(doc_freq) as Score + 0.5) / (doc_freq as Score + 0.5);
    (1.0 + x).ln()
}

/// `N` and `avgdl`: documents of every segment (deleted ones included) and their mean
/// length in tokens.
pub(crate) fn collection_stats(searcher: &Searcher, field: Field) -> tantivy::Result<(u64, Score)> {
    let mut tokens = 0u64;
    let mut docs = 0u64;
    for segment in searcher.segment_readers() {
        tokens += segment.inverted_index(field)?.total_num_tokens();
        docs += u64::from(segment.max_doc());
    }
    Ok((docs, tokens as Score / docs as Score))
}

impl Bm25Query {
    /// Weighs `terms` (each with its count in the query) against `searcher`'s statistics.
    pub(crate) fn new(
        searcher: &Searcher,
        field: Field,
        terms: Vec<(Term, usize)>,
        params: Bm25Config,
    ) -> tantivy::Result<Self> {
        let (k1, b) = (params.k1, params.b);
        let (docs, avgdl) = collection_stats(searcher, field)?;
        let mut norms = [0.0; 256];
        for (id, norm) in norms.iter_mut().enumerate() {
            let len = FieldNormReader::id_to_fieldnorm(id as u8);
            *norm = k1 * (1.0 - b + b * len as Score / avgdl);
        }
        let mut weighted = Vec::with_capacity(terms.len());
        for (term, count) in terms {
            let mut weight = idf(searcher.doc_freq(&term)?, docs) * (1.0 + k1);
            if count != 1 {
                weight *= count as Score;
            }
            weighted.push((term, weight));
        }
        Ok(Bm25Query {
            field,
            terms: weighted,
            norms,
        })
    }

    /// Calls `f` with every document of `segment` holding a query term, in doc id order,
    /// and its score. Deleted documents are included; the caller checks them.
    pub(crate) fn for_each(
        &self,
        segment: &SegmentReader,
        f: &mut dyn FnMut(DocId, Score),
    ) -> tantivy::Result<()> {
        let inverted = segment.inverted_index(self.field)?;
        let fieldnorms = segment.get_fieldnorms_reader(self.field)?;
        let mut cursors: Vec<(SegmentPostings, Score)> = Vec::with_capacity(self.terms.len());
        for (term, weight) in &self.terms {
            if let Some(p) = inverted.read_postings(term, IndexRecordOption::WithFreqs)? {
                cursors.push((p, *weight));
            }
        }
        // Query term lists are short, so a linear scan for the smallest doc id beats a heap.
        loop {
            let doc = cursors
                .iter()
                .map(|(p, _)| p.doc())
                .min()
                .unwrap_or(TERMINATED);
            if doc == TERMINATED {
                return Ok(());
            }
            let norm = self.norms[usize::from(fieldnorms.fieldnorm_id(doc))];
            let mut score: Score = 0.0;
            for (postings, weight) in cursors.iter_mut() {
                if postings.doc() == doc {
                    let tf = postings.term_freq() as Score;
                    score += *weight * (tf / (tf + norm));
                    postings.advance();
                }
            }
            f(doc, score);
        }
    }
}
