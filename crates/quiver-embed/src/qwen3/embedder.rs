//! Qwen3-Embedding: last-token pooling over a left-padded batch, L2-normalized, with
//! Matryoshka truncation to any width in `32..=hidden`.
//!
//! Queries are embedded as `Instruct: {task}\nQuery:{query}` (no space after `Query:`);
//! documents as they are. The tokenizer appends `<|endoftext|>`, whose final hidden state
//! is the embedding, and truncation keeps it.

use std::path::Path;

use candle_core::DType;

use super::config::{ModelOptions, Qwen3Config};
use super::transformer::Qwen3Transformer;
use crate::tokenizer::TextTokenizer;
use crate::weights::Weights;
use crate::{truncate_normalize, EmbedError, Result, TextEmbedder};

/// The token every embedding input ends with; its last hidden state is the embedding.
pub const EMBED_EOS: &str = "<|endoftext|>";
/// Task used for queries when a collection sets none.
pub const DEFAULT_TASK: &str =
    "Given a web search query, retrieve relevant passages that answer the query";
/// Smallest Matryoshka width Quiver accepts.
pub const MIN_DIM: usize = 32;
/// Default truncation length (tokens, special tokens included).
pub const DEFAULT_MAX_LENGTH: usize = 8192;
/// Upper bound on `rows x padded length` per forward pass; larger inputs are split into
/// length-sorted chunks so padding and attention memory stay bounded.
const CHUNK_TOKENS: usize = 16_384;

/// A Qwen3-Embedding model loaded on the CPU.
pub struct Qwen3Embedder {
    model: Qwen3Transformer,
    tokenizer: TextTokenizer,
}

impl std::fmt::Debug for Qwen3Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qwen3Embedder")
            .field("width", &self.model.hidden())
            .field("tokenizer", &self.tokenizer)
            .finish_non_exhaustive()
    }
}

/// The text the model sees for a query with instruction `task`.
pub fn query_prompt(task: &str, query: &str) -> String {
    format!("Instruct: {task}\nQuery:{query}")
}

impl Qwen3Embedder {
    /// Loads `config.json`, `tokenizer.json` and the safetensors weights from `dir`, in f32
    /// with the default maximum length.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, ModelOptions::default())
    }

    /// Loads with explicit options.
    pub fn load_with(dir: &Path, options: ModelOptions) -> Result<Self> {
        let cfg = Qwen3Config::from_file(&dir.join("config.json"))?;
        let max_length = options.max_length.unwrap_or(DEFAULT_MAX_LENGTH);
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), max_length)?
            .append_token(EMBED_EOS)?;
        let weights = Weights::open(dir, DType::F32)?;
        // Embedding checkpoints store the decoder at the root; accept `model.` too.
        let weights = if weights.contains("embed_tokens.weight") {
            weights
        } else if weights.contains("model.embed_tokens.weight") {
            weights.with_prefix("model")
        } else {
            return Err(weights.error("embed_tokens.weight", "not found, with or without `model.`"));
        };
        let model = Qwen3Transformer::load(&weights, &cfg, max_length, options.precision)?;
        Ok(Self { model, tokenizer })
    }

    /// Token ids of one input exactly as the model sees it (instruction, truncation and the
    /// trailing `<|endoftext|>` applied).
    pub fn tokenize(&self, text: &str, task: Option<&str>) -> Result<Vec<u32>> {
        match task {
            Some(t) => self.tokenizer.encode(&query_prompt(t, text)),
            None => self.tokenizer.encode(text),
        }
    }

    /// Embeds `texts` and truncates each vector to `dim` (Matryoshka), re-normalized.
    pub fn embed_dim(
        &self,
        texts: &[&str],
        task: Option<&str>,
        dim: usize,
    ) -> Result<Vec<Vec<f32>>> {
        check_dim(dim, self.width())?;
        self.embed(texts, task)?
            .iter()
            .map(|v| truncate_normalize(v, dim))
            .collect()
    }

    /// Truncation length in tokens.
    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }

    fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); ids.len()];
        for chunk in length_chunks(ids, CHUNK_TOKENS) {
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let vecs = self.model.last_hidden(&rows)?;
            for (&i, v) in chunk.iter().zip(vecs) {
                out[i] = l2_normalize(v);
            }
        }
        Ok(out)
    }
}

impl TextEmbedder for Qwen3Embedder {
    fn width(&self) -> usize {
        self.model.hidden()
    }

    fn count_tokens(&self, text: &str, task: Option<&str>) -> Result<usize> {
        Ok(self.tokenize(text, task)?.len())
    }

    fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        self.tokenizer.token_spans(text)
    }

    fn text_capacity(&self) -> usize {
        self.tokenizer.text_capacity()
    }

    fn embed(&self, texts: &[&str], task: Option<&str>) -> Result<Vec<Vec<f32>>> {
        let ids = texts
            .iter()
            .map(|t| self.tokenize(t, task))
            .collect::<Result<Vec<_>>>()?;
        self.embed_ids(&ids)
    }
}

/// Checks a Matryoshka width against `32..=width`.
pub fn check_dim(dim: usize, width: usize) -> Result<()> {
    if dim < MIN_DIM.min(width) || dim > width {
        return Err(EmbedError::InvalidInput(format!(
            "dimension {dim} is outside {}..={width}",
            MIN_DIM.min(width)
        )));
    }
    Ok(())
}

/// Divides by the L2 norm (a zero vector stays zero).
pub(crate) fn l2_normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Splits row indices into chunks of similar length whose padded size stays under
/// `budget` tokens (a row longer than the budget gets a chunk of its own).
pub(crate) fn length_chunks(ids: &[Vec<u32>], budget: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending, so this row sets the padded length of the chunk.
        let padded = ids[i].len() * (current.len() + 1);
        if !current.is_empty() && padded > budget {
            chunks.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// `seqs` cut into at most `parts` runs of neighbouring sequences with about the same
/// number of tokens each.
pub(crate) fn split_by_tokens(seqs: &[Vec<u32>], parts: usize) -> Vec<&[Vec<u32>]> {
    let total: usize = seqs.iter().map(Vec::len).sum();
    let target = total.div_ceil(parts.max(1));
    let mut out = Vec::with_capacity(parts);
    let (mut start, mut tokens) = (0, 0);
    for (i, seq) in seqs.iter().enumerate() {
        // Cut before a sequence that would take this run past its share.
        if tokens > 0 && tokens + seq.len() > target && out.len() + 1 < parts {
            out.push(&seqs[start..i]);
            (start, tokens) = (i, 0);
        }
        tokens += seq.len();
    }
    if start < seqs.len() {
        out.push(&seqs[start..]);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once_within_budget() {
        let ids: Vec<Vec<u32>> = [5usize, 1, 9, 3, 9, 2, 30]
            .iter()
            .map(|&n| vec![0; n])
            .collect();
        let chunks = length_chunks(&ids, 20);
        let mut seen: Vec<usize> = chunks.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..ids.len()).collect::<Vec<_>>());
        for c in &chunks {
            let longest = c.iter().map(|&i| ids[i].len()).max().unwrap();
            assert!(c.len() == 1 || longest * c.len() <= 20, "{c:?}");
        }
    }

    #[test]
    fn dims_outside_range_are_refused() {
        assert!(check_dim(31, 64).is_err());
        assert!(check_dim(65, 64).is_err());
        assert!(check_dim(32, 64).is_ok());
        assert!(check_dim(64, 64).is_ok());
    }

    #[test]
    fn query_prompt_has_no_space_after_query() {
        assert_eq!(query_prompt("t", "q"), "Instruct: t\nQuery:q");
    }

    #[test]
    fn token_split_keeps_order_and_covers_every_sequence() {
        let seqs: Vec<Vec<u32>> = [5usize, 1, 9, 3, 9, 2, 30]
            .iter()
            .map(|&n| vec![0; n])
            .collect();
        for parts in 1..=8 {
            let split = split_by_tokens(&seqs, parts);
            assert!(split.len() <= parts && split.iter().all(|p| !p.is_empty()));
            assert_eq!(split.concat(), seqs);
        }
        assert_eq!(split_by_tokens(&seqs, 2).len(), 2);
    }
}
