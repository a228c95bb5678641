//! The Qwen3 decoder forward pass shared by the embedder and the reranker, written for
//! scoring on a CPU: each call runs a whole batch once and returns only the final
//! (normalized) hidden state of every sequence's last token, which is all that last-token
//! pooling and yes/no scoring need. There is no KV cache.
//!
//! It matches the reference (transformers, eager attention, float32, left-padded
//! batches) on every real token, and lays the work out as the BERT forward does:
//! - **No padding.** Tokens are packed sequence after sequence, `(tokens, hidden)`; only
//!   attention looks across tokens ([`crate::attention`], causal, per sequence), so no
//!   mask tensor exists. Positions count from each sequence's first token: RoPE is
//!   relative, so this equals the reference's left-padded positions.
//! - **Fused projections**: q, k and v are one product, gate and up another, with
//!   weights stacked at load time; the `head_dim^-0.5` score scale is folded into the
//!   `q_norm` weights (RMS norm and RoPE are linear in that scale).
//! - The RoPE table is built once at load for every position up to the maximum length.
//! - Residuals are written first and the products accumulate onto them.
//! - The last layer computes its attention output and MLP for each sequence's last token
//!   only (keys and values still cover the whole sequence).
//!
//! Projections are [`Linear`] layers, at the [`Precision`] the model was loaded with.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::config::{Precision, Qwen3Config};
use super::embedder::split_by_tokens;
use crate::attention::{attend, Heads, Mask};
use crate::kernels::{rms_norm, silu_mul};
use crate::linear::{Linear, Rows};
use crate::pool::Pool;
use crate::weights::Weights;
use crate::{EmbedError, Result};

struct Layer {
    input_norm: Vec<f32>,
    /// Query heads, key heads and value heads side by side.
    qkv: Linear,
    /// Per-head RMS norm of the queries, times the score scale.
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    o_proj: Linear,
    post_norm: Vec<f32>,
    /// Gate and up projections side by side: `(2 · intermediate, hidden)`.
    gate_up: Linear,
    down: Linear,
}

/// A loaded Qwen3 decoder stack (embeddings, layers, final norm; no LM head).
pub(crate) struct Qwen3Transformer {
    embed_tokens: Tensor,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    heads: Heads,
    hidden: usize,
    eps: f32,
    /// cos and sin of `position · inv_freq`, `head_dim / 2` of each per position.
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
    /// Buffers of finished forwards, reused by the next ones.
    spare: Pool<Buffers>,
}

/// Buffers one forward pass reuses from layer to layer.
#[derive(Default)]
struct Buffers {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    gate_up: Vec<f32>,
    act: Vec<f32>,
}

impl Qwen3Transformer {
    /// Reads every tensor of the decoder from `w` (already viewed under the right prefix);
    /// `positions` bounds the sequence length (RoPE table size); `precision` is the
    /// projections'.
    pub(crate) fn load(
        w: &Weights,
        cfg: &Qwen3Config,
        positions: usize,
        precision: Precision,
    ) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim());
        let eps = cfg.rms_norm_eps as f32;
        let (heads, kv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let inter = cfg.intermediate_size;
        let bias = cfg.attention_bias;
        let embed_tokens = w.get((cfg.vocab_size, h), "embed_tokens.weight")?;
        let scale = (d as f32).powf(-0.5);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("layers.{i}");
            let a = format!("{p}.self_attn");
            let m = format!("{p}.mlp");
            let qkv = vec![
                Rows::read(w, &format!("{a}.q_proj"), heads * d, h, bias)?,
                Rows::read(w, &format!("{a}.k_proj"), kv * d, h, bias)?,
                Rows::read(w, &format!("{a}.v_proj"), kv * d, h, bias)?,
            ];
            let o = Rows::read(w, &format!("{a}.o_proj"), h, heads * d, bias)?;
            let gate_up = vec![
                Rows::read(w, &format!("{m}.gate_proj"), inter, h, false)?,
                Rows::read(w, &format!("{m}.up_proj"), inter, h, false)?,
            ];
            let down = w.floats(&format!("{m}.down_proj.weight"), &[h, inter])?;
            let q_norm = w.floats(&format!("{a}.q_norm.weight"), &[d])?;
            layers.push(Layer {
                input_norm: w.floats(&format!("{p}.input_layernorm.weight"), &[h])?,
                qkv: Linear::stacked(qkv, h, precision),
                q_norm: q_norm.iter().map(|g| g * scale).collect(),
                k_norm: w.floats(&format!("{a}.k_norm.weight"), &[d])?,
                o_proj: Linear::new(&o.weight, h, heads * d, o.bias, precision),
                post_norm: w.floats(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
                gate_up: Linear::stacked(gate_up, h, precision),
                down: Linear::new(&down, h, inter, None, precision),
            });
        }
        // Same formula as the reference: theta^(-2i/d) rounded to f32, the angle
        // multiplied in f32, its cos/sin taken of that f32 angle.
        let theta = cfg.rope_theta();
        let inv_freq: Vec<f32> = (0..d / 2)
            .map(|i| (1.0 / theta.powf((2 * i) as f64 / d as f64)) as f32)
            .collect();
        let mut rope_cos = Vec::with_capacity(positions * d / 2);
        let mut rope_sin = Vec::with_capacity(positions * d / 2);
        for pos in 0..positions {
            for &f in &inv_freq {
                let angle = f64::from(pos as f32 * f);
                rope_cos.push(angle.cos() as f32);
                rope_sin.push(angle.sin() as f32);
            }
        }
        Ok(Self {
            embed_tokens,
            layers,
            norm: w.floats("norm.weight", &[h])?,
            heads: Heads {
                heads,
                kv_heads: kv,
                dim: d,
            },
            hidden: h,
            eps,
            rope_cos,
            rope_sin,
            spare: Pool::default(),
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

    /// Runs `batch` (token ids per sequence, any lengths) and returns the normalized final
    /// hidden state of each sequence's last token, `hidden` values per sequence.
    pub(crate) fn last_hidden(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() || batch.iter().any(|r| r.is_empty()) {
            return Err(EmbedError::InvalidInput("empty token sequence".into()));
        }
        let positions = self.rope_cos.len() / (self.heads.dim / 2);
        if let Some(long) = batch.iter().find(|r| r.len() > positions) {
            return Err(EmbedError::InvalidInput(format!(
                "{} tokens, more than the {positions} this model was loaded for",
                long.len()
            )));
        }
        // With a sequence per thread or more, each thread runs whole sequences through
        // every layer on its own: no product is split, so no thread waits on another.
        let threads = rayon::current_num_threads();
        let x: Vec<f32> = if threads > 1 && batch.len() >= threads {
            let parts: Vec<Vec<f32>> = split_by_tokens(batch, threads)
                .par_iter()
                .map(|part| self.forward(part, 1))
                .collect::<Result<_>>()?;
            parts.concat()
        } else {
            self.forward(batch, threads)?
        };
        Ok(x.chunks_exact(self.hidden).map(<[f32]>::to_vec).collect())
    }

    /// Final normed hidden state of each sequence's last token; products use `threads`.
    fn forward(&self, batch: &[Vec<u32>], threads: usize) -> Result<Vec<f32>> {
        let h = self.hidden;
        let ids: Vec<u32> = batch.iter().flatten().copied().collect();
        let mut x = gather_rows(&self.embed_tokens, &ids)?;
        let mut spans = Vec::with_capacity(batch.len());
        let mut positions = Vec::with_capacity(ids.len());
        for seq in batch {
            spans.push((positions.len(), seq.len()));
            positions.extend(0..seq.len());
        }
        let mut buf = self.spare.take();
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            let mask = if i == last {
                Mask::CausalLast
            } else {
                Mask::Causal
            };
            self.layer(layer, &spans, &positions, mask, &mut x, &mut buf, threads);
        }
        self.spare.put(buf);
        if self.layers.is_empty() {
            x = spans
                .iter()
                .flat_map(|&(start, len)| x[(start + len - 1) * h..(start + len) * h].to_vec())
                .collect();
        }
        for row in x.chunks_exact_mut(h) {
            rms_norm(row, &self.norm, self.eps);
        }
        Ok(x)
    }

    /// One decoder layer over `x` `(tokens, hidden)`; with [`Mask::CausalLast`], `x`
    /// comes out with one row per sequence.
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &self,
        layer: &Layer,
        spans: &[(usize, usize)],
        positions: &[usize],
        mask: Mask,
        x: &mut Vec<f32>,
        buf: &mut Buffers,
        threads: usize,
    ) {
        let h = self.hidden;
        let tokens = positions.len();
        buf.normed.clear();
        buf.normed.extend_from_slice(x);
        for row in buf.normed.chunks_exact_mut(h) {
            rms_norm(row, &layer.input_norm, self.eps);
        }
        layer
            .qkv
            .apply(&buf.normed, tokens, None, &mut buf.qkv, threads);
        self.norm_and_rotate(layer, positions, &mut buf.qkv);
        attend(&buf.qkv, spans, self.heads, mask, &mut buf.context);
        // The residual stream keeps only the rows the attention produced.
        if mask == Mask::CausalLast {
            *x = spans
                .iter()
                .flat_map(|&(start, len)| x[(start + len - 1) * h..(start + len) * h].to_vec())
                .collect();
        }
        let rows = x.len() / h;
        layer
            .o_proj
            .apply(&buf.context, rows, Some(x), &mut buf.attended, threads);
        buf.normed.clear();
        buf.normed.extend_from_slice(&buf.attended);
        for row in buf.normed.chunks_exact_mut(h) {
            rms_norm(row, &layer.post_norm, self.eps);
        }
        layer
            .gate_up
            .apply(&buf.normed, rows, None, &mut buf.gate_up, threads);
        let inter = layer.gate_up.outputs() / 2;
        buf.act.clear();
        buf.act.reserve(rows * inter);
        for row in buf.gate_up.chunks_exact_mut(2 * inter) {
            let (gate, up) = row.split_at_mut(inter);
            silu_mul(gate, up);
            buf.act.extend_from_slice(gate);
        }
        layer
            .down
            .apply(&buf.act, rows, Some(&buf.attended), x, threads);
    }

    /// Per-head RMS norm and RoPE of every token's queries and keys, in place.
    fn norm_and_rotate(&self, layer: &Layer, positions: &[usize], qkv: &mut [f32]) {
        let Heads {
            heads,
            kv_heads,
            dim,
        } = self.heads;
        let half = dim / 2;
        let width = self.heads.qkv_width();
        for (row, &pos) in qkv.chunks_exact_mut(width).zip(positions) {
            let cos = &self.rope_cos[pos * half..(pos + 1) * half];
            let sin = &self.rope_sin[pos * half..(pos + 1) * half];
            for (head, x) in row[..(heads + kv_heads) * dim]
                .chunks_exact_mut(dim)
                .enumerate()
            {
                let gamma = if head < heads {
                    &layer.q_norm
                } else {
                    &layer.k_norm
                };
                rms_norm(x, gamma, self.eps);
                // Rotate halves: (a, b) -> (a·cos − b·sin, b·cos + a·sin).
                let (a, b) = x.split_at_mut(half);
                for i in 0..half {
                    let (ai, bi) = (a[i], b[i]);
                    a[i] = ai * cos[i] - bi * sin[i];
                    b[i] = bi * cos[i] + ai * sin[i];
                }
            }
        }
    }
}

/// Rows `ids` of `matrix` as f32 values, `(ids.len(), columns)` row-major.
pub(crate) fn gather_rows(matrix: &Tensor, ids: &[u32]) -> Result<Vec<f32>> {
    let idx = Tensor::new(ids, &Device::Cpu).map_err(|e| EmbedError::Inference(e.to_string()))?;
    matrix
        .index_select(&idx, 0)
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(|e| EmbedError::Inference(e.to_string()))
}
