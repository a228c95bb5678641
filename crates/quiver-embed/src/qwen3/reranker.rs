//! Qwen3-Reranker: scores (query, document) pairs as the probability that the model
//! answers "yes" rather than "no".
//!
//! Input ids are `prefix + body + suffix`, where only the body
//! `<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}` is truncated so the
//! whole stays within the maximum length. The score is `sigmoid(l_yes - l_no)` (softmax
//! over the two logits) at the last position; only the two LM-head rows for "yes" and
//! "no" are kept and multiplied, never the full-vocabulary logits.

use std::path::Path;

use candle_core::DType;

use super::config::{ModelOptions, Qwen3Config};
use super::embedder::{length_chunks, DEFAULT_MAX_LENGTH, DEFAULT_TASK};
use super::transformer::{gather_rows, Qwen3Transformer};
use crate::tokenizer::TextTokenizer;
use crate::weights::Weights;
use crate::{Reranker, Result};

/// Fixed start of every reranker input.
pub const RERANK_PREFIX: &str = "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n";
/// Fixed end of every reranker input.
pub const RERANK_SUFFIX: &str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
const CHUNK_TOKENS: usize = 16_384;

/// The truncated middle part of a reranker input.
pub fn rerank_body(instruction: &str, query: &str, doc: &str) -> String {
    format!("<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}")
}

/// A Qwen3-Reranker model loaded on the CPU.
pub struct Qwen3Reranker {
    model: Qwen3Transformer,
    /// Truncates bodies to `max_length - prefix - suffix` tokens.
    body_tokenizer: TextTokenizer,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// LM-head rows of "yes" and "no", f32 `(2, hidden)`.
    answer_rows: Vec<f32>,
}

impl std::fmt::Debug for Qwen3Reranker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qwen3Reranker")
            .field("hidden", &self.model.hidden())
            .field("tokenizer", &self.body_tokenizer)
            .finish_non_exhaustive()
    }
}

impl Qwen3Reranker {
    /// Loads `config.json`, `tokenizer.json` and the weights from `dir` in f32.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, ModelOptions::default())
    }

    /// Loads with explicit options (`max_length` bounds prefix + body + suffix).
    pub fn load_with(dir: &Path, options: ModelOptions) -> Result<Self> {
        let cfg = Qwen3Config::from_file(&dir.join("config.json"))?;
        let max_length = options.max_length.unwrap_or(DEFAULT_MAX_LENGTH);
        let tok_path = dir.join("tokenizer.json");
        let mut body_tokenizer = TextTokenizer::from_file(&tok_path, max_length)?;
        let prefix = body_tokenizer.encode_plain(RERANK_PREFIX)?;
        let suffix = body_tokenizer.encode_plain(RERANK_SUFFIX)?;
        let room = max_length.saturating_sub(prefix.len() + suffix.len());
        body_tokenizer.set_max_length(room)?;
        let yes = body_tokenizer.token_id("yes")?;
        let no = body_tokenizer.token_id("no")?;

        let weights = Weights::open(dir, DType::F32)?;
        // Reranker checkpoints keep the decoder under `model.`; accept the root too.
        let decoder = if weights.contains("model.embed_tokens.weight") {
            weights.with_prefix("model")
        } else if weights.contains("embed_tokens.weight") {
            weights.with_prefix("")
        } else {
            return Err(weights.error(
                "model.embed_tokens.weight",
                "not found, with or without `model.`",
            ));
        };
        let model = Qwen3Transformer::load(&decoder, &cfg, max_length, options.precision)?;
        let answer_rows = if weights.contains("lm_head.weight") && !cfg.tie_word_embeddings {
            let head = weights.get((cfg.vocab_size, cfg.hidden_size), "lm_head.weight")?;
            gather_rows(&head, &[yes, no])?
        } else if cfg.tie_word_embeddings {
            gather_rows(model.embed_tokens(), &[yes, no])?
        } else {
            return Err(weights.error("lm_head.weight", "missing and embeddings are not tied"));
        };
        Ok(Self {
            model,
            body_tokenizer,
            prefix,
            suffix,
            answer_rows,
        })
    }

    /// Token ids of one (query, doc) pair exactly as the model sees it.
    pub fn tokenize(&self, query: &str, doc: &str, instruction: Option<&str>) -> Result<Vec<u32>> {
        let body = rerank_body(instruction.unwrap_or(DEFAULT_TASK), query, doc);
        let body = self.body_tokenizer.encode(&body)?;
        let mut ids = Vec::with_capacity(self.prefix.len() + body.len() + self.suffix.len());
        ids.extend_from_slice(&self.prefix);
        ids.extend_from_slice(&body);
        ids.extend_from_slice(&self.suffix);
        Ok(ids)
    }

    fn score_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; ids.len()];
        for chunk in length_chunks(ids, CHUNK_TOKENS) {
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let hidden = self.model.last_hidden(&rows)?;
            let (yes_row, no_row) = self.answer_rows.split_at(self.answer_rows.len() / 2);
            for (&i, x) in chunk.iter().zip(hidden) {
                let yes: f32 = x.iter().zip(yes_row).map(|(a, b)| a * b).sum();
                let no: f32 = x.iter().zip(no_row).map(|(a, b)| a * b).sum();
                out[i] = 1.0 / (1.0 + (no - yes).exp());
            }
        }
        Ok(out)
    }
}

impl Reranker for Qwen3Reranker {
    fn count_tokens(&self, query: &str, doc: &str, instruction: Option<&str>) -> Result<usize> {
        Ok(self.tokenize(query, doc, instruction)?.len())
    }

    fn score(&self, query: &str, docs: &[&str], instruction: Option<&str>) -> Result<Vec<f32>> {
        let ids = docs
            .iter()
            .map(|d| self.tokenize(query, d, instruction))
            .collect::<Result<Vec<_>>>()?;
        self.score_ids(&ids)
    }
}
