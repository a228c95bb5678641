//! BERT-family sentence embedders (all-MiniLM-L6-v2 and kin) on candle-transformers'
//! `bert`: right-padded batch, mean pooling over the attention mask, L2-normalized.
//! Instructions do not apply: `task` is ignored.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;

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
    model: BertModel,
    tokenizer: TextTokenizer,
    pad_id: u32,
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
    /// Loads `config.json`, `tokenizer.json` and the weights from `dir` in f32. The
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
        let cfg: Config = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
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
        let weights = Weights::open(dir, options.precision.dtype())?;
        let model =
            BertModel::load(weights.builder(), &cfg).map_err(|e| EmbedError::ModelFile {
                path: weights.primary().to_path_buf(),
                reason: e.to_string(),
            })?;
        let pad_id = u32::try_from(cfg.pad_token_id).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            pad_id,
            width: cfg.hidden_size,
        })
    }

    /// Token ids of `text` as the model sees it (`[CLS] ... [SEP]`, truncated).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    fn forward(&self, rows: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let dev = Device::Cpu;
        let n = rows.len();
        let len = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for row in rows {
            ids.extend_from_slice(row);
            ids.extend(std::iter::repeat_n(self.pad_id, len - row.len()));
            mask.extend(std::iter::repeat_n(1u32, row.len()));
            mask.extend(std::iter::repeat_n(0u32, len - row.len()));
        }
        let ids = Tensor::from_vec(ids, (n, len), &dev)?;
        let mask = Tensor::from_vec(mask, (n, len), &dev)?;
        let types = ids.zeros_like()?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))?
            .to_dtype(DType::F32)?;
        // Mean over real tokens only.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let sum = hidden.broadcast_mul(&m)?.sum(1)?;
        let count = m.sum(1)?.clamp(1e-9, f32::MAX)?;
        sum.broadcast_div(&count)?.to_vec2()
    }
}

impl TextEmbedder for BertEmbedder {
    fn width(&self) -> usize {
        self.width
    }

    fn count_tokens(&self, text: &str, _task: Option<&str>) -> Result<usize> {
        Ok(self.tokenize(text)?.len())
    }

    fn embed(&self, texts: &[&str], _task: Option<&str>) -> Result<Vec<Vec<f32>>> {
        let ids = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>>>()?;
        let mut out = vec![Vec::new(); ids.len()];
        for chunk in length_chunks(&ids, CHUNK_TOKENS) {
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let vecs = self
                .forward(&rows)
                .map_err(|e| EmbedError::Inference(e.to_string()))?;
            for (&i, v) in chunk.iter().zip(vecs) {
                out[i] = l2_normalize(v);
            }
        }
        Ok(out)
    }
}
