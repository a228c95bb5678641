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
//! - **No transposes.** Each attention head reads its queries, keys and values as
//!   strided views of the fused projection's rows and writes its output into its
//!   columns of the context rows.
//! - Biases and residuals are written into the output first and the product is added
//!   onto them, so neither takes a pass of its own.
//!
//! Weights are held in `f32` whatever the checkpoint's type, transposed at load time
//! to `(in, out)` so every product reads them row by row.

use candle_core::DType;
use rayon::prelude::*;
use serde::Deserialize;

use crate::kernels::{gelu, layer_norm, matmul, softmax, Out, Rhs, View};
use crate::weights::Weights;
use crate::{EmbedError, Result};

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

/// A `(in, out)` weight, row-major, and its bias.
struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Dense {
    fn view(&self) -> View<'_> {
        View {
            data: &self.weight,
            rows: self.inputs,
            cols: self.outputs,
            stride: self.outputs,
        }
    }

    /// `out = x · W + bias (+ residual)`, for `rows` rows of `x`.
    fn apply(
        &self,
        x: &[f32],
        rows: usize,
        residual: Option<&[f32]>,
        out: &mut Vec<f32>,
        threads: usize,
    ) {
        out.clear();
        out.reserve(rows * self.outputs);
        for r in 0..rows {
            match residual {
                Some(res) => out.extend(
                    res[r * self.outputs..(r + 1) * self.outputs]
                        .iter()
                        .zip(&self.bias)
                        .map(|(a, b)| a + b),
                ),
                None => out.extend_from_slice(&self.bias),
            }
        }
        let xv = View {
            data: x,
            rows,
            cols: self.inputs,
            stride: self.inputs,
        };
        let out = Out {
            data: out,
            stride: self.outputs,
        };
        matmul(xv, self.view(), Rhs::Plain, out, true, threads);
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
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    inter: Dense,
    out: Dense,
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
}

/// Buffers one forward pass reuses from layer to layer.
#[derive(Default)]
struct Buffers {
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    inter: Vec<f32>,
}

fn floats(w: &Weights, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    w.get(shape, name)?
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| w.error(name, e))
}

/// Reads a `(out, in)` linear layer and transposes it to `(in, out)`.
fn dense(w: &Weights, name: &str, outputs: usize, inputs: usize) -> Result<Dense> {
    let raw = floats(w, &format!("{name}.weight"), &[outputs, inputs])?;
    let mut weight = vec![0f32; raw.len()];
    for o in 0..outputs {
        for i in 0..inputs {
            weight[i * outputs + o] = raw[o * inputs + i];
        }
    }
    Ok(Dense {
        weight,
        bias: floats(w, &format!("{name}.bias"), &[outputs])?,
        inputs,
        outputs,
    })
}

fn norm(w: &Weights, name: &str, size: usize) -> Result<Norm> {
    Ok(Norm {
        gamma: floats(w, &format!("{name}.weight"), &[size])?,
        beta: floats(w, &format!("{name}.bias"), &[size])?,
    })
}

/// Stacks the query, key and value projections column-wise into one `(in, 3 · out)`
/// projection, scaling the query's weights and bias by `scale`.
fn stack_qkv(q: Dense, k: Dense, v: Dense, scale: f32) -> Dense {
    let (inputs, h) = (q.inputs, q.outputs);
    let mut weight = Vec::with_capacity(inputs * 3 * h);
    for i in 0..inputs {
        weight.extend(q.weight[i * h..(i + 1) * h].iter().map(|x| x * scale));
        weight.extend_from_slice(&k.weight[i * h..(i + 1) * h]);
        weight.extend_from_slice(&v.weight[i * h..(i + 1) * h]);
    }
    let mut bias: Vec<f32> = q.bias.iter().map(|x| x * scale).collect();
    bias.extend_from_slice(&k.bias);
    bias.extend_from_slice(&v.bias);
    Dense {
        weight,
        bias,
        inputs,
        outputs: 3 * h,
    }
}

impl Encoder {
    /// Reads every tensor from `w`, viewed at the model's root (`embeddings.…`,
    /// `encoder.layer.N.…`).
    pub(crate) fn load(w: &Weights, cfg: &BertConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let word = floats(w, "embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?;
        let positions = floats(
            w,
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings, h],
        )?;
        let types = floats(
            w,
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
                qkv: stack_qkv(
                    dense(w, &format!("{a}.self.query"), h, h)?,
                    dense(w, &format!("{a}.self.key"), h, h)?,
                    dense(w, &format!("{a}.self.value"), h, h)?,
                    scale,
                ),
                attn_out: dense(w, &format!("{a}.output.dense"), h, h)?,
                attn_norm: norm(w, &format!("{a}.output.LayerNorm"), h)?,
                inter: dense(w, &format!("{p}.intermediate.dense"), inter, h)?,
                out: dense(w, &format!("{p}.output.dense"), h, inter)?,
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
        let x = self.forward(seqs);
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

    /// The final hidden states of every token, packed `(tokens, hidden)`.
    fn forward(&self, seqs: &[Vec<u32>]) -> Vec<f32> {
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
        let threads = rayon::current_num_threads();
        let mut buf = Buffers::default();
        for layer in &self.layers {
            self.layer(layer, seqs, &mut x, &mut buf, threads);
        }
        x
    }

    fn layer(
        &self,
        layer: &Layer,
        seqs: &[Vec<u32>],
        x: &mut Vec<f32>,
        buf: &mut Buffers,
        threads: usize,
    ) {
        let tokens = x.len() / self.hidden;
        layer.qkv.apply(x, tokens, None, &mut buf.qkv, threads);
        self.attend(seqs, &buf.qkv, &mut buf.context);
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

    /// Self-attention of every sequence and head over the fused `qkv` rows, into
    /// `context` `(tokens, hidden)`. Heads run in parallel, each product on one thread.
    fn attend(&self, seqs: &[Vec<u32>], qkv: &[f32], context: &mut Vec<f32>) {
        let h = self.hidden;
        let d = h / self.heads;
        let tokens = qkv.len() / (3 * h);
        context.clear();
        context.resize(tokens * h, 0.0);
        let mut starts = Vec::with_capacity(seqs.len());
        let mut at = 0;
        for seq in seqs {
            starts.push((at, seq.len()));
            at += seq.len();
        }
        // Each (sequence, head) writes its own rows × columns of `context`: disjoint.
        let shared = SharedOut(context.as_mut_ptr(), context.len());
        let jobs: Vec<(usize, usize, usize)> = starts
            .iter()
            .flat_map(|&(start, len)| (0..self.heads).map(move |head| (start, len, head)))
            .collect();
        jobs.par_iter()
            .for_each_init(Scratch::default, |scratch, &(start, len, head)| {
                let rows = &qkv[start * 3 * h..(start + len) * 3 * h];
                let view = |offset: usize| View {
                    data: &rows[offset..],
                    rows: len,
                    cols: d,
                    stride: 3 * h,
                };
                let scores = &mut scratch.scores;
                scores.clear();
                scores.resize(len * len, 0.0);
                let (q, k, v) = (view(head * d), view(h + head * d), view(2 * h + head * d));
                let out = Out {
                    data: scores,
                    stride: len,
                };
                matmul(q, k, Rhs::Transposed, out, false, 1);
                for row in scores.chunks_exact_mut(len) {
                    softmax(row);
                }
                let probs = View {
                    data: scores,
                    rows: len,
                    cols: len,
                    stride: len,
                };
                let ctx = &mut scratch.context;
                ctx.clear();
                ctx.resize(len * d, 0.0);
                let out = Out {
                    data: ctx,
                    stride: d,
                };
                matmul(probs, v, Rhs::Plain, out, false, 1);
                for (r, row) in ctx.chunks_exact(d).enumerate() {
                    // SAFETY: this job alone writes these `d` elements (row start + r,
                    // head's columns) of `context`.
                    unsafe { shared.write((start + r) * h + head * d, row) };
                }
            });
    }
}

/// One attention job's buffers, kept per worker.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    context: Vec<f32>,
}

/// `context`'s buffer, shared by the attention jobs that each write their own part.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32, usize);

// SAFETY: jobs write disjoint elements (see `attend`), and the buffer outlives them.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Copies `values` to elements `at..at + values.len()`.
    ///
    /// # Safety
    /// No other thread may read or write those elements meanwhile.
    unsafe fn write(&self, at: usize, values: &[f32]) {
        assert!(at + values.len() <= self.1);
        // SAFETY: in bounds (asserted); exclusivity is the caller's promise.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.0.add(at), values.len()) };
    }
}
