//! The query pipeline: one request type, [`SearchRequest`], run by [`QueryPipeline`]
//! against a collection with the model registry. It owns every decision around the
//! search itself, so the HTTP route and the benchmarks only convert into it:
//!
//! - **Mode.** A named mode wins. Otherwise a vector alone runs dense, a vector and text
//!   run hybrid, and text alone runs hybrid when the collection has an embedding model,
//!   else sparse.
//! - **Query embedding.** Dense and hybrid searches without a vector embed the text with
//!   the collection's model and instruction: the request's `task`, else the
//!   collection's, else [`DEFAULT_TASK`](crate::models::DEFAULT_TASK).
//! - **Matryoshka dims.** A query vector is at the collection's `dim`: embedded text is
//!   cut to it (truncate, then L2-normalize, as documents are), a supplied vector must
//!   have exactly that length. The engine searches the graphs at `index_dim` and
//!   rescores the top `rescore` candidates at `dim`.
//! - **Rerank.** The search runs `max(top_k, candidates)` deep; the fused top
//!   `candidates` are scored by the collection's reranker and reordered by that score
//!   (ties keep their fused order); hits past them follow in fused order; the list is
//!   cut to `top_k`. A reranked hit's score is the reranker's.
//! - **Timings.** Embedding, each engine stage ([`QueryTimings`]) and reranking.
//!
//! Checks that need no collection ([`SearchRequest::validate`]) can run first, so a
//! caller reports a malformed request before it looks the collection up.

use std::time::{Duration, Instant};

use quiver_core::{CollectionConfig, Filter};
use quiver_embed::ModelRegistry;

use crate::models::{embed_query, rerank, RerankedHit};
use crate::query::{
    ChunkScore, Fusion, GroupBy, Query, QueryHit, QueryMode, QueryTimings, Reranked,
};
use crate::{Collection, EngineError, Result};

/// Fused candidates the reranker scores when a request names no number.
pub const DEFAULT_RERANK_CANDIDATES: usize = 50;

/// Reranking asked for by a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerankRequest {
    /// Fused candidates the reranker scores, at least 1.
    pub candidates: usize,
    /// Instruction for the reranker (default: the model's own).
    pub instruction: Option<String>,
}

impl Default for RerankRequest {
    fn default() -> Self {
        RerankRequest {
            candidates: DEFAULT_RERANK_CANDIDATES,
            instruction: None,
        }
    }
}

/// A search as a client asks for it: what [`QueryPipeline::run`] turns into a
/// [`Query`] and the model steps around it.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// `None`: chosen from what is given (see the module docs).
    pub mode: Option<QueryMode>,
    /// Query vector at the collection's `dim`.
    pub vector: Option<Vec<f32>>,
    pub text: Option<String>,
    pub top_k: usize,
    pub filter: Option<Filter>,
    pub fusion: Fusion,
    /// HNSW search width (default: the collection's `ef_search`).
    pub ef: Option<usize>,
    /// Brute-force dense ranking (see [`Query::exact`]).
    pub exact: bool,
    pub explain: bool,
    /// Mark the query's words in the hits (see [`Query::highlight`]).
    pub highlight: bool,
    /// One hit per document or per chunk (see [`Query::group_by`]).
    pub group_by: GroupBy,
    /// How a document scores by its chunks (see [`Query::chunk_score`]).
    pub chunk_score: ChunkScore,
    /// Instruction for embedding the query text.
    pub task: Option<String>,
    pub rerank: Option<RerankRequest>,
}

impl SearchRequest {
    /// A request for `top_k` hits with nothing else set.
    pub fn new(top_k: usize) -> Self {
        SearchRequest {
            mode: None,
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
            task: None,
            rerank: None,
        }
    }

    fn has_text(&self) -> bool {
        self.text.as_deref().is_some_and(|t| !t.trim().is_empty())
    }

    /// The mode the request names or implies; text alone is settled against the
    /// collection later (see [`QueryPipeline::run`]).
    fn stated_mode(&self) -> Result<QueryMode> {
        Ok(match (self.mode, &self.vector, &self.text) {
            (Some(m), ..) => m,
            (None, Some(_), Some(_)) => QueryMode::Hybrid,
            (None, Some(_), None) => QueryMode::Dense,
            (None, None, Some(_)) => QueryMode::Sparse,
            (None, None, None) => return Err(invalid("a query needs text or a vector")),
        })
    }

    /// The checks that need no collection: something to search with, text where the
    /// mode needs it, a candidate count for reranking.
    pub fn validate(&self) -> Result<()> {
        let mode = self.stated_mode()?;
        if mode != QueryMode::Dense && !self.has_text() {
            return Err(invalid("sparse and hybrid queries need a non-empty text"));
        }
        if mode == QueryMode::Dense && self.vector.is_none() && !self.has_text() {
            return Err(invalid("a dense query needs a vector or a non-empty text"));
        }
        if self.rerank.as_ref().is_some_and(|r| r.candidates == 0) {
            return Err(invalid("rerank.candidates must be at least 1"));
        }
        Ok(())
    }

    /// The mode that runs against a collection configured as `config`.
    pub fn mode_for(&self, config: &CollectionConfig) -> Result<QueryMode> {
        let auto = self.mode.is_none() && self.vector.is_none();
        if auto && config.embedding_model.is_some() {
            return Ok(QueryMode::Hybrid);
        }
        self.stated_mode()
    }
}

/// Time spent per stage of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SearchTimings {
    /// Checking the request against the collection and embedding the query text.
    pub embed: Duration,
    /// The engine's stages.
    pub engine: QueryTimings,
    /// Scoring and reordering the candidates with the reranker.
    pub rerank: Duration,
}

/// Hits best first (reranked ones carry [`Explain::rerank`](crate::Explain::rerank)
/// when explanations are on), and timings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResult {
    pub hits: Vec<QueryHit>,
    pub timings: SearchTimings,
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidInput(msg.into())
}

/// Runs [`SearchRequest`]s with the models of one registry.
#[derive(Debug, Clone, Copy)]
pub struct QueryPipeline<'a> {
    models: &'a ModelRegistry,
}

impl<'a> QueryPipeline<'a> {
    pub fn new(models: &'a ModelRegistry) -> Self {
        QueryPipeline { models }
    }

    /// Embeds `text` as a query for a collection configured as `config`, with `task`
    /// (else the collection's instruction, else the default), cut to its `dim`.
    pub fn embed_query(
        &self,
        config: &CollectionConfig,
        text: &str,
        task: Option<&str>,
    ) -> Result<Vec<f32>> {
        embed_query(self.models, config, text, task)
    }

    /// Checks `req` against the collection's models and settles its mode; embeds the
    /// query text when the mode needs a vector and none was sent.
    fn prepare(&self, req: &SearchRequest, config: &CollectionConfig) -> Result<Query> {
        req.validate()?;
        if req.rerank.is_some() && config.reranker_model.is_none() {
            return Err(EngineError::Unsupported(
                "rerank needs a reranker_model on the collection; this collection has none".into(),
            ));
        }
        if req.rerank.is_some() && !req.has_text() {
            return Err(invalid("rerank needs the query text"));
        }
        let mode = req.mode_for(config)?;
        let vector = match (&req.vector, mode) {
            (v, QueryMode::Sparse) => v.clone(),
            (Some(v), _) => Some(v.clone()),
            (None, _) if config.embedding_model.is_none() => {
                return Err(EngineError::Unsupported(format!(
                    "{mode:?} search needs a query vector: this collection has no \
                     embedding_model; send a vector, or use mode \"sparse\""
                )));
            }
            (None, _) => {
                let text = req.text.as_deref().unwrap_or_default();
                Some(self.embed_query(config, text, req.task.as_deref())?)
            }
        };
        let top_k = match &req.rerank {
            Some(r) => req.top_k.max(r.candidates),
            None => req.top_k,
        };
        Ok(Query {
            mode,
            vector,
            text: req.text.clone(),
            top_k,
            filter: req.filter.clone(),
            fusion: req.fusion,
            ef: req.ef,
            exact: req.exact,
            explain: req.explain,
            // The reranker reads a keyword-only hit's chunk with the most marked words.
            highlight: req.highlight || req.rerank.is_some(),
            group_by: req.group_by,
            chunk_score: req.chunk_score,
        })
    }

    /// Runs `req` against `collection`: mode, embedding, search, rerank.
    pub fn run(&self, collection: &Collection, req: &SearchRequest) -> Result<SearchResult> {
        let config = collection.config();
        let t = Instant::now();
        let query = self.prepare(req, &config)?;
        let embed = t.elapsed();
        let result = collection.query(&query)?;
        let mut timings = SearchTimings {
            embed,
            engine: result.timings,
            rerank: Duration::ZERO,
        };
        let mut hits = result.hits;
        if let (Some(r), Some(model)) = (&req.rerank, &config.reranker_model) {
            let t = Instant::now();
            let tail = hits.split_off(r.candidates.min(hits.len()));
            let head = hits.len();
            let text = req.text.as_deref().unwrap_or_default();
            let reranked = rerank(
                self.models,
                model,
                text,
                r.instruction.as_deref(),
                hits,
                head,
            )?;
            hits = reranked
                .into_iter()
                .map(
                    |RerankedHit {
                         mut hit,
                         score,
                         rank_before,
                     }| {
                        hit.score = score;
                        if let Some(e) = &mut hit.explain {
                            e.rerank = Some(Reranked { score, rank_before });
                        }
                        hit
                    },
                )
                .chain(tail)
                .collect();
            timings.rerank = t.elapsed();
        }
        hits.truncate(req.top_k);
        if !req.highlight {
            for h in &mut hits {
                h.highlights.clear();
            }
        }
        Ok(SearchResult { hits, timings })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(mode: Option<QueryMode>, vector: bool, text: Option<&str>) -> SearchRequest {
        SearchRequest {
            mode,
            vector: vector.then(|| vec![1.0, 0.0]),
            text: text.map(String::from),
            ..SearchRequest::new(5)
        }
    }

    #[test]
    fn modes_follow_what_is_given_and_the_collection() {
        let plain = CollectionConfig::new(2);
        let mut embeds = CollectionConfig::new(2);
        embeds.embedding_model = Some("org/model".into());
        let cases = [
            (req(None, true, None), QueryMode::Dense, QueryMode::Dense),
            (
                req(None, true, Some("t")),
                QueryMode::Hybrid,
                QueryMode::Hybrid,
            ),
            (
                req(None, false, Some("t")),
                QueryMode::Sparse,
                QueryMode::Hybrid,
            ),
            (
                req(Some(QueryMode::Sparse), false, Some("t")),
                QueryMode::Sparse,
                QueryMode::Sparse,
            ),
            (
                req(Some(QueryMode::Dense), false, Some("t")),
                QueryMode::Dense,
                QueryMode::Dense,
            ),
        ];
        for (r, without, with) in cases {
            r.validate().unwrap();
            assert_eq!(r.mode_for(&plain).unwrap(), without, "{r:?}");
            assert_eq!(r.mode_for(&embeds).unwrap(), with, "{r:?}");
        }
    }

    #[test]
    fn requests_without_what_their_mode_needs_are_refused() {
        let bad = [
            req(None, false, None),
            req(Some(QueryMode::Sparse), true, None),
            req(Some(QueryMode::Hybrid), true, Some("  ")),
            req(Some(QueryMode::Dense), false, Some(" ")),
            SearchRequest {
                rerank: Some(RerankRequest {
                    candidates: 0,
                    instruction: None,
                }),
                ..req(None, false, Some("t"))
            },
        ];
        for r in bad {
            assert!(r.validate().unwrap_err().is_invalid_input(), "{r:?}");
        }
    }
}
