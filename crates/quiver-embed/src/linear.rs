//! Linear layers, `y = x · Wᵀ + b`, with the weight prepared once at load time: packed
//! in f32 for the AVX-512 kernel of [`crate::panels`], and for products of many rows
//! split for the AMX tile unit ([`crate::amx`]) or laid out for the `gemm` crate; or
//! quantized to int8 for [`crate::int8`]'s kernels.
//!
//! Both forwards (BERT and Qwen3) run every projection through [`Linear::apply`], which
//! writes the bias (plus a residual, when given) first and accumulates the product onto
//! it, so a residual connection costs no extra pass.

use crate::amx::{self, AmxWeight};
use crate::int8::Int8Weight;
use crate::kernels::{matmul, Out, Rhs, View};
use crate::panels::{accumulate, F32Weight};
use crate::weights::Weights;
use crate::{Precision, Result};

/// Products of at most this many rows use the packed f32 kernel rather than `gemm`.
/// Up to here the packed kernel is faster (2x at 32 rows, where `gemm`'s packing of the
/// weight on every call costs as much as the arithmetic, about 1.1x at 128 to 256);
/// beyond it the two are within a few percent, `gemm` ahead.
const PACKED_ROWS: usize = 256;
/// Products of at least this many rows run on the tile unit rather than the packed
/// kernel: 1.3x its speed at 32 rows, 1.5 to 1.9x from 64; at 16 rows the two are even.
const AMX_ROWS: usize = 32;

/// The weight of a linear layer in the forms its kernels read.
enum Weight {
    F32 {
        /// Packed for the AVX-512 kernel ([`crate::panels`]), where the CPU has one; it
        /// runs the products of fewer rows than `bulk` wants.
        packed: Option<F32Weight>,
        bulk: Bulk,
    },
    /// Quantized per output column; see [`Int8Weight`].
    Int8(Int8Weight),
}

/// An f32 weight in the form products of many rows read.
enum Bulk {
    /// `(inputs, outputs)` row-major: `gemm` reads it as the right-hand matrix.
    Gemm(Vec<f32>),
    /// Split into bf16 parts for the tile unit ([`Precision::F32`] on a CPU with AMX).
    Amx(AmxWeight),
}

impl Bulk {
    /// The fewest rows this form runs (fewer go to the packed kernel).
    fn min_rows(&self) -> usize {
        match self {
            Bulk::Gemm(_) => PACKED_ROWS + 1,
            Bulk::Amx(_) => AMX_ROWS,
        }
    }
}

/// A linear layer: `outputs` × `inputs` weights and an optional bias.
pub(crate) struct Linear {
    weight: Weight,
    bias: Option<Vec<f32>>,
    inputs: usize,
    outputs: usize,
}

impl Linear {
    /// A layer from PyTorch's `(outputs, inputs)` row-major weight, prepared for the
    /// kernels of `precision`.
    pub(crate) fn new(
        rows: &[f32],
        outputs: usize,
        inputs: usize,
        bias: Option<Vec<f32>>,
        precision: Precision,
    ) -> Self {
        assert_eq!(rows.len(), outputs * inputs, "weight shape");
        if let Some(b) = &bias {
            assert_eq!(b.len(), outputs, "bias shape");
        }
        let weight = if precision == Precision::Int8 {
            Weight::Int8(Int8Weight::quantize(rows, outputs, inputs))
        } else {
            let packed = F32Weight::pack(rows, outputs, inputs).filter(|_| !gemm_only());
            let bulk = if precision == Precision::F32 && amx::available() {
                Bulk::Amx(AmxWeight::pack(rows, outputs, inputs))
            } else {
                let mut plain = vec![0f32; rows.len()];
                for (o, row) in rows.chunks_exact(inputs).enumerate() {
                    for (i, &w) in row.iter().enumerate() {
                        plain[i * outputs + o] = w;
                    }
                }
                Bulk::Gemm(plain)
            };
            Weight::F32 { packed, bulk }
        };
        Linear {
            weight,
            bias,
            inputs,
            outputs,
        }
    }

    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// `out = x · Wᵀ + bias (+ residual)` for `rows` rows of `x` (`inputs` wide);
    /// `out` is resized to `rows × outputs`. `threads` > 1 splits the work over the
    /// current rayon pool.
    pub(crate) fn apply(
        &self,
        x: &[f32],
        rows: usize,
        residual: Option<&[f32]>,
        out: &mut Vec<f32>,
        threads: usize,
    ) {
        assert_eq!(x.len(), rows * self.inputs, "input shape");
        let n = self.outputs;
        // The starting values are written straight into the cleared buffer (which keeps
        // its pages when reused): zeroing it first cost a pass as long as the bias's.
        out.clear();
        match (residual, &self.bias) {
            (Some(res), bias) => {
                assert_eq!(res.len(), rows * n, "residual shape");
                out.extend_from_slice(res);
                if let Some(bias) = bias {
                    // Plain per-row loops vectorize (an iterator chain over rows does not).
                    for row in out.chunks_exact_mut(n) {
                        row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
                    }
                }
            }
            (None, Some(bias)) => {
                for _ in 0..rows {
                    out.extend_from_slice(bias);
                }
            }
            (None, None) => out.resize(rows * n, 0.0),
        }
        match &self.weight {
            Weight::F32 {
                packed: Some(w),
                bulk,
            } if rows < bulk.min_rows() => accumulate(w, x, rows, out, threads),
            Weight::F32 {
                bulk: Bulk::Amx(w), ..
            } => amx::accumulate(w, x, rows, out, threads),
            Weight::F32 {
                bulk: Bulk::Gemm(w),
                ..
            } => {
                let a = View {
                    data: x,
                    rows,
                    cols: self.inputs,
                    stride: self.inputs,
                };
                let b = View {
                    data: w,
                    rows: self.inputs,
                    cols: n,
                    stride: n,
                };
                let o = Out {
                    data: out,
                    stride: n,
                };
                matmul(a, b, Rhs::Plain, o, true, threads);
            }
            Weight::Int8(w) => accumulate(w, x, rows, out, threads),
        }
    }
}

/// A projection as a checkpoint stores it: PyTorch's `(outputs, inputs)` weight rows,
/// and the bias where the model has one.
pub(crate) struct Rows {
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Option<Vec<f32>>,
}

impl Rows {
    /// Reads `{name}.weight` (and `{name}.bias` when `bias`).
    pub(crate) fn read(
        w: &Weights,
        name: &str,
        outputs: usize,
        inputs: usize,
        bias: bool,
    ) -> Result<Rows> {
        Ok(Rows {
            weight: w.floats(&format!("{name}.weight"), &[outputs, inputs])?,
            bias: if bias {
                Some(w.floats(&format!("{name}.bias"), &[outputs])?)
            } else {
                None
            },
        })
    }

    /// The same projection with weights and bias multiplied by `factor`.
    pub(crate) fn scaled(mut self, factor: f32) -> Rows {
        self.weight.iter_mut().for_each(|x| *x *= factor);
        if let Some(b) = &mut self.bias {
            b.iter_mut().for_each(|x| *x *= factor);
        }
        self
    }
}

impl Linear {
    /// One layer from projections stacked along their outputs (a bias only if every
    /// part has one).
    pub(crate) fn stacked(parts: Vec<Rows>, inputs: usize, precision: Precision) -> Linear {
        let has_bias = parts.iter().all(|p| p.bias.is_some());
        let mut weight = Vec::new();
        let mut bias = Vec::new();
        for p in parts {
            weight.extend_from_slice(&p.weight);
            bias.extend(p.bias.unwrap_or_default());
        }
        let outputs = weight.len() / inputs;
        Linear::new(
            &weight,
            outputs,
            inputs,
            has_bias.then_some(bias),
            precision,
        )
    }
}

/// Whether f32 layers must use `gemm` even where the packed kernel runs (tests).
fn gemm_only() -> bool {
    #[cfg(test)]
    return tests::GEMM_ONLY.get();
    #[cfg(not(test))]
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::kernels::test_values as values;

    thread_local! {
        /// Makes f32 layers built on this thread use `gemm`.
        pub(super) static GEMM_ONLY: Cell<bool> = const { Cell::new(false) };
    }

    fn reference(w: &[f32], b: Option<&[f32]>, x: &[f32], outputs: usize) -> Vec<f32> {
        let inputs = w.len() / outputs;
        x.chunks_exact(inputs)
            .flat_map(|row| {
                (0..outputs).map(move |o| {
                    let dot: f32 = row
                        .iter()
                        .zip(&w[o * inputs..(o + 1) * inputs])
                        .map(|(a, b)| a * b)
                        .sum();
                    dot + b.map_or(0.0, |b| b[o])
                })
            })
            .collect()
    }

    #[test]
    fn f32_layer_matches_the_plain_product_with_bias_and_residual() {
        let (outputs, inputs) = (19, 23);
        let w = values(outputs * inputs, 1);
        let b = values(outputs, 2);
        // One buffer for every call, so each must start from its own values, not stale ones.
        let mut out = vec![7.0; 3];
        // 5 rows run on the packed kernel (or `gemm`), 40 on the tile unit where there is
        // one, whose operands keep about 16 bits (`crate::amx`), else on `gemm` too.
        for (rows, precision, tolerance) in [
            (5, Precision::F32Highest, 1e-5),
            (5, Precision::F32, 1e-5),
            (40, Precision::F32Highest, 1e-5),
            (40, Precision::F32, 2e-4),
        ] {
            let x = values(rows * inputs, 3);
            let res = values(rows * outputs, 4);
            for gemm in [true, false] {
                GEMM_ONLY.set(gemm);
                for (bias, residual) in [(true, true), (true, false), (false, true), (false, false)]
                {
                    let bias = bias.then(|| b.clone());
                    let residual = residual.then_some(res.as_slice());
                    let layer = Linear::new(&w, outputs, inputs, bias.clone(), precision);
                    layer.apply(&x, rows, residual, &mut out, 2);
                    let want = reference(&w, bias.as_deref(), &x, outputs);
                    assert_eq!(out.len(), want.len());
                    for (i, (o, w)) in out.iter().zip(&want).enumerate() {
                        let w = w + residual.map_or(0.0, |r| r[i]);
                        assert!(
                            (o - w).abs() < tolerance,
                            "{precision:?} gemm {gemm}: {o} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn int8_layer_stays_close_to_f32() {
        let (outputs, inputs, rows) = (70, 130, 9);
        let w = values(outputs * inputs, 5);
        let x = values(rows * inputs, 6);
        let layer = Linear::new(&w, outputs, inputs, None, Precision::Int8);
        let mut out = Vec::new();
        layer.apply(&x, rows, None, &mut out, 1);
        let want = reference(&w, None, &x, outputs);
        let scale = want.iter().map(|v| v.abs()).fold(0.0, f32::max);
        for (o, w) in out.iter().zip(&want) {
            assert!((o - w).abs() < 0.02 * scale, "{o} vs {w}");
        }
    }
}
