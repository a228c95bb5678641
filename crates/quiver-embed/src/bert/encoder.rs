//! The BERT encoder's forward pass, written for sentence embedding on a CPU.
//!
//! It matches the reference (transformers' `BertModel`, eager attention, float32) on
//! every real token, and differs in how the work is laid out:
//! - **No padding.** A batch's tokens are packed row after row, `(tokens, hidden)`;
//!   only attention looks across tokens, and it runs per sequence over that
//!   sequence's own rows. Padded positions, whose outputs mean pooling drops anyway,
//!   are never computed, so no attention mask is needed (a masked score's weight is
//!   exactly 0 in the reference too).
//! - **One projection for q, k and v**, their weights stacked at load time, with the
//!   `1/√head_dim` score scale folded into the query weights.
//! - **No transposes.** Attention ([`crate::attention`]) reads each head's queries,
//!   keys and values as strided views of the fused projection's rows.
//! - Biases and residuals are written into the output first and the product is added
//!   onto them, so neither takes a pass of its own.
//!
//! Projections are [`Linear`] layers, in f32 whatever the checkpoint's type, or int8
//! when the model is loaded with [`crate::Precision::Int8`].

use rayon::prelude::*;
use serde::Deserialize;

use crate::attention::{attend, Heads, Mask};
use crate::kernels::{gelu, layer_norm};
use crate::linear::{Linear, Rows};
use crate::pool::Pool;
use crate::qwen3::embedder::split_by_tokens;
use crate::weights::Weights;
use crate::{EmbedError, Precision, Result};

/// The parts of `config.json` the forward pass reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) intermediate_size: usize,
    #[serde(default = "default_act")]
    pub(crate) hidden_act: String,
    pub(crate) max_position_embeddings: usize,
    #[serde(default = "default_types")]
    pub(crate) type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub(crate) layer_norm_eps: f64,
    #[serde(default)]
    pub(crate) position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}

fn default_types() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Why this configuration cannot run, if it cannot.
    pub(crate) fn unsupported(&self) -> Option<String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Some(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if let Some(kind) = &self.position_embedding_type {
            if kind != "absolute" {
                return Some(format!(
                    "position_embedding_type {kind:?} (only \"absolute\" is supported)"
                ));
            }
        }
        if self.hidden_act != "gelu" && self.hidden_act != "relu" {
            return Some(format!(
                "hidden_act {:?} (supported: \"gelu\", \"relu\")",
                self.hidden_act
            ));
        }
        None
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    fn apply(&self, x: &mut [f32], eps: f32) {
        for row in x.chunks_exact_mut(self.gamma.len()) {
            layer_norm(row, &self.gamma, &self.beta, eps);
        }
    }
}

struct Layer {
    /// Queries (pre-scaled), keys and values side by side: `(hidden, 3 · hidden)`.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    inter: Linear,
    out: Linear,
    out_norm: Norm,
}

/// A loaded BERT encoder.
pub(crate) struct Encoder {
    word: Vec<f32>,
    /// Position embedding plus token type 0's, per position.
    position: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    eps: f32,
    relu: bool,
    vocab: usize,
    max_positions: usize,
    /// Buffers of finished forwards, reused by the next ones.
    spare: Pool<Buffers>,
}

/// Buffers one forward pass reuses from layer to layer.
#[derive(Default)]
struct Buffers {
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    inter: Vec<f32>,
}

fn dense(
    w: &Weights,
    name: &str,
    outputs: usize,
    inputs: usize,
    precision: Precision,
) -> Result<Linear> {
    let r = Rows::read(w, name, outputs, inputs, true)?;
    Ok(Linear::new(&r.weight, outputs, inputs, r.bias, precision))
}

fn norm(w: &Weights, name: &str, size: usize) -> Result<Norm> {
    Ok(Norm {
        gamma: w.floats(&format!("{name}.weight"), &[size])?,
        beta: w.floats(&format!("{name}.bias"), &[size])?,
    })
}

impl Encoder {
    /// Reads every tensor from `w`, viewed at the model's root (`embeddings.…`,
    /// `encoder.layer.N.…`).
    pub(crate) fn load(w: &Weights, cfg: &BertConfig, precision: Precision) -> Result<Self> {
        let h = cfg.hidden_size;
        let word = w.floats("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?;
        let positions = w.floats(
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings, h],
        )?;
        let types = w.floats(
            "embeddings.token_type_embeddings.weight",
            &[cfg.type_vocab_size, h],
        )?;
        let type0 = types
            .get(..h)
            .ok_or_else(|| w.error("embeddings.token_type_embeddings.weight", "no rows"))?;
        let position = positions
            .chunks_exact(h)
            .flat_map(|p| p.iter().zip(type0).map(|(a, b)| a + b))
            .collect();
        let scale = 1.0 / ((h / cfg.num_attention_heads) as f32).sqrt();
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let a = format!("{p}.attention");
            let inter = cfg.intermediate_size;
            layers.push(Layer {
                // The score scale is folded into the query projection.
                qkv: Linear::stacked(
                    vec![
                        Rows::read(w, &format!("{a}.self.query"), h, h, true)?.scaled(scale),
                        Rows::read(w, &format!("{a}.self.key"), h, h, true)?,
                        Rows::read(w, &format!("{a}.self.value"), h, h, true)?,
                    ],
                    h,
                    precision,
                ),
                attn_out: dense(w, &format!("{a}.output.dense"), h, h, precision)?,
                attn_norm: norm(w, &format!("{a}.output.LayerNorm"), h)?,
                inter: dense(w, &format!("{p}.intermediate.dense"), inter, h, precision)?,
                out: dense(w, &format!("{p}.output.dense"), h, inter, precision)?,
                out_norm: norm(w, &format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            word,
            position,
            emb_norm: norm(w, "embeddings.LayerNorm", h)?,
            layers,
            hidden: h,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps as f32,
            relu: cfg.hidden_act == "relu",
            vocab: cfg.vocab_size,
            max_positions: cfg.max_position_embeddings,
            spare: Pool::default(),
        })
    }

    /// The mean over its tokens of each sequence's final hidden states.
    pub(crate) fn mean_pooled(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        for seq in seqs {
            if seq.is_empty() {
                return Err(EmbedError::InvalidInput("empty token sequence".into()));
            }
            if seq.len() > self.max_positions {
                return Err(EmbedError::InvalidInput(format!(
                    "{} tokens, more than the model's {} positions",
                    seq.len(),
                    self.max_positions
                )));
            }
            if let Some(&id) = seq.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(EmbedError::InvalidInput(format!(
                    "token id {id} is outside the vocabulary of {}",
                    self.vocab
                )));
            }
        }
        // With a sequence per thread or more, each thread runs whole sequences through
        // every layer on its own: no product is split, so no thread waits on another.
        let threads = rayon::current_num_threads();
        let x: Vec<f32> = if threads > 1 && seqs.len() >= threads {
            let parts: Vec<Vec<f32>> = split_by_tokens(seqs, threads)
                .par_iter()
                .map(|part| self.forward(part, 1))
                .collect();
            parts.concat()
        } else {
            self.forward(seqs, threads)
        };
        let h = self.hidden;
        let mut at = 0;
        Ok(seqs
            .iter()
            .map(|seq| {
                let rows = &x[at * h..(at + seq.len()) * h];
                at += seq.len();
                let mut sum = vec![0f32; h];
                for row in rows.chunks_exact(h) {
                    for (s, v) in sum.iter_mut().zip(row) {
                        *s += v;
                    }
                }
                let n = seq.len() as f32;
                sum.iter_mut().for_each(|s| *s /= n);
                sum
            })
            .collect())
    }

    /// The final hidden states of every token, packed `(tokens, hidden)`; products use
    /// `threads` threads.
    fn forward(&self, seqs: &[Vec<u32>], threads: usize) -> Vec<f32> {
        let h = self.hidden;
        let tokens: usize = seqs.iter().map(Vec::len).sum();
        let mut x = Vec::with_capacity(tokens * h);
        for seq in seqs {
            for (pos, &id) in seq.iter().enumerate() {
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                x.extend(word.iter().zip(position).map(|(a, b)| a + b));
            }
        }
        self.emb_norm.apply(&mut x, self.eps);
        let mut spans = Vec::with_capacity(seqs.len());
        let mut at = 0;
        for seq in seqs {
            spans.push((at, seq.len()));
            at += seq.len();
        }
        let mut buf = self.spare.take();
        for layer in &self.layers {
            self.layer(layer, &spans, &mut x, &mut buf, threads);
        }
        self.spare.put(buf);
        x
    }

    fn layer(
        &self,
        layer: &Layer,
        spans: &[(usize, usize)],
        x: &mut Vec<f32>,
        buf: &mut Buffers,
        threads: usize,
    ) {
        let tokens = x.len() / self.hidden;
        layer.qkv.apply(x, tokens, None, &mut buf.qkv, threads);
        let heads = Heads {
            heads: self.heads,
            kv_heads: self.heads,
            dim: self.hidden / self.heads,
        };
        attend(&buf.qkv, spans, heads, Mask::Full, &mut buf.context);
        layer.attn_out.apply(
            &buf.context,
            tokens,
            Some(x.as_slice()),
            &mut buf.attended,
            threads,
        );
        layer.attn_norm.apply(&mut buf.attended, self.eps);
        layer
            .inter
            .apply(&buf.attended, tokens, None, &mut buf.inter, threads);
        if self.relu {
            buf.inter.iter_mut().for_each(|v| *v = v.max(0.0));
        } else {
            buf.inter.par_chunks_mut(1 << 14).for_each(gelu);
        }
        layer
            .out
            .apply(&buf.inter, tokens, Some(&buf.attended), x, threads);
        layer.out_norm.apply(x, self.eps);
    }
}
