//! BERT-family sentence embedders (all-MiniLM-L6-v2 and kin): the encoder's forward
//! pass (`encoder`), mean pooling over each text's tokens, L2-normalized. Instructions
//! do not apply: `task` is ignored.

mod encoder;

use std::path::Path;

use serde::Deserialize;

use self::encoder::{BertConfig, Encoder};

use crate::qwen3::embedder::{l2_normalize, length_chunks};
use crate::qwen3::ModelOptions;
use crate::tokenizer::TextTokenizer;
use crate::weights::Weights;
use crate::{EmbedError, Result, TextEmbedder};

const CHUNK_TOKENS: usize = 16_384;

/// sentence-transformers' `sentence_bert_config.json`: the length the model was trained at.
#[derive(Deserialize)]
struct SentenceConfig {
    max_seq_length: Option<usize>,
}

/// A BERT sentence embedder loaded on the CPU.
pub struct BertEmbedder {
    encoder: Encoder,
    tokenizer: TextTokenizer,
    width: usize,
}

impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("width", &self.width)
            .field("tokenizer", &self.tokenizer)
            .finish_non_exhaustive()
    }
}

impl BertEmbedder {
    /// Loads `config.json`, `tokenizer.json` and the weights from `dir` (computed in
    /// f32 whatever the checkpoint's type: the model is small). The
    /// maximum length is `sentence_bert_config.json`'s `max_seq_length` where present, else
    /// the position table's size.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, ModelOptions::default())
    }

    /// Loads with explicit options (`max_length` is capped by the position table).
    pub fn load_with(dir: &Path, options: ModelOptions) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let bad = |reason: String| EmbedError::ModelFile {
            path: cfg_path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| bad(e.to_string()))?;
        let cfg: BertConfig = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if let Some(reason) = cfg.unsupported() {
            return Err(bad(format!("unsupported: {reason}")));
        }
        let trained = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<SentenceConfig>(&t).ok())
            .and_then(|c| c.max_seq_length);
        let max_length = options
            .max_length
            .or(trained)
            .unwrap_or(cfg.max_position_embeddings)
            .min(cfg.max_position_embeddings);
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), max_length)?;
        let weights = Weights::open(dir, candle_core::DType::F32)?;
        // Some checkpoints keep the encoder under `bert.`.
        let weights = if weights.contains("bert.embeddings.word_embeddings.weight") {
            weights.with_prefix("bert")
        } else {
            weights
        };
        Ok(Self {
            encoder: Encoder::load(&weights, &cfg, options.precision)?,
            tokenizer,
            width: cfg.hidden_size,
        })
    }

    /// Token ids of `text` as the model sees it (`[CLS] ... [SEP]`, truncated).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }
}

impl TextEmbedder for BertEmbedder {
    fn width(&self) -> usize {
        self.width
    }

    fn count_tokens(&self, text: &str, _task: Option<&str>) -> Result<usize> {
        Ok(self.tokenize(text)?.len())
    }

    fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        self.tokenizer.token_spans(text)
    }

    fn text_capacity(&self) -> usize {
        self.tokenizer.text_capacity()
    }

    fn embed(&self, texts: &[&str], _task: Option<&str>) -> Result<Vec<Vec<f32>>> {
        let ids = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>>>()?;
        let mut out = vec![Vec::new(); ids.len()];
        for chunk in length_chunks(&ids, CHUNK_TOKENS) {
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let vecs = self.encoder.mean_pooled(&rows)?;
            for (&i, v) in chunk.iter().zip(vecs) {
                out[i] = l2_normalize(v);
            }
        }
        Ok(out)
    }
}
