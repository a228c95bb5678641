//! Query requests and results: dense (HNSW), sparse (BM25) and hybrid (both, fused).
//!
//! A [`Query`] names its mode; dense and hybrid need a vector, sparse and hybrid need
//! text. The metadata filter applies to every mode: it is compiled once per query
//! into one allowed-row set per segment and memtable, which both the graph walk and
//! the BM25 scoring loop consult. Results carry the stored text and metadata and,
//! when `explain` is set, each hit's rank and score in the dense and sparse lists and
//! its fused score; [`QueryTimings`] reports where the time went.

use std::time::Duration;

use std::ops::Range;

use quiver_core::{Document, Filter, Metadata};
pub use quiver_index::{Fusion, StageHit, DEFAULT_RRF_K};

/// Which searches a query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryMode {
    /// Nearest neighbours of the query vector (HNSW).
    #[default]
    Dense,
    /// BM25 over the query text.
    Sparse,
    /// Both, fused by the query's [`Fusion`].
    Hybrid,
}

/// What a hit is when documents are stored in chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// One hit per document, scored by its chunks ([`ChunkScore`]).
    #[default]
    Document,
    /// One hit per chunk: a document may appear once per chunk that matched, each hit
    /// reporting its chunk. Keyword search scores each chunk of its hits as a passage.
    Chunk,
}

/// How a document's dense score comes from its chunks' (with [`GroupBy::Document`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkScore {
    /// The best chunk's similarity.
    #[default]
    Max,
    /// The sum of the best [`SUM_CHUNKS`] chunks' similarities the search found: a
    /// document that matches in several places ranks above one that matches once.
    Sum,
}

/// Chunks [`ChunkScore::Sum`] adds up, at most.
pub const SUM_CHUNKS: usize = 3;

/// Candidates each list contributes to a hybrid fusion, at least.
pub const HYBRID_CANDIDATES: usize = 100;
/// Largest `top_k` a query may ask for.
pub const MAX_TOP_K: usize = quiver_core::MAX_RESCORE;

/// One query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub mode: QueryMode,
    /// Query vector at the collection's full `dim` (dense and hybrid).
    pub vector: Option<Vec<f32>>,
    /// Query text (sparse and hybrid).
    pub text: Option<String>,
    /// Results wanted, 1..=[`MAX_TOP_K`].
    pub top_k: usize,
    /// Metadata filter every hit must match.
    pub filter: Option<Filter>,
    /// How hybrid queries merge the two lists.
    pub fusion: Fusion,
    /// HNSW search width for this query (default: the collection's `ef_search`).
    pub ef: Option<usize>,
    /// Rank the dense list by brute force over every visible, allowed document
    /// instead of walking the graphs: exact results (the ground truth recall is
    /// measured against) with the same scores, at the cost of a full scan. The
    /// sparse list is exact already and does not change.
    pub exact: bool,
    /// Report per-stage ranks and scores on every hit.
    pub explain: bool,
    /// Read the returned texts through the analyzer: marks the query's words in sparse
    /// and hybrid hits ([`QueryHit::highlights`]) and picks the chunk a keyword-only hit
    /// of a chunked document reports (else its first). With many long hits that costs
    /// more than the search.
    pub highlight: bool,
    /// One hit per document or per chunk.
    pub group_by: GroupBy,
    /// How a document scores by its chunks.
    pub chunk_score: ChunkScore,
}

impl Query {
    fn base(mode: QueryMode, top_k: usize) -> Self {
        Query {
            mode,
            vector: None,
            text: None,
            top_k,
            filter: None,
            fusion: Fusion::default(),
            ef: None,
            exact: false,
            explain: false,
            highlight: true,
            group_by: GroupBy::Document,
            chunk_score: ChunkScore::Max,
        }
    }

    /// A dense query.
    pub fn dense(vector: Vec<f32>, top_k: usize) -> Self {
        Query {
            vector: Some(vector),
            ..Self::base(QueryMode::Dense, top_k)
        }
    }

    /// A sparse (BM25) query.
    pub fn sparse(text: impl Into<String>, top_k: usize) -> Self {
        Query {
            text: Some(text.into()),
            ..Self::base(QueryMode::Sparse, top_k)
        }
    }

    /// A hybrid query.
    pub fn hybrid(vector: Vec<f32>, text: impl Into<String>, top_k: usize) -> Self {
        Query {
            vector: Some(vector),
            text: Some(text.into()),
            ..Self::base(QueryMode::Hybrid, top_k)
        }
    }

    /// The same query with `filter`.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// The same query with exact (brute-force) dense ranking on or off.
    pub fn with_exact(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }

    /// The same query with explanations on.
    pub fn explained(mut self) -> Self {
        self.explain = true;
        self
    }
}

/// Why a hit ranked where it did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Explain {
    /// Rank and score in the dense list, if the dense search found it.
    pub dense: Option<StageHit>,
    /// Rank and BM25 score in the sparse list, if the text search found it.
    pub sparse: Option<StageHit>,
    /// Fused score (hybrid queries only).
    pub fused: Option<f32>,
    /// The reranker's verdict, when the hit was reranked (see [`crate::QueryPipeline`]).
    pub rerank: Option<Reranked>,
    /// The chunk that gave a chunked document its dense score (or, without one, the
    /// chunk the hit reports first): its number in the document.
    pub chunk: Option<usize>,
}

/// A hit's reranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reranked {
    /// The reranker's relevance score, 0..=1 (also the hit's score).
    pub score: f32,
    /// 1-based place in the fused list before reranking.
    pub rank_before: usize,
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryHit {
    pub id: String,
    /// Dense: similarity; sparse: BM25; hybrid: fused score. Higher is better.
    pub score: f32,
    pub text: String,
    pub metadata: Metadata,
    /// Present when the query asked for explanations.
    pub explain: Option<Explain>,
    /// Sparse and hybrid hits: where `text` holds the query's words, as character ranges
    /// `[start, end)` found with the collection's analyzer; empty for dense hits.
    pub highlights: Vec<[usize; 2]>,
    /// For a document stored in chunks: the chunks that matched, best first: those the
    /// dense search found, by similarity, or for a hit only the keyword search found
    /// the chunk that scores best as a passage; with [`GroupBy::Chunk`] the hit's own
    /// chunk. Empty for documents stored whole.
    pub chunks: Vec<HitChunk>,
}

/// A chunk of a hit's document.
#[derive(Debug, Clone, PartialEq)]
pub struct HitChunk {
    /// The chunk's number in its document (text order, from 0).
    pub chunk: usize,
    /// Character range `[start, end)` of the chunk in the hit's `text` (code points,
    /// like `highlights`).
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// On a hit: the chunk's dense similarity, or its BM25 as a passage for a
    /// keyword-only hit, or with [`GroupBy::Chunk`] the hit's score. `None` in a
    /// document's chunk list.
    pub score: Option<f32>,
}

impl HitChunk {
    /// Chunk `n` of a document whose text is `text`, its span in bytes; `chars` turns
    /// byte offsets of `text` into character offsets.
    pub(crate) fn new(
        text: &str,
        n: usize,
        span: &Range<usize>,
        score: Option<f32>,
        chars: &dyn Fn(usize) -> usize,
    ) -> Self {
        HitChunk {
            chunk: n,
            start: chars(span.start),
            end: chars(span.end),
            text: text.get(span.clone()).unwrap_or_default().to_string(),
            score,
        }
    }
}

/// Every chunk of a stored document, as hits report them (no scores; empty for a
/// document stored whole).
pub fn document_chunks(doc: &Document) -> Vec<HitChunk> {
    let chars = CharOffsets::new(&doc.text);
    doc.chunks
        .iter()
        .enumerate()
        .map(|(n, c)| HitChunk::new(&doc.text, n, &(c.start..c.end), None, &|b| chars.of(b)))
        .collect()
}

/// Byte offsets of a text turned into character offsets.
pub(crate) struct CharOffsets {
    /// Byte offset of every character boundary, in order.
    bounds: Vec<usize>,
}

impl CharOffsets {
    pub(crate) fn new(text: &str) -> Self {
        let mut bounds: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bounds.push(text.len());
        CharOffsets { bounds }
    }

    /// Characters before byte `b` (a boundary; else the boundaries below it).
    pub(crate) fn of(&self, b: usize) -> usize {
        self.bounds.partition_point(|&x| x < b)
    }
}

/// Time spent per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryTimings {
    /// Compiling the filter into allowed-row sets.
    pub filter: Duration,
    /// The whole dense stage: memtable and segment searches, merging, ranking.
    pub dense: Duration,
    /// The part of `dense` spent inside the searches of the segments and memtables
    /// themselves (graph walks, or brute-force scans with `exact`), summed: what
    /// remains of `dense` is the query path's own overhead.
    pub dense_index: Duration,
    pub sparse: Duration,
    pub fusion: Duration,
    /// Reading the hits' text and metadata.
    pub fetch: Duration,
}

/// Hits best first, and timings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResult {
    pub hits: Vec<QueryHit>,
    pub timings: QueryTimings,
}
