//! The subset of a Qwen3 `config.json` that the forward pass needs, and the options a
//! caller picks when loading a Qwen3 or BERT model.

use std::path::Path;

use serde::Deserialize;

use crate::{EmbedError, Result};

/// Numeric precision of the models' linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Precision {
    /// 32-bit floats. On CPUs with AMX (Intel Xeons since Sapphire Rapids), products of
    /// 32 rows or more run on the tile unit, each operand taken as the sum of two bf16
    /// values (about 16 significant bits) and the sums kept in f32: PyTorch's "high"
    /// float32 matmul precision, about twice as fast (`crate::amx`). Elsewhere the same
    /// as [`Precision::F32Highest`].
    #[default]
    F32,
    /// 32-bit floats with full f32 operands in every product, PyTorch's "highest".
    F32Highest,
    /// Weights quantized to int8 per output column at load time, activations per row at
    /// each product (`crate::int8`); everything between products stays f32. About a
    /// quarter of the weight memory, faster on CPUs with AVX-512 VNNI, not exact.
    Int8,
}

/// How to load a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelOptions {
    /// Maximum tokens per input, special tokens included; longer inputs are truncated.
    /// `None` uses the model's default (8192 for Qwen3, the checkpoint's for BERT).
    pub max_length: Option<usize>,
    /// Precision of the linear layers.
    pub precision: Precision,
}

/// RoPE settings as newer configs nest them.
#[derive(Debug, Clone, Deserialize)]
struct RopeParameters {
    rope_theta: Option<f64>,
    rope_type: Option<String>,
}

/// Architecture hyper-parameters of a Qwen3 checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    #[serde(default)]
    head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(default)]
    rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default)]
    use_sliding_window: bool,
}

fn default_act() -> String {
    "silu".into()
}

impl Qwen3Config {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bad = |reason: String| EmbedError::ModelFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        cfg.check().map_err(bad)?;
        Ok(cfg)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.hidden_act != "silu" {
            return Err(format!("unsupported hidden_act {:?}", self.hidden_act));
        }
        if self.use_sliding_window {
            return Err("sliding-window attention is not supported".into());
        }
        if let Some(kind) = self
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_type.as_ref())
        {
            if kind != "default" {
                return Err(format!("unsupported rope_type {kind:?}"));
            }
        }
        let heads = self.num_attention_heads;
        let kv = self.num_key_value_heads;
        if heads == 0 || kv == 0 || !heads.is_multiple_of(kv) {
            return Err(format!(
                "{heads} attention heads cannot share {kv} key/value heads"
            ));
        }
        if !self.head_dim().is_multiple_of(2) || self.head_dim() == 0 {
            return Err(format!("head_dim {} must be even", self.head_dim()));
        }
        if self.rope_theta() <= 0.0 {
            return Err("rope_theta must be positive".into());
        }
        Ok(())
    }

    /// Per-head width (`head_dim`, or hidden / heads where the config omits it).
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// RoPE base, read from `rope_theta` or from `rope_parameters.rope_theta`.
    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| self.rope_parameters.as_ref().and_then(|r| r.rope_theta))
            .unwrap_or(10_000.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str = r#""vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "rms_norm_eps": 1e-6"#;

    #[test]
    fn rope_theta_from_either_key() {
        let flat: Qwen3Config =
            serde_json::from_str(&format!("{{{BASE}, \"rope_theta\": 5.0}}")).unwrap();
        assert_eq!(flat.rope_theta(), 5.0);
        let nested: Qwen3Config = serde_json::from_str(&format!(
            "{{{BASE}, \"rope_parameters\": {{\"rope_theta\": 7.0, \"rope_type\": \"default\"}}}}"
        ))
        .unwrap();
        assert_eq!(nested.rope_theta(), 7.0);
        assert_eq!(nested.head_dim(), 4);
        assert!(nested.check().is_ok());
    }

    #[test]
    fn rejects_unsupported_shapes() {
        let scaled: Qwen3Config = serde_json::from_str(&format!(
            "{{{BASE}, \"rope_parameters\": {{\"rope_theta\": 7.0, \"rope_type\": \"yarn\"}}}}"
        ))
        .unwrap();
        assert!(scaled.check().is_err());
        let three_kv = BASE.replace("\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3");
        let bad_heads: Qwen3Config = serde_json::from_str(&format!("{{{three_kv}}}")).unwrap();
        assert!(bad_heads.check().is_err());
    }
}
