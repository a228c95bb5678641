//! The CPU kernels of the BERT and Qwen3 forward passes, over plain `f32` rows: matrix products
//! (the `gemm` crate, which picks its AVX2 or AVX-512 kernels at run time), layer
//! norm, softmax and GELU (`rten-vecmath`'s vectorized versions, which dispatch the
//! same way and fall back to portable code elsewhere).
//!
//! A matrix here is a slice and a row stride: row `r` starts at `r * stride`, its
//! elements are adjacent. Strides let the attention read one head's queries, keys and
//! values straight out of the fused projection's rows, with no transposing copies.

use gemm::Parallelism;
use rten_simd::{SimdOp, SimdUnaryOp};
use rten_vecmath::{
    Gelu, Normalize, NormalizeOptions, Silu, Softmax, Sum, SumSquare, SumSquareSub,
};

/// A read-only matrix view: `rows` rows of `cols` elements, `stride` apart.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) stride: usize,
}

impl View<'_> {
    fn check(&self) {
        if self.rows > 0 {
            assert!(self.cols <= self.stride || self.rows == 1);
            assert!((self.rows - 1) * self.stride + self.cols <= self.data.len());
        }
    }
}

/// The output of a product: `out.len()` must cover `rows` rows `stride` apart.
pub(crate) struct Out<'a> {
    pub(crate) data: &'a mut [f32],
    pub(crate) stride: usize,
}

/// How the right-hand matrix of a product is laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rhs {
    /// `b` is `k × n`: `out = a · b`.
    Plain,
    /// `b` is `n × k` (one row per output column, as keys are): `out = a · bᵀ`.
    Transposed,
}

/// `out (+)= a · b` (or `a · bᵀ`): adds to what `out` holds when `accumulate`, else
/// overwrites it. `threads` > 1 splits the product over the current rayon pool.
pub(crate) fn matmul(
    a: View<'_>,
    b: View<'_>,
    rhs: Rhs,
    out: Out<'_>,
    accumulate: bool,
    threads: usize,
) {
    a.check();
    b.check();
    let (m, k) = (a.rows, a.cols);
    let (n, b_rs, b_cs) = match rhs {
        Rhs::Plain => {
            assert_eq!(b.rows, k, "inner dimensions differ");
            (b.cols, b.stride, 1)
        }
        Rhs::Transposed => {
            assert_eq!(b.cols, k, "inner dimensions differ");
            (b.rows, 1, b.stride)
        }
    };
    if m == 0 || n == 0 {
        return;
    }
    assert!(out.stride >= n && (m - 1) * out.stride + n <= out.data.len());
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                out.data[r * out.stride..r * out.stride + n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every element the strides reach inside the
    // slices; `out` is borrowed mutably, so nothing else reads or writes it meanwhile.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.data.as_mut_ptr(),
            1,
            out.stride as isize,
            accumulate,
            a.data.as_ptr(),
            1,
            a.stride as isize,
            b.data.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Layer norm of one row in place: `(x - mean) / sqrt(var + eps) · gamma + beta`, with
/// the biased variance, as the reference computes it.
pub(crate) fn layer_norm(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = Sum::new(row).dispatch() / n;
    let var = SumSquareSub::new(row, mean).dispatch() / n;
    let opts = NormalizeOptions {
        pre_scale_bias: mean,
        scale: 1.0 / (var + eps).sqrt(),
        element_scale: Some(gamma),
        bias: 0.0,
        element_bias: Some(beta),
    };
    Normalize::new_mut(row, opts).dispatch();
}

/// RMS norm of one row in place: `x / sqrt(mean(x²) + eps) · gamma`.
pub(crate) fn rms_norm(row: &mut [f32], gamma: &[f32], eps: f32) {
    let mean_square = SumSquare::new(row).dispatch() / row.len() as f32;
    let opts = NormalizeOptions {
        pre_scale_bias: 0.0,
        scale: 1.0 / (mean_square + eps).sqrt(),
        element_scale: Some(gamma),
        bias: 0.0,
        element_bias: None,
    };
    Normalize::new_mut(row, opts).dispatch();
}

/// `gate = silu(gate) · up`, elementwise, in place (the gated MLP's activation).
pub(crate) fn silu_mul(gate: &mut [f32], up: &[f32]) {
    Silu {}.map_mut(gate);
    gate.iter_mut().zip(up).for_each(|(g, u)| *g *= u);
}

/// Softmax of one row in place.
pub(crate) fn softmax(row: &mut [f32]) {
    Softmax::new_mut(row).dispatch();
}

/// GELU with the exact error function (BERT's `gelu`), in place.
pub(crate) fn gelu(xs: &mut [f32]) {
    Gelu {}.map_mut(xs);
}

/// Deterministic values in `-0.5..0.5` for kernel tests.
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32)
        .map(|v| v / (1u32 << 24) as f32 - 0.5)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// Values of every sign and size the models meet, at a length that is no multiple
    /// of any vector width.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        test_values(n, seed).iter().map(|v| v * 12.0).collect()
    }

    fn plain_product(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, bt: bool) -> Vec<f32> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                for t in 0..k {
                    let bv = if bt { b[j * k + t] } else { b[t * n + j] };
                    out[i * n + j] += f64::from(a[i * k + t]) * f64::from(bv);
                }
            }
        }
        out.into_iter().map(|x| x as f32).collect()
    }

    #[test]
    fn products_match_plain_sums() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 37, 130)] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            for (rhs, bt) in [(Rhs::Plain, false), (Rhs::Transposed, true)] {
                let bview = if bt {
                    View {
                        data: &b,
                        rows: n,
                        cols: k,
                        stride: k,
                    }
                } else {
                    View {
                        data: &b,
                        rows: k,
                        cols: n,
                        stride: n,
                    }
                };
                for threads in [1, 2] {
                    let mut out = vec![1.0f32; m * n];
                    let aview = View {
                        data: &a,
                        rows: m,
                        cols: k,
                        stride: k,
                    };
                    matmul(
                        aview,
                        bview,
                        rhs,
                        Out {
                            data: &mut out,
                            stride: n,
                        },
                        true,
                        threads,
                    );
                    let want = plain_product(&a, &b, m, k, n, bt);
                    for (got, want) in out.iter().zip(&want) {
                        assert!(
                            (got - 1.0 - want).abs() <= 1e-3 * (1.0 + want.abs()),
                            "{got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn strided_views_read_only_their_columns() {
        // A 4 x 3 block inside rows of 8, times the transposed 2 x 3 block at column 5.
        let wide = values(4 * 8, 3);
        let a: Vec<f32> = (0..4)
            .flat_map(|r| wide[r * 8..r * 8 + 3].to_vec())
            .collect();
        let b: Vec<f32> = (0..2)
            .flat_map(|r| wide[r * 8 + 5..r * 8 + 8].to_vec())
            .collect();
        let mut out = vec![0f32; 4 * 6];
        matmul(
            View {
                data: &wide,
                rows: 4,
                cols: 3,
                stride: 8,
            },
            View {
                data: &wide[5..],
                rows: 2,
                cols: 3,
                stride: 8,
            },
            Rhs::Transposed,
            Out {
                data: &mut out,
                stride: 6,
            },
            false,
            1,
        );
        let want = plain_product(&a, &b, 4, 3, 2, true);
        for r in 0..4 {
            for c in 0..2 {
                assert!((out[r * 6 + c] - want[r * 2 + c]).abs() < 1e-4);
            }
            assert!(out[r * 6 + 2..r * 6 + 6].iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn layer_norm_matches_the_formula() {
        for n in [1, 7, 32, 385] {
            let x = values(n, 4);
            let gamma = values(n, 5);
            let beta = values(n, 6);
            let mut got = x.clone();
            layer_norm(&mut got, &gamma, &beta, 1e-12);
            let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
            let var = x
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n as f64;
            for i in 0..n {
                let want = (f64::from(x[i]) - mean) / (var + 1e-12).sqrt() * f64::from(gamma[i])
                    + f64::from(beta[i]);
                assert!(
                    (f64::from(got[i]) - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "n {n}"
                );
            }
        }
    }

    #[test]
    fn softmax_matches_the_formula_for_large_and_small_inputs() {
        for (n, scale) in [(1, 1.0), (9, 1.0), (130, 30.0), (77, 1e-3)] {
            let x: Vec<f32> = values(n, 7).iter().map(|v| v * scale).collect();
            let mut got = x.clone();
            softmax(&mut got);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = x.iter().map(|&v| f64::from(v - max).exp()).sum();
            for (g, &v) in got.iter().zip(&x) {
                let want = f64::from(v - max).exp() / sum;
                assert!((f64::from(*g) - want).abs() < 1e-6, "n {n}: {g} vs {want}");
            }
        }
    }

    #[test]
    fn gelu_matches_candles_exact_gelu() {
        for n in [1, 15, 1000] {
            let mut x = values(n, 8);
            x.extend([0.0, -0.0, 1e-8, -1e-8, 40.0, -40.0]);
            let want: Vec<f32> = Tensor::new(x.as_slice(), &Device::Cpu)
                .unwrap()
                .gelu_erf()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mut got = x.clone();
            gelu(&mut got);
            for ((g, w), v) in got.iter().zip(&want).zip(&x) {
                assert!(
                    (g - w).abs() < 5e-6 * (1.0 + v.abs()),
                    "gelu({v}) = {g}, want {w}"
                );
            }
        }
    }

    #[test]
    fn rms_norm_matches_the_formula_for_large_and_small_inputs() {
        for n in [1, 7, 33, 1024] {
            for magnitude in [1e-20f32, 1.0, 1e15] {
                let x: Vec<f32> = values(n, 11).iter().map(|v| v * magnitude).collect();
                let gamma = values(n, 12);
                let mut got = x.clone();
                rms_norm(&mut got, &gamma, 1e-6);
                let ms = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n as f64;
                for i in 0..n {
                    let want = f64::from(x[i]) / (ms + 1e-6).sqrt() * f64::from(gamma[i]);
                    assert!(got[i].is_finite());
                    assert!(
                        (f64::from(got[i]) - want).abs() < 1e-5 * (1.0 + want.abs()),
                        "n {n}, x {}: {} vs {want}",
                        x[i],
                        got[i]
                    );
                }
            }
        }
    }

    #[test]
    fn silu_mul_matches_the_formula() {
        for n in [1, 15, 1000] {
            let mut gate = values(n, 13);
            gate.extend([0.0, -0.0, 1e-8, -1e-8, 40.0, -40.0, 88.0, -88.0]);
            let up: Vec<f32> = (0..gate.len()).map(|i| 1.0 + i as f32 / 7.0).collect();
            let mut got = gate.clone();
            silu_mul(&mut got, &up);
            for ((g, x), u) in got.iter().zip(&gate).zip(&up) {
                let want = f64::from(*x) / (1.0 + (-f64::from(*x)).exp()) * f64::from(*u);
                assert!(
                    (f64::from(*g) - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "silu({x}) * {u} = {g}, want {want}"
                );
            }
        }
    }
}
