//! The steps of ingest and query that need a model: embedding documents that arrive
//! without a vector, embedding query text, and reranking fused candidates.
//!
//! Models come from a shared [`ModelRegistry`], so every collection naming the same model
//! shares one loaded instance and one batching queue. Embeddings are cut to the
//! collection's Matryoshka `dim` (truncate, then L2-normalize) before they are stored, so
//! the write-ahead log carries exactly the vectors the indexes hold and recovery never runs
//! a model.

use std::ops::Range;

use quiver_core::{ChunkingConfig, CollectionConfig, DocChunk, Document, Metadata};
use quiver_embed::{
    chunk_tokens, truncate_normalize, EmbedError, ModelRegistry, Priority, TextEmbedder,
};

use crate::query::QueryHit;
use crate::{EngineError, Result};

/// Instruction used for queries when neither the request nor the collection sets one.
pub const DEFAULT_TASK: &str =
    "Given a web search query, retrieve relevant passages that answer the query";

/// A document as a client sends it: the vector is optional when the collection embeds.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    pub id: String,
    pub text: String,
    pub metadata: Metadata,
    pub vector: Option<Vec<f32>>,
}

fn model_error(e: EmbedError) -> EngineError {
    EngineError::Model(e)
}

/// Gives every document a vector: supplied ones are kept as they are (the upsert checks
/// them), missing ones are embedded as documents (no instruction) with the collection's
/// model at bulk priority. A document without a vector in a collection without a model
/// is invalid input.
///
/// With `chunking`, a text longer than one chunk is cut by the model's tokenizer
/// ([`chunk_tokens`]) and each chunk is embedded: the document gets one vector per chunk
/// and the first chunk's as its own. Each chunk's text is tokenized again to embed it,
/// which can differ from the cut by a token at its edges (a word piece read as a word
/// start); the model truncates the rare chunk that grows past its input.
pub fn embed_documents(
    registry: &ModelRegistry,
    config: &CollectionConfig,
    docs: Vec<NewDocument>,
) -> Result<Vec<Document>> {
    let missing: Vec<usize> = (0..docs.len())
        .filter(|&i| docs[i].vector.is_none())
        .collect();
    // Per document missing a vector: the byte ranges it is embedded as.
    let mut pieces: Vec<Vec<Range<usize>>> = Vec::new();
    let mut vectors = Vec::new();
    if !missing.is_empty() {
        let Some(model) = &config.embedding_model else {
            return Err(EngineError::InvalidInput(format!(
                "document {:?} has no vector and the collection has no embedding_model",
                docs[missing[0]].id
            )));
        };
        let service = registry.embedder(model).map_err(model_error)?;
        pieces = missing
            .iter()
            .map(|&i| {
                cut(
                    service.model().as_ref(),
                    config.chunking.as_ref(),
                    &docs[i].text,
                )
            })
            .collect::<Result<_>>()?;
        let texts: Vec<&str> = missing
            .iter()
            .zip(&pieces)
            .flat_map(|(&i, ranges)| {
                let text = docs[i].text.as_str();
                ranges.iter().map(move |r| &text[r.clone()])
            })
            .collect();
        vectors = service
            .embed(&texts, None, Priority::Bulk)
            .map_err(model_error)?
            .iter()
            .map(|v| truncate_normalize(v, config.dim))
            .collect::<Result<Vec<_>, _>>()
            .map_err(model_error)?;
    }
    let mut vectors = vectors.into_iter();
    let mut pieces = pieces.into_iter();
    Ok(docs
        .into_iter()
        .map(|d| {
            let (vector, chunks) = match d.vector {
                Some(v) => (v, Vec::new()),
                None => {
                    let ranges = pieces.next().unwrap_or_default();
                    let mut chunks: Vec<DocChunk> = ranges
                        .into_iter()
                        .zip(vectors.by_ref())
                        .map(|(r, vector)| DocChunk {
                            start: r.start,
                            end: r.end,
                            vector,
                        })
                        .collect();
                    let vector = chunks.first().map(|c| c.vector.clone()).unwrap_or_default();
                    if chunks.len() < 2 {
                        chunks.clear();
                    }
                    (vector, chunks)
                }
            };
            Document {
                vector,
                chunks,
                id: d.id,
                text: d.text,
                metadata: d.metadata,
            }
        })
        .collect())
}

/// The byte ranges `text` is embedded as: its chunks when `chunking` is set and the text
/// is longer than one, else the whole text.
fn cut(
    model: &dyn TextEmbedder,
    chunking: Option<&ChunkingConfig>,
    text: &str,
) -> Result<Vec<Range<usize>>> {
    let whole: Vec<Range<usize>> = std::iter::once(0..text.len()).collect();
    let Some(chunking) = chunking else {
        return Ok(whole);
    };
    // Every token covers at least one byte: a text this short fits without tokenizing.
    if text.len() <= chunking.max_tokens {
        return Ok(whole);
    }
    let spans = model.token_spans(text).map_err(model_error)?;
    if spans.len() <= chunking.max_tokens {
        return Ok(whole);
    }
    Ok(chunk_tokens(text, &spans, chunking)
        .into_iter()
        .map(|c| c.bytes)
        .collect())
}

/// Embeds query text with the collection's model and instruction (`task` from the
/// request, else the collection's, else [`DEFAULT_TASK`]), cut to the collection's dim.
pub fn embed_query(
    registry: &ModelRegistry,
    config: &CollectionConfig,
    text: &str,
    task: Option<&str>,
) -> Result<Vec<f32>> {
    let Some(model) = &config.embedding_model else {
        return Err(EngineError::InvalidInput(
            "this collection has no embedding_model: send a query vector".into(),
        ));
    };
    let task = task.or(config.task.as_deref()).unwrap_or(DEFAULT_TASK);
    let service = registry.embedder(model).map_err(model_error)?;
    let full = service
        .embed(&[text], Some(task), Priority::Query)
        .map_err(model_error)?
        .pop()
        .ok_or_else(|| EngineError::InvalidInput("the model returned no vector".into()))?;
    truncate_normalize(&full, config.dim).map_err(model_error)
}

/// One hit after reranking.
#[derive(Debug, Clone, PartialEq)]
pub struct RerankedHit {
    /// The hit as the fused search returned it (its `score` is the fused one).
    pub hit: QueryHit,
    /// The reranker's relevance score, 0..=1.
    pub score: f32,
    /// 1-based place in the fused list before reranking.
    pub rank_before: usize,
}

/// Scores `hits` against `query` with reranker `model` (each by its best chunk when it
/// has chunks, see [`QueryHit::chunks`]), then orders them by that score
/// (ties keep their fused order) and keeps the best `top_k`.
pub fn rerank(
    registry: &ModelRegistry,
    model: &str,
    query: &str,
    instruction: Option<&str>,
    hits: Vec<QueryHit>,
    top_k: usize,
) -> Result<Vec<RerankedHit>> {
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let service = registry.reranker(model).map_err(model_error)?;
    // A chunked document is judged by its best chunk, which fits the model's input;
    // its head alone could miss what matched.
    let docs: Vec<&str> = hits
        .iter()
        .map(|h| {
            h.chunks
                .first()
                .map_or(h.text.as_str(), |c| c.text.as_str())
        })
        .collect();
    let scores = service
        .score(query, &docs, instruction)
        .map_err(model_error)?;
    let mut scored: Vec<RerankedHit> = hits
        .into_iter()
        .zip(scores)
        .enumerate()
        .map(|(i, (hit, score))| RerankedHit {
            hit,
            score,
            rank_before: i + 1,
        })
        .collect();
    // Stable sort: equal reranker scores keep the fused order.
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    scored.truncate(top_k);
    Ok(scored)
}
