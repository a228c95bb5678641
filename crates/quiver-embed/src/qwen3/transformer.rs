//! The batched Qwen3 decoder forward pass shared by the embedder and the reranker.
//!
//! Unlike a generation loop there is no KV cache: each call runs a whole left-padded batch
//! once and returns only the final (normalized) hidden state at the last position of every
//! row, which is all that last-token pooling and yes/no scoring need.
//!
//! Matches the reference implementation (transformers, eager attention):
//! - positions are `0..L` for every row, padding included; RoPE is relative, so a row's
//!   real tokens see the same rotations whatever its padding;
//! - the additive mask is causal + key padding, with a large finite negative so rows made
//!   only of padding give a uniform softmax instead of NaN;
//! - attention scores are scaled by `head_dim^-0.5`, masked and soft-maxed in f32;
//! - q and k get a per-head RMSNorm before RoPE (Qwen3's `q_norm` / `k_norm`).
//!
//! Since only the last position is read, the last layer computes its queries, attention
//! output and MLP for that one position (keys and values still cover the whole row).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, RmsNorm};

use super::config::Qwen3Config;
use crate::weights::Weights;
use crate::{EmbedError, Result};

/// Added to masked attention scores; finite so that all-masked rows stay finite.
const MASKED: f32 = -1.0e30;
/// Target size (f32 elements) of one block of attention scores: 32 Mi elements = 128 MiB.
const SCORE_ELEMENTS: usize = 32 << 20;

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

struct Layer {
    input_norm: RmsNorm,
    attn: Attention,
    post_norm: RmsNorm,
    mlp: Mlp,
}

/// A loaded Qwen3 decoder stack (embeddings, layers, final norm; no LM head).
pub(crate) struct Qwen3Transformer {
    embed_tokens: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    inv_freq: Vec<f32>,
    hidden: usize,
    dtype: DType,
    /// Score-matrix budget per query block (f32 elements).
    score_elements: usize,
}

fn linear(w: &Weights, name: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
    let weight = w.get((out, inp), &format!("{name}.weight"))?;
    let bias = if bias {
        Some(w.get(out, &format!("{name}.bias"))?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

fn rms(w: &Weights, name: &str, size: usize, eps: f64) -> Result<RmsNorm> {
    Ok(RmsNorm::new(w.get(size, &format!("{name}.weight"))?, eps))
}

impl Qwen3Transformer {
    /// Reads every tensor of the decoder from `w` (already viewed under the right prefix).
    pub(crate) fn load(w: &Weights, cfg: &Qwen3Config) -> Result<Self> {
        let (h, d, eps) = (cfg.hidden_size, cfg.head_dim(), cfg.rms_norm_eps);
        let (heads, kv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let embed_tokens = w.get((cfg.vocab_size, h), "embed_tokens.weight")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("layers.{i}");
            let a = format!("{p}.self_attn");
            let m = format!("{p}.mlp");
            let bias = cfg.attention_bias;
            layers.push(Layer {
                input_norm: rms(w, &format!("{p}.input_layernorm"), h, eps)?,
                attn: Attention {
                    q_proj: linear(w, &format!("{a}.q_proj"), heads * d, h, bias)?,
                    k_proj: linear(w, &format!("{a}.k_proj"), kv * d, h, bias)?,
                    v_proj: linear(w, &format!("{a}.v_proj"), kv * d, h, bias)?,
                    o_proj: linear(w, &format!("{a}.o_proj"), h, heads * d, bias)?,
                    q_norm: rms(w, &format!("{a}.q_norm"), d, eps)?,
                    k_norm: rms(w, &format!("{a}.k_norm"), d, eps)?,
                    heads,
                    kv_heads: kv,
                    head_dim: d,
                },
                post_norm: rms(w, &format!("{p}.post_attention_layernorm"), h, eps)?,
                mlp: Mlp {
                    gate_proj: linear(
                        w,
                        &format!("{m}.gate_proj"),
                        cfg.intermediate_size,
                        h,
                        false,
                    )?,
                    up_proj: linear(w, &format!("{m}.up_proj"), cfg.intermediate_size, h, false)?,
                    down_proj: linear(
                        w,
                        &format!("{m}.down_proj"),
                        h,
                        cfg.intermediate_size,
                        false,
                    )?,
                },
            });
        }
        let norm = rms(w, "norm", h, eps)?;
        // Same formula as the reference: theta^(-2i/d), rounded to f32.
        let theta = cfg.rope_theta();
        let inv_freq = (0..d / 2)
            .map(|i| (1.0 / theta.powf((2 * i) as f64 / d as f64)) as f32)
            .collect();
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            inv_freq,
            hidden: h,
            score_elements: SCORE_ELEMENTS,
            dtype: w.builder().dtype(),
        })
    }

    /// The input embedding matrix `(vocab, hidden)`; tied checkpoints reuse it as LM head.
    pub(crate) fn embed_tokens(&self) -> &Tensor {
        &self.embed_tokens
    }

    /// Width of the hidden state.
    pub(crate) fn hidden(&self) -> usize {
        self.hidden
    }

    /// Runs `batch` (token ids per row, any lengths) and returns the normalized final
    /// hidden state of each row's last token as an f32 `(rows, hidden)` tensor.
    pub(crate) fn last_hidden(&self, batch: &[Vec<u32>]) -> Result<Tensor> {
        if batch.is_empty() || batch.iter().any(|r| r.is_empty()) {
            return Err(EmbedError::InvalidInput("empty token sequence".into()));
        }
        self.forward(batch)
            .map_err(|e| EmbedError::Inference(e.to_string()))
    }

    fn forward(&self, batch: &[Vec<u32>]) -> candle_core::Result<Tensor> {
        let dev = Device::Cpu;
        let rows = batch.len();
        let len = batch.iter().map(Vec::len).max().unwrap_or(0);
        // Left padding: every row ends at position len - 1.
        let mut ids = Vec::with_capacity(rows * len);
        let mut pads = Vec::with_capacity(rows);
        for row in batch {
            let pad = len - row.len();
            ids.extend(std::iter::repeat_n(0u32, pad));
            ids.extend_from_slice(row);
            pads.push(u32::try_from(pad).map_err(candle_core::Error::wrap)?);
        }
        let ids = Tensor::from_vec(ids, rows * len, &dev)?;
        let pads = Tensor::from_vec(pads, (rows, 1, 1, 1), &dev)?;
        let (cos, sin) = self.rope_tables(len)?;
        let mut x = self
            .embed_tokens
            .index_select(&ids, 0)?
            .reshape((rows, len, self.hidden))?;
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            let from = if i == last { len - 1 } else { 0 };
            x = layer.forward(&x, &pads, (&cos, &sin), from, self.score_elements)?;
        }
        // Without layers (never in practice) x still covers every position.
        let x = x.narrow(1, x.dim(1)? - 1, 1)?.squeeze(1)?.contiguous()?;
        self.norm.forward(&x)?.to_dtype(DType::F32)
    }

    /// cos/sin of `position * inv_freq` for positions `0..len`, `(len, head_dim / 2)`.
    fn rope_tables(&self, len: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in 0..len {
            for &f in &self.inv_freq {
                // The reference multiplies in f32, then takes cos/sin of that f32 angle.
                let angle = (pos as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let cos = Tensor::from_vec(cos, (len, half), &Device::Cpu)?.to_dtype(self.dtype)?;
        let sin = Tensor::from_vec(sin, (len, half), &Device::Cpu)?.to_dtype(self.dtype)?;
        Ok((cos, sin))
    }
}

impl Layer {
    /// One decoder layer; outputs positions `from..len` only.
    fn forward(
        &self,
        x: &Tensor,
        pads: &Tensor,
        rope: (&Tensor, &Tensor),
        from: usize,
        budget: usize,
    ) -> candle_core::Result<Tensor> {
        let h = self.input_norm.forward(x)?;
        let attn = self.attn.forward(&h, pads, rope, from, budget)?;
        let len = x.dim(1)?;
        let residual = x.narrow(1, from, len - from)?;
        let x = (residual + attn)?;
        let h = self.post_norm.forward(&x)?;
        let gate = candle_nn::ops::silu(&self.mlp.gate_proj.forward(&h)?)?;
        let up = self.mlp.up_proj.forward(&h)?;
        x + self.mlp.down_proj.forward(&(gate * up)?)?
    }
}

impl Attention {
    fn forward(
        &self,
        h: &Tensor,
        pads: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        from: usize,
        budget: usize,
    ) -> candle_core::Result<Tensor> {
        let (rows, len, _) = h.dims3()?;
        let lq = len - from;
        let d = self.head_dim;
        let hq = h.narrow(1, from, lq)?.contiguous()?;
        let q = self
            .q_proj
            .forward(&hq)?
            .reshape((rows, lq, self.heads, d))?;
        let q = self.q_norm.forward(&q)?.transpose(1, 2)?.contiguous()?;
        let q =
            candle_nn::rotary_emb::rope(&q, &cos.narrow(0, from, lq)?, &sin.narrow(0, from, lq)?)?;
        let k = self
            .k_proj
            .forward(h)?
            .reshape((rows, len, self.kv_heads, d))?;
        let k = self.k_norm.forward(&k)?.transpose(1, 2)?.contiguous()?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        let v = self
            .v_proj
            .forward(h)?
            .reshape((rows, len, self.kv_heads, d))?;
        let v = v.transpose(1, 2)?.contiguous()?;
        // Queries go through in blocks so the f32 score matrix stays near `budget`
        // however long the rows are (an 8k-token row would otherwise need gigabytes).
        let per_query = rows * self.heads * len;
        let block = (budget / per_query.max(1)).clamp(1, lq);
        let mut outs = Vec::with_capacity(lq.div_ceil(block));
        let mut start = 0;
        while start < lq {
            let n = block.min(lq - start);
            let qb = q.narrow(2, start, n)?.contiguous()?;
            let mb = mask_block(pads, from + start, n, len)?;
            outs.push(self.attend(&qb, &k, &v, &mb)?);
            start += n;
        }
        let out = Tensor::cat(&outs, 2)?
            .transpose(1, 2)?
            .reshape((rows, lq, self.heads * d))?;
        self.o_proj.forward(&out)
    }

    /// Attention of one query block `q` `(rows, heads, n, d)` over every key; returns
    /// `(rows, heads, n, d)`.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (rows, _, n, d) = q.dims4()?;
        let len = k.dim(2)?;
        let rep = self.heads / self.kv_heads;
        // Grouped-query attention without copying k/v: the `rep` query heads that share a
        // key/value head are stacked along the sequence axis of that head.
        let q = q.reshape((rows, self.kv_heads, rep * n, d))?;
        let scores = (q.matmul(&k.t()?)? * (d as f64).powf(-0.5))?;
        let scores = scores
            .to_dtype(DType::F32)?
            .reshape((rows, self.heads, n, len))?
            .broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?
            .to_dtype(q.dtype())?
            .reshape((rows, self.kv_heads, rep * n, len))?;
        probs.matmul(v)?.reshape((rows, self.heads, n, d))
    }
}

/// Additive mask `(rows, 1, n, len)` for queries at positions `start..start + n`: 0 where
/// the key is at or before the query and not padding (key position >= the row's `pads`
/// entry), `MASKED` elsewhere. Built per query block so that no `len x len` mask is ever
/// held for long rows.
fn mask_block(pads: &Tensor, start: usize, n: usize, len: usize) -> candle_core::Result<Tensor> {
    let dev = pads.device();
    let to_u32 = |v: usize| u32::try_from(v).map_err(candle_core::Error::wrap);
    let keys = Tensor::arange(0u32, to_u32(len)?, dev)?.reshape((1, 1, 1, len))?;
    let queries = Tensor::arange(to_u32(start)?, to_u32(start + n)?, dev)?.reshape((1, 1, n, 1))?;
    let causal = keys.broadcast_le(&queries)?;
    let real = keys.broadcast_ge(pads)?;
    // allowed is 1 or 0; 1 * 1e30 - 1e30 = 0 exactly, 0 * 1e30 - 1e30 = MASKED.
    let allowed = causal.broadcast_mul(&real)?.to_dtype(DType::F32)?;
    allowed.affine(-f64::from(MASKED), f64::from(MASKED))
}

/// Gathers rows `ids` of `matrix` as an f32 `(ids.len(), hidden)` tensor.
pub(crate) fn gather_rows(matrix: &Tensor, ids: &[u32]) -> Result<Tensor> {
    let idx = Tensor::new(ids, &Device::Cpu).map_err(|e| EmbedError::Inference(e.to_string()))?;
    matrix
        .index_select(&idx, 0)
        .and_then(|t| t.to_dtype(DType::F32))
        .map_err(|e| EmbedError::Inference(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A tiny random model: the blocked attention path must give the same result as one
    /// block, for rows of very different lengths.
    #[test]
    fn query_blocks_do_not_change_results() {
        let cfg: Qwen3Config = serde_json::from_str(
            r#"{"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "head_dim": 4, "rms_norm_eps": 1e-6, "rope_theta": 10000.0}"#,
        )
        .unwrap();
        let dev = Device::Cpu;
        let mut tensors = HashMap::new();
        let mut add = |name: String, shape: &[usize]| {
            let t = Tensor::randn(0f32, 0.3, shape, &dev).unwrap();
            tensors.insert(name, t);
        };
        add("embed_tokens.weight".into(), &[50, 16]);
        add("norm.weight".into(), &[16]);
        for i in 0..2 {
            let p = format!("layers.{i}");
            for (n, shape) in [
                ("self_attn.q_proj.weight", [16, 16]),
                ("self_attn.k_proj.weight", [8, 16]),
                ("self_attn.v_proj.weight", [8, 16]),
                ("self_attn.o_proj.weight", [16, 16]),
                ("mlp.gate_proj.weight", [32, 16]),
                ("mlp.up_proj.weight", [32, 16]),
                ("mlp.down_proj.weight", [16, 32]),
            ] {
                add(format!("{p}.{n}"), &shape);
            }
            for (n, size) in [
                ("input_layernorm.weight", 16),
                ("post_attention_layernorm.weight", 16),
                ("self_attn.q_norm.weight", 4),
                ("self_attn.k_norm.weight", 4),
            ] {
                add(format!("{p}.{n}"), &[size]);
            }
        }
        let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let weights = Weights::from_builder(vb);
        let mut model = Qwen3Transformer::load(&weights, &cfg).unwrap();
        let batch = vec![vec![1, 2, 3], (0..40).map(|i| i % 50).collect(), vec![7]];
        let whole = model.last_hidden(&batch).unwrap();
        // One query per block.
        model.score_elements = 1;
        let blocked = model.last_hidden(&batch).unwrap();
        let diff = (whole - blocked)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "blocked attention differs by {diff}");
    }
}
