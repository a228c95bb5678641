//! The JSON shapes of the HTTP API: request and response bodies. They derive
//! `ToSchema` so `/openapi.json` describes exactly what the routes parse; requests deny
//! unknown fields so a misspelt option is an error rather than silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// How a collection compares vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DistanceName {
    #[default]
    Cosine,
    Dot,
    L2,
}

impl From<DistanceName> for quiver_core::Distance {
    fn from(d: DistanceName) -> Self {
        match d {
            DistanceName::Cosine => quiver_core::Distance::Cosine,
            DistanceName::Dot => quiver_core::Distance::Dot,
            DistanceName::L2 => quiver_core::Distance::L2,
        }
    }
}

impl From<quiver_core::Distance> for DistanceName {
    fn from(d: quiver_core::Distance) -> Self {
        match d {
            quiver_core::Distance::Cosine => DistanceName::Cosine,
            quiver_core::Distance::Dot => DistanceName::Dot,
            quiver_core::Distance::L2 => DistanceName::L2,
        }
    }
}

/// HNSW graph parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HnswParams {
    /// Links per node (2..=128, default 16).
    pub m: Option<usize>,
    /// Candidate list size while building (1..=4096, default 200).
    pub ef_construction: Option<usize>,
    /// Candidate list size while searching (1..=4096, default 64).
    pub ef_search: Option<usize>,
}

/// BM25 scoring parameters of keyword search.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bm25Params {
    /// Term frequency saturation, >= 0 (default 1.2): 0 counts a word once however often
    /// a document holds it; larger values let repeats weigh more.
    pub k1: Option<f32>,
    /// Length normalization, 0..=1 (default 0.75): 0 ignores document length, 1 scales
    /// fully by it.
    pub b: Option<f32>,
}

/// Where chunk boundaries may fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChunkStrategyName {
    /// Prefer paragraph breaks, then sentence ends, then gaps between words.
    #[default]
    Sentence,
    /// Exactly `max_tokens` tokens per chunk.
    Tokens,
}

impl From<ChunkStrategyName> for quiver_core::ChunkStrategy {
    fn from(s: ChunkStrategyName) -> Self {
        match s {
            ChunkStrategyName::Sentence => quiver_core::ChunkStrategy::Sentence,
            ChunkStrategyName::Tokens => quiver_core::ChunkStrategy::Tokens,
        }
    }
}

impl From<quiver_core::ChunkStrategy> for ChunkStrategyName {
    fn from(s: quiver_core::ChunkStrategy) -> Self {
        match s {
            quiver_core::ChunkStrategy::Sentence => ChunkStrategyName::Sentence,
            quiver_core::ChunkStrategy::Tokens => ChunkStrategyName::Tokens,
        }
    }
}

/// How texts embedded on ingest are cut into chunks, in the embedding model's tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChunkingParams {
    /// Longest chunk (default, and most: the model's input limit).
    pub max_tokens: Option<usize>,
    /// Tokens each chunk repeats from the one before (default an eighth of
    /// `max_tokens`; less than `max_tokens`).
    pub overlap_tokens: Option<usize>,
    /// `sentence` (default) or `tokens`.
    pub strategy: Option<ChunkStrategyName>,
}

/// `chunking` of a new collection: settings, `true` for the defaults, `false` to embed
/// each text whole (truncated to the model's input).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ChunkingRequest {
    Switch(bool),
    Params(ChunkingParams),
}

/// Analyzer of a collection's keyword index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnalyzerName {
    /// English, as Lucene's English analyzer: Unicode words, possessives dropped,
    /// lowercase, stop words, Snowball stemming.
    #[default]
    En,
    /// Lowercased words.
    Simple,
    /// Chinese/Japanese/Korean aware.
    Cjk,
}

impl From<AnalyzerName> for quiver_core::TextAnalyzer {
    fn from(a: AnalyzerName) -> Self {
        match a {
            AnalyzerName::En => quiver_core::TextAnalyzer::En,
            AnalyzerName::Simple => quiver_core::TextAnalyzer::Simple,
            AnalyzerName::Cjk => quiver_core::TextAnalyzer::Cjk,
        }
    }
}

impl From<quiver_core::TextAnalyzer> for AnalyzerName {
    fn from(a: quiver_core::TextAnalyzer) -> Self {
        match a {
            quiver_core::TextAnalyzer::En => AnalyzerName::En,
            quiver_core::TextAnalyzer::Simple => AnalyzerName::Simple,
            quiver_core::TextAnalyzer::Cjk => AnalyzerName::Cjk,
        }
    }
}

/// Body of `PUT /collections/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    /// Stored vector length; required when there is no `embedding_model`.
    pub dim: Option<usize>,
    #[serde(default)]
    pub distance: DistanceName,
    /// Model that embeds texts posted without a vector.
    pub embedding_model: Option<String>,
    /// Shorter Matryoshka prefix to index (at most `dim`).
    pub index_dim: Option<usize>,
    /// Instruction used when embedding queries.
    pub task: Option<String>,
    /// Model that reranks fused candidates.
    pub reranker_model: Option<String>,
    /// Candidates rescored at full `dim` when `index_dim` is shorter (default 100).
    pub rescore: Option<usize>,
    /// Text analyzer for keyword search (default `en`).
    pub analyzer: Option<AnalyzerName>,
    pub hnsw: Option<HnswParams>,
    /// BM25 scoring of keyword search; may differ per collection.
    pub bm25: Option<Bm25Params>,
    /// Cutting long texts into chunks embedded one by one; on by default when the
    /// collection has an `embedding_model`, not available without one.
    pub chunking: Option<ChunkingRequest>,
}

/// Body of `PATCH /collections/{name}`: the settings that may change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCollection {
    /// New chunking (as at creation); accepted only while the collection is empty.
    pub chunking: Option<ChunkingRequest>,
}

/// A collection's stored settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionConfigView {
    pub dim: usize,
    pub distance: DistanceName,
    pub embedding_model: Option<String>,
    pub index_dim: Option<usize>,
    pub rescore: usize,
    pub task: Option<String>,
    pub reranker_model: Option<String>,
    pub analyzer: AnalyzerName,
    pub hnsw: HnswParams,
    pub bm25: Bm25Params,
    /// Absent when texts are embedded whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking: Option<ChunkingParams>,
}

impl From<&quiver_core::CollectionConfig> for CollectionConfigView {
    fn from(c: &quiver_core::CollectionConfig) -> Self {
        CollectionConfigView {
            dim: c.dim,
            distance: c.distance.into(),
            embedding_model: c.embedding_model.clone(),
            index_dim: c.index_dim,
            rescore: c.rescore,
            task: c.task.clone(),
            reranker_model: c.reranker_model.clone(),
            analyzer: c.analyzer.into(),
            hnsw: HnswParams {
                m: Some(c.hnsw.m),
                ef_construction: Some(c.hnsw.ef_construction),
                ef_search: Some(c.hnsw.ef_search),
            },
            bm25: Bm25Params {
                k1: Some(c.bm25.k1),
                b: Some(c.bm25.b),
            },
            chunking: c.chunking.map(|ch| ChunkingParams {
                max_tokens: Some(ch.max_tokens),
                overlap_tokens: Some(ch.overlap_tokens),
                strategy: Some(ch.strategy.into()),
            }),
        }
    }
}

/// Body of `GET /collections/{name}` (also returned by create).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionInfo {
    pub name: String,
    pub config: CollectionConfigView,
    /// Visible documents.
    pub count: usize,
    /// Live immutable segments.
    pub segments: usize,
    /// Documents and deletes not yet sealed into a segment.
    pub memtable_entries: usize,
    /// LSN of the last write.
    pub last_lsn: u64,
    /// Every write at or below this LSN is in a segment.
    pub checkpoint_lsn: u64,
    /// True after a failed WAL sync: writes are refused until a restart.
    pub read_only: bool,
    /// Background seals and compactions.
    pub maintenance: MaintenanceView,
    /// Bytes the collection takes on disk (segments, WAL, text index, manifest).
    pub disk_bytes: u64,
}

/// What background maintenance is doing, and has done since the collection opened.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceView {
    /// Full memtables waiting for their seal (0 or 1); searchable meanwhile.
    pub queued_memtables: usize,
    /// A seal is writing a segment now.
    pub sealing: bool,
    /// A compaction is merging segments now.
    pub compacting: bool,
    pub seals: u64,
    pub failed_seals: u64,
    pub compactions: u64,
    /// Writes that waited for a seal to make room, and their total wait.
    pub write_stalls: u64,
    pub write_stall_seconds: f64,
}

/// One entry of `GET /collections`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionSummary {
    pub name: String,
    pub dim: usize,
    pub distance: DistanceName,
    pub count: usize,
    /// The model that embeds texts on ingest, if any.
    pub embedding_model: Option<String>,
    /// The model that reranks hybrid candidates, if any.
    pub reranker_model: Option<String>,
    /// Live immutable segments.
    pub segments: usize,
    /// Bytes the collection takes on disk.
    pub disk_bytes: u64,
}

/// Body of `GET /collections`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionList {
    pub collections: Vec<CollectionSummary>,
}

/// Body of `DELETE /collections/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}

/// Body of `POST /collections/{name}/flush`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Flushed {
    /// Whether the in-memory segment held anything and was sealed.
    pub sealed: bool,
}

/// A document as posted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    /// Upsert key: a later write of the same id replaces this one.
    pub id: String,
    #[serde(default)]
    pub text: String,
    /// Any JSON object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, Value>,
    /// Required until the collection has an embedding model.
    pub vector: Option<Vec<f32>>,
}

/// Body of `POST /collections/{name}/documents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    pub documents: Vec<DocumentIn>,
}

/// Answer to an upsert: the WAL record's LSN, once durable per the sync policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpsertResponse {
    pub lsn: u64,
    pub upserted: usize,
}

/// Body of `GET /collections/{name}/documents/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentOut {
    pub id: String,
    pub text: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, Value>,
    pub vector: Vec<f32>,
    /// The document's chunks, with `?chunks=true`, for a document stored in chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<Vec<ChunkOut>>,
}

/// One chunk of a document or hit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChunkOut {
    /// Number of the chunk in its document (text order, from 0).
    pub chunk: usize,
    /// `[start, end)` character range in the document's text (Unicode scalar values,
    /// like `highlights`).
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// On a hit: the chunk's dense similarity, or for a hit only keyword search found
    /// its BM25 as a passage; with `group_by: chunk`, the hit's score. Absent in a
    /// document's chunk list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

impl From<quiver_engine::HitChunk> for ChunkOut {
    fn from(c: quiver_engine::HitChunk) -> Self {
        ChunkOut {
            chunk: c.chunk,
            start: c.start,
            end: c.end,
            text: c.text,
            score: c.score,
        }
    }
}

/// A document as a page of `GET /collections/{name}/documents` lists it (no vector).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentBrief {
    pub id: String,
    pub text: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, Value>,
}

/// Query of `GET /collections/{name}/documents/{id}`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct GetQuery {
    /// Include the document's chunks (`chunks=true`); a document stored whole has none.
    #[serde(default)]
    pub chunks: bool,
}

/// Query of `GET /collections/{name}/documents`.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Documents per page (default 50, at most 1000).
    pub limit: Option<usize>,
    /// Start after this id (the previous page's `next`); omitted for the first page.
    pub after: Option<String>,
}

/// Body of `GET /collections/{name}/documents`: documents in id order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentPage {
    pub documents: Vec<DocumentBrief>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// One installed model, as `GET /models` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    /// The name collections and requests use.
    pub name: String,
    /// `embedding` or `reranking`; `null` for a checkpoint Quiver cannot serve.
    pub kind: Option<String>,
    /// Width of the model's hidden states (the embedding dimension of an embedder).
    pub dim: Option<u64>,
    /// Longest input the model accepts, in tokens.
    pub max_tokens: Option<u64>,
    /// Bytes of the model's files.
    pub bytes: u64,
}

/// Body of `GET /models`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelInfo>,
}

/// Answer to a document delete.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeleteResponse {
    pub lsn: u64,
    pub deleted: bool,
}

/// Which candidate lists a query uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueryMode {
    /// Vector similarity only.
    Dense,
    /// Keyword (BM25) only.
    Sparse,
    /// Both, fused.
    Hybrid,
}

/// How dense and sparse candidates are fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FusionMethod {
    /// Reciprocal rank fusion.
    Rrf,
    /// Min-max normalized scores mixed by `alpha`.
    Weighted,
}

/// Fusion settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fusion {
    pub method: FusionMethod,
    /// RRF constant (default 60).
    pub k: Option<f32>,
    /// Weight of the dense scores in weighted fusion, 0..=1.
    pub alpha: Option<f32>,
}

/// `true`/`false`, or options.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Rerank {
    Enabled(bool),
    Options(RerankOptions),
}

/// Rerank settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerankOptions {
    /// Rerank at all (default true when options are given).
    pub enabled: Option<bool>,
    /// How many fused candidates the reranker scores (default 50).
    #[serde(alias = "top_n")]
    pub candidates: Option<usize>,
    /// Instruction for the reranker (default: the model's own).
    pub instruction: Option<String>,
}

/// Body of `POST /collections/{name}/query`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub text: Option<String>,
    pub vector: Option<Vec<f32>>,
    /// Default: `dense` for a vector alone, `hybrid` for text and a vector, and for text
    /// alone `hybrid` when the collection has an embedding model, else `sparse`.
    pub mode: Option<QueryMode>,
    /// Hits to return (default 10).
    pub top_k: Option<usize>,
    /// Metadata filter: `{"must": [...], "should": [...], "must_not": [...]}`.
    #[schema(value_type = Object)]
    pub filter: Option<Value>,
    pub fusion: Option<Fusion>,
    pub rerank: Option<Rerank>,
    /// Instruction used to embed the query text.
    pub task: Option<String>,
    /// HNSW search width for this query (default: the collection's `ef_search`).
    pub ef: Option<usize>,
    /// Rank the dense list by brute force over every visible document that passes the
    /// filter, instead of walking the HNSW graphs: exact nearest neighbours with the
    /// same scores (useful for measuring recall), at the cost of a full scan. `ef` is
    /// then unused; the sparse list is exact either way.
    #[serde(default)]
    pub exact: bool,
    /// Report per-stage ranks and scores on every hit.
    #[serde(default)]
    pub explain: bool,
    /// Mark the query's words in sparse and hybrid hits (`highlights`; default true).
    /// Each returned text is read through the analyzer: turn it off when many long hits
    /// are asked for and the marks are not shown.
    #[serde(default = "yes")]
    pub highlight: bool,
    /// `document` (default): one hit per document; `chunk`: one hit per matching chunk
    /// of documents stored in chunks (a document may appear once per chunk).
    #[serde(default)]
    pub group_by: GroupByName,
    /// How a document stored in chunks gets its dense score: `max` (default, its best
    /// chunk) or `sum` (of its best three chunks found).
    #[serde(default)]
    pub chunk_score: ChunkScoreName,
}

/// What a hit is, for documents stored in chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupByName {
    #[default]
    Document,
    Chunk,
}

/// How a document's dense score comes from its chunks'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChunkScoreName {
    #[default]
    Max,
    Sum,
}

fn yes() -> bool {
    true
}

/// One query hit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryHit {
    pub id: String,
    /// Higher is closer.
    pub score: f32,
    pub text: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, Value>,
    /// Per-stage ranks and scores, when `explain` was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<ExplainOut>,
    /// Sparse and hybrid hits: `[start, end)` character ranges of `text` (Unicode scalar
    /// values, as Python indexes strings) holding the query's words, found with the
    /// collection's analyzer (so `flows` matches `flow`). Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub highlights: Vec<[usize; 2]>,
    /// For a document stored in chunks: the chunks that matched, best first (the
    /// dense search's, by similarity; for a hit only keyword search found, the chunk
    /// that scores best as a passage; with `group_by: chunk`, the hit's chunk). Left out
    /// for documents stored whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkOut>,
}

/// A hit's place in one candidate list.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct StageOut {
    /// 1-based position in the list.
    pub rank: usize,
    pub score: f32,
}

/// Why a hit ranked where it did.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct ExplainOut {
    /// Place in the dense (vector) list, if it was there.
    pub dense: Option<StageOut>,
    /// Place in the sparse (BM25) list, if it was there.
    pub sparse: Option<StageOut>,
    /// Fused score (hybrid queries).
    pub fused: Option<f32>,
    /// The reranker's score and the hit's place before reranking, when reranked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankOut>,
    /// For a document stored in chunks: the number of the chunk that won (its dense
    /// score, and what the reranker read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<usize>,
}

/// A hit's reranking.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct RerankOut {
    /// The reranker's relevance score (also the hit's `score`).
    pub score: f32,
    /// 1-based place in the fused list before reranking.
    pub rank_before: usize,
}

/// Body of a query answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryResponse {
    pub hits: Vec<QueryHit>,
    /// Milliseconds per stage (`embed`, `filter`, `dense`, `dense_index`, `sparse`,
    /// `fusion`, `fetch`, `rerank`, `total`). `dense_index` is the part of `dense` spent
    /// inside the per-segment index searches themselves, summed over segments.
    pub timings_ms: BTreeMap<String, f64>,
}

/// Body of `GET /health` and `GET /ready`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub status: String,
}
