//! Scaled dot-product attention over packed sequences, shared by the BERT and Qwen3
//! forwards.
//!
//! Tokens of a batch lie row after row (no padding). Each token's row of the fused
//! projection holds its query heads, then its key heads, then its value heads, each
//! `dim` wide; heads are read as strided views of those rows, so nothing is transposed.
//! Grouped-query attention maps query head `h` to key/value head `h / (heads / kv_heads)`.
//! The score scale is folded into the query weights at load time, so none is applied here.
//!
//! A job is one (sequence, head, block of queries); jobs run in parallel and each
//! writes its own rows × columns of the output. Query blocks keep the score matrix of
//! long sequences small, and a causal block only reads the keys up to its last query.

use rayon::prelude::*;

use crate::kernels::{matmul, softmax, Out, Rhs, View};

/// Score elements (f32) one job may hold: 1 Mi = 4 MiB.
const SCORE_ELEMENTS: usize = 1 << 20;
/// Queries per causal job: a block computes scores for the keys up to its last query,
/// so a 512-token sequence in two blocks computes 3/4 of the 512 × 512 scores, not all
/// of them. Shorter blocks skip more but pack each head's keys and values once per
/// block (`gemm` packs its operands on every call), which cost more than they saved:
/// one layer of four 512-token sequences took 37 to 46 ms in blocks of 256, 47 to 55
/// whole, and no less in blocks of 64 or 128.
const CAUSAL_QUERIES: usize = 256;

/// Head layout of a fused projection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    pub(crate) heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) dim: usize,
}

impl Heads {
    /// Width of one token's fused q, k, v row.
    pub(crate) fn qkv_width(self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.dim
    }

    /// Width of one token's attention output.
    pub(crate) fn out_width(self) -> usize {
        self.heads * self.dim
    }
}

/// Which queries attend, and to what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mask {
    /// Every query sees every key of its sequence (BERT).
    Full,
    /// Each query sees the keys at or before it (decoders).
    Causal,
    /// Causal, and only each sequence's last query is computed: the output has one row
    /// per sequence.
    CausalLast,
}

/// Attention of every sequence (`spans`: start token, length) over the fused `qkv` rows,
/// into `out`: one row (`heads × dim`) per token, or per sequence for
/// [`Mask::CausalLast`].
pub(crate) fn attend(
    qkv: &[f32],
    spans: &[(usize, usize)],
    heads: Heads,
    mask: Mask,
    out: &mut Vec<f32>,
) {
    let width = heads.out_width();
    let out_rows = match mask {
        Mask::CausalLast => spans.len(),
        Mask::Full | Mask::Causal => spans.iter().map(|s| s.1).sum(),
    };
    out.clear();
    out.resize(out_rows * width, 0.0);
    let mut jobs = Vec::new();
    let mut out_row = 0;
    for &(start, len) in spans {
        let (first, queries) = match mask {
            Mask::CausalLast => (len - 1, 1),
            Mask::Full | Mask::Causal => (0, len),
        };
        let mut block = (SCORE_ELEMENTS / len.max(1)).clamp(1, queries.max(1));
        if mask == Mask::Causal {
            block = block.min(CAUSAL_QUERIES);
        }
        for head in 0..heads.heads {
            for q0 in (0..queries).step_by(block) {
                jobs.push(Job {
                    start,
                    len,
                    head,
                    first: first + q0,
                    count: block.min(queries - q0),
                    out_row: out_row + q0,
                });
            }
        }
        out_row += queries;
    }
    let shared = SharedOut(out.as_mut_ptr(), out.len());
    jobs.par_iter()
        .for_each_init(Scratch::default, |scratch, job| {
            job.run(qkv, heads, mask, scratch, shared);
        });
}

/// Queries `first..first + count` of one head of one sequence.
struct Job {
    start: usize,
    len: usize,
    head: usize,
    first: usize,
    count: usize,
    /// Output row of the first query.
    out_row: usize,
}

impl Job {
    fn run(&self, qkv: &[f32], h: Heads, mask: Mask, scratch: &mut Scratch, shared: SharedOut) {
        let stride = h.qkv_width();
        let d = h.dim;
        let kv_head = self.head / (h.heads / h.kv_heads);
        // Causal queries see keys up to the block's last query only.
        let keys = match mask {
            Mask::Full => self.len,
            Mask::Causal | Mask::CausalLast => self.first + self.count,
        };
        let rows = &qkv[self.start * stride..(self.start + self.len) * stride];
        let view = |row: usize, count: usize, offset: usize| View {
            data: &rows[row * stride + offset..],
            rows: count,
            cols: d,
            stride,
        };
        let q = view(self.first, self.count, self.head * d);
        let k = view(0, keys, (h.heads + kv_head) * d);
        let v = view(0, keys, (h.heads + h.kv_heads + kv_head) * d);
        let scores = &mut scratch.scores;
        scores.clear();
        scores.resize(self.count * keys, 0.0);
        let out = Out {
            data: scores,
            stride: keys,
        };
        matmul(q, k, Rhs::Transposed, out, false, 1);
        for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
            let seen = match mask {
                Mask::Full => keys,
                Mask::Causal | Mask::CausalLast => self.first + i + 1,
            };
            softmax(&mut row[..seen]);
            row[seen..].fill(0.0);
        }
        let probs = View {
            data: scores,
            rows: self.count,
            cols: keys,
            stride: keys,
        };
        let ctx = &mut scratch.context;
        ctx.clear();
        ctx.resize(self.count * d, 0.0);
        let out = Out {
            data: ctx,
            stride: d,
        };
        matmul(probs, v, Rhs::Plain, out, false, 1);
        let width = h.out_width();
        for (r, row) in ctx.chunks_exact(d).enumerate() {
            // SAFETY: this job alone writes these `d` elements (its query's output row,
            // its head's columns).
            unsafe { shared.write((self.out_row + r) * width + self.head * d, row) };
        }
    }
}

thread_local! {
    /// Each worker's job buffers, kept from call to call.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// One attention job's buffers.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    context: Vec<f32>,
}

/// The output buffer, shared by the jobs that each write their own part.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    /// Attention of one query row over `keys` key/value rows, in plain loops.
    fn naive(q: &[f32], k: &[Vec<f32>], v: &[Vec<f32>]) -> Vec<f32> {
        let scores: Vec<f32> = k
            .iter()
            .map(|k| q.iter().zip(k).map(|(a, b)| a * b).sum())
            .collect();
        let max = scores.iter().copied().fold(f32::MIN, f32::max);
        let exp: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f32 = exp.iter().sum();
        (0..q.len())
            .map(|c| exp.iter().zip(v).map(|(e, v)| e / total * v[c]).sum())
            .collect()
    }

    #[test]
    fn every_mask_matches_plain_loops_with_grouped_heads() {
        let h = Heads {
            heads: 4,
            kv_heads: 2,
            dim: 3,
        };
        // The last sequence is long enough for several causal query blocks.
        let spans = [(0, 5), (5, 1), (6, 7), (13, 2 * CAUSAL_QUERIES + 9)];
        let tokens = 13 + 2 * CAUSAL_QUERIES + 9;
        let qkv = values(tokens * h.qkv_width(), 9);
        let part = |t: usize, col: usize| qkv[t * h.qkv_width() + col..][..h.dim].to_vec();
        for mask in [Mask::Full, Mask::Causal, Mask::CausalLast] {
            let mut out = Vec::new();
            attend(&qkv, &spans, h, mask, &mut out);
            let mut row = 0;
            for &(start, len) in &spans {
                let queries: Vec<usize> = match mask {
                    Mask::CausalLast => vec![len - 1],
                    _ => (0..len).collect(),
                };
                for qi in queries {
                    for head in 0..h.heads {
                        let kvh = head / 2;
                        let seen = if mask == Mask::Full { len } else { qi + 1 };
                        let k: Vec<_> = (0..seen)
                            .map(|t| part(start + t, (h.heads + kvh) * h.dim))
                            .collect();
                        let v: Vec<_> = (0..seen)
                            .map(|t| part(start + t, (h.heads + h.kv_heads + kvh) * h.dim))
                            .collect();
                        let want = naive(&part(start + qi, head * h.dim), &k, &v);
                        let got = &out[row * h.out_width() + head * h.dim..][..h.dim];
                        for (g, w) in got.iter().zip(&want) {
                            assert!((g - w).abs() < 1e-6, "{mask:?} {g} vs {w}");
                        }
                    }
                    row += 1;
                }
            }
            assert_eq!(out.len(), row * h.out_width());
        }
    }
}
