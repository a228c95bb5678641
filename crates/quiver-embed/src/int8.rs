//! int8 matrix products for quantized linear layers.
//!
//! Weights are quantized once, symmetrically per output column (`w ≈ q · s_col`, `q` in
//! `-127..=127`). Activations are quantized per row at each call, symmetrically too, then
//! shifted by 128 into `u8` because the AVX-512 VNNI instruction `vpdpbusd` multiplies
//! unsigned by signed bytes. The shift is undone exactly with each column's sum of `q`:
//!
//! `Σ (xq + 128) · q = Σ xq · q + 128 · Σ q`, so `y = (acc − 128 · colsum) · s_row · s_col`.
//!
//! Layout: output columns come in panels of 16 (one 512-bit register of i32 sums), and
//! inputs in groups of 4 (the bytes one `vpdpbusd` lane multiplies and adds). A panel is
//! `groups × 64` bytes: for each group, column 0's four weights, then column 1's, ... Rows
//! and columns past the matrix are zero, so edge tiles need no special case.
//!
//! The VNNI kernel runs where the CPU has AVX-512 VNNI; elsewhere a portable kernel does
//! the same integer arithmetic (the tests hold the two to identical sums).

use std::mem::MaybeUninit;

use rten_simd::SimdOp;
use rten_vecmath::{MinMax, Quantize};

use crate::panels::{OutPtr, PanelWeight, Tile, PANEL, TILE_PANELS, TILE_ROWS};

/// Activation shift that makes signed bytes unsigned.
const SHIFT: i32 = 128;

/// A weight matrix quantized for the int8 kernels.
pub(crate) struct Int8Weight {
    /// Panels of 16 columns, each `groups × 64` bytes (module docs).
    packed: Vec<i8>,
    /// Input groups of 4 (`ceil(inputs / 4)`).
    groups: usize,
    inputs: usize,
    outputs: usize,
    /// Scale of each output column (zero past `outputs`).
    scale: Vec<f32>,
    /// `128 · Σ q` of each output column.
    shift_sum: Vec<i32>,
}

impl Int8Weight {
    /// Quantizes PyTorch's `(outputs, inputs)` row-major weight.
    pub(crate) fn quantize(rows: &[f32], outputs: usize, inputs: usize) -> Self {
        let groups = inputs.div_ceil(4);
        let panels = outputs.div_ceil(PANEL);
        let mut packed = vec![0i8; panels * groups * 4 * PANEL];
        let mut scale = vec![0f32; panels * PANEL];
        let mut shift_sum = vec![0i32; panels * PANEL];
        for (o, row) in rows.chunks_exact(inputs).enumerate() {
            let max = row.iter().fold(0f32, |m, w| m.max(w.abs()));
            let s = max / 127.0;
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            scale[o] = s;
            let (panel, lane) = (o / PANEL, o % PANEL);
            let base = panel * groups * 4 * PANEL + lane * 4;
            let mut sum = 0i32;
            for (i, &w) in row.iter().enumerate() {
                let q = (w * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
                packed[base + (i / 4) * 4 * PANEL + i % 4] = q;
                sum += i32::from(q);
            }
            shift_sum[o] = SHIFT * sum;
        }
        Int8Weight {
            packed,
            groups,
            inputs,
            outputs,
            scale,
            shift_sum,
        }
    }
}

impl PanelWeight for Int8Weight {
    type Prepared<'a> = QuantRows;

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn prepare(&self, x: &[f32], rows: usize) -> QuantRows {
        QuantRows::new(x, rows, self.inputs, self.groups)
    }

    fn group_bytes_per_input(&self) -> usize {
        TILE_PANELS * PANEL
    }

    unsafe fn tile(&self, quant: &QuantRows, tile: Tile, out: OutPtr) {
        // One input block: the integer sums are exact however long `k` is.
        let Tile {
            r0,
            rows,
            p0,
            panels,
            ..
        } = tile;
        let panel_bytes = self.groups * 4 * PANEL;
        let mut sums = [0i32; TILE_ROWS * TILE_PANELS * PANEL];
        let a = &quant.data[r0 * quant.stride..];
        let b = &self.packed[p0 * panel_bytes..];
        quant
            .kernel
            .tile(a, quant.stride, rows, b, panel_bytes, panels, &mut sums);
        let c0 = p0 * PANEL;
        let cols = (panels * PANEL).min(self.outputs - c0);
        let scale = &self.scale[c0..c0 + cols];
        let shift = &self.shift_sum[c0..c0 + cols];
        for r in 0..rows {
            let row_scale = quant.scale[r0 + r];
            let sums = &sums[r * TILE_PANELS * PANEL..][..cols];
            // SAFETY: the caller owns this region of `out`.
            let dest = unsafe { out.row(r0 + r, c0, cols) };
            for (((o, &acc), &s), &sh) in dest.iter_mut().zip(sums).zip(scale).zip(shift) {
                *o += (acc - sh) as f32 * (row_scale * s);
            }
        }
    }
}

/// Rows of activations quantized to shifted bytes, padded to whole input groups.
pub(crate) struct QuantRows {
    data: Vec<u8>,
    /// Bytes per row (`groups × 4`).
    stride: usize,
    scale: Vec<f32>,
    /// The integer kernel this CPU runs.
    kernel: Kernel,
}

impl QuantRows {
    fn new(x: &[f32], rows: usize, inputs: usize, groups: usize) -> Self {
        let stride = groups * 4;
        // Padding bytes hold the shift: they stand for zero (and meet zero weights).
        let mut data = vec![SHIFT as u8; rows * stride];
        let mut scale = Vec::with_capacity(rows);
        for (row, dest) in x.chunks_exact(inputs).zip(data.chunks_exact_mut(stride)) {
            let (min, max) = MinMax::new(row).dispatch();
            let s = min.abs().max(max.abs()) / 127.0;
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            scale.push(s);
            // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and every byte
            // is initialized already.
            let dest: &mut [MaybeUninit<u8>] =
                unsafe { std::slice::from_raw_parts_mut(dest.as_mut_ptr().cast(), inputs) };
            Quantize::new(row, dest, inv, SHIFT as u8).dispatch();
        }
        QuantRows {
            data,
            stride,
            scale,
            kernel: Kernel::detect(),
        }
    }
}

/// Which integer kernel this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Vnni,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(test)]
        if tests::PORTABLE.get() {
            return Kernel::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            return Kernel::Vnni;
        }
        Kernel::Portable
    }

    /// Integer sums of a tile: `rows` rows of `a` (`a_stride` bytes apart) against
    /// `panels` panels of `b` (`panel_bytes` apart), into `sums` (row-major, 64 wide).
    #[allow(clippy::too_many_arguments)]
    fn tile(
        self,
        a: &[u8],
        a_stride: usize,
        rows: usize,
        b: &[i8],
        panel_bytes: usize,
        panels: usize,
        sums: &mut [i32; TILE_ROWS * TILE_PANELS * PANEL],
    ) {
        assert!(rows <= TILE_ROWS && panels <= TILE_PANELS);
        assert!(a.len() >= (rows - 1) * a_stride + a_stride);
        assert!(b.len() >= panels * panel_bytes);
        match self {
            Kernel::Portable => portable_tile(a, a_stride, rows, b, panel_bytes, panels, sums),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` found the CPU features; the asserts bound every read.
            Kernel::Vnni => unsafe { vnni::tile(a, a_stride, rows, b, panel_bytes, panels, sums) },
        }
    }
}

fn portable_tile(
    a: &[u8],
    a_stride: usize,
    rows: usize,
    b: &[i8],
    panel_bytes: usize,
    panels: usize,
    sums: &mut [i32; TILE_ROWS * TILE_PANELS * PANEL],
) {
    let width = TILE_PANELS * PANEL;
    let groups = a_stride / 4;
    for r in 0..rows {
        let a = &a[r * a_stride..(r + 1) * a_stride];
        for p in 0..panels {
            let panel = &b[p * panel_bytes..(p + 1) * panel_bytes];
            let mut acc = [0i32; PANEL];
            for g in 0..groups {
                let xs = &a[g * 4..g * 4 + 4];
                let ws = &panel[g * 4 * PANEL..(g + 1) * 4 * PANEL];
                for (lane, acc) in acc.iter_mut().enumerate() {
                    let w = &ws[lane * 4..lane * 4 + 4];
                    *acc += xs
                        .iter()
                        .zip(w)
                        .map(|(&x, &w)| i32::from(x) * i32::from(w))
                        .sum::<i32>();
                }
            }
            sums[r * width + p * PANEL..r * width + (p + 1) * PANEL].copy_from_slice(&acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{PANEL, TILE_PANELS, TILE_ROWS};

    /// [`super::Kernel::tile`] with `vpdpbusd`, for a tile of `R` rows and `P` panels
    /// held in `R × P` registers.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI; `a` holds `R` rows of `a_stride` bytes and `b`
    /// holds `P` panels of `panel_bytes` (= `a_stride / 4 × 64`) bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_rp<const R: usize, const P: usize>(
        a: *const u8,
        a_stride: usize,
        b: *const i8,
        panel_bytes: usize,
        sums: *mut i32,
    ) {
        let groups = a_stride / 4;
        let mut acc = [[_mm512_setzero_si512(); P]; R];
        for g in 0..groups {
            let mut w = [_mm512_setzero_si512(); P];
            for (p, w) in w.iter_mut().enumerate() {
                // SAFETY: group g of panel p lies inside `b` (caller's promise).
                *w = unsafe { _mm512_loadu_si512(b.add(p * panel_bytes + g * 64).cast()) };
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: bytes 4g..4g+4 of row r lie inside `a`.
                let x = unsafe { a.add(r * a_stride + g * 4).cast::<i32>().read_unaligned() };
                let x = _mm512_set1_epi32(x);
                for (acc, &w) in acc.iter_mut().zip(&w) {
                    *acc = _mm512_dpbusd_epi32(*acc, x, w);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (p, &v) in acc.iter().enumerate() {
                // SAFETY: `sums` is TILE_ROWS × TILE_PANELS × PANEL i32s, r < R <= TILE_ROWS.
                unsafe {
                    _mm512_storeu_si512(sums.add(r * TILE_PANELS * PANEL + p * PANEL).cast(), v)
                };
            }
        }
    }

    /// Dispatches a tile to the `tile_rp` instance of its shape.
    ///
    /// # Safety
    /// As [`tile_rp`]; the caller checked the bounds for `rows` and `panels`.
    pub(super) unsafe fn tile(
        a: &[u8],
        a_stride: usize,
        rows: usize,
        b: &[i8],
        panel_bytes: usize,
        panels: usize,
        sums: &mut [i32; TILE_ROWS * TILE_PANELS * PANEL],
    ) {
        let (a, b, s) = (a.as_ptr(), b.as_ptr(), sums.as_mut_ptr());
        macro_rules! shapes {
            ($($r:literal),*) => {
                match (rows, panels) {
                    $(
                        ($r, 4) => unsafe { tile_rp::<$r, 4>(a, a_stride, b, panel_bytes, s) },
                        ($r, 3) => unsafe { tile_rp::<$r, 3>(a, a_stride, b, panel_bytes, s) },
                        ($r, 2) => unsafe { tile_rp::<$r, 2>(a, a_stride, b, panel_bytes, s) },
                        ($r, 1) => unsafe { tile_rp::<$r, 1>(a, a_stride, b, panel_bytes, s) },
                    )*
                    _ => unreachable!("tile of {rows} rows and {panels} panels"),
                }
            };
        }
        shapes!(1, 2, 3, 4, 5, 6);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::kernels::test_values as values;
    use crate::panels::accumulate;

    thread_local! {
        /// Makes `Kernel::detect` pick the portable kernel on this thread.
        pub(super) static PORTABLE: Cell<bool> = const { Cell::new(false) };
    }

    /// Quantized weights and activations multiplied in plain integers and floats.
    fn reference(w: &Int8Weight, x: &[f32], rows: usize) -> Vec<f32> {
        let q = QuantRows::new(x, rows, w.inputs, w.groups);
        let panel_bytes = w.groups * 4 * PANEL;
        let mut out = vec![0f32; rows * w.outputs];
        for r in 0..rows {
            for o in 0..w.outputs {
                let mut acc = 0i32;
                for i in 0..w.inputs {
                    let byte = (o / PANEL) * panel_bytes + (i / 4) * 4 * PANEL + (o % PANEL) * 4;
                    let wq = i32::from(w.packed[byte + i % 4]);
                    acc += (i32::from(q.data[r * q.stride + i]) - SHIFT) * wq;
                }
                out[r * w.outputs + o] = acc as f32 * (q.scale[r] * w.scale[o]);
            }
        }
        out
    }

    #[test]
    fn every_kernel_matches_the_integer_reference_on_ragged_shapes() {
        for (outputs, inputs, rows) in [(1, 1, 1), (17, 5, 7), (64, 64, 6), (100, 131, 13)] {
            let w = Int8Weight::quantize(&values(outputs * inputs, 1), outputs, inputs);
            let x = values(rows * inputs, 2);
            let want = reference(&w, &x, rows);
            for portable in [true, false] {
                PORTABLE.set(portable);
                let kernel = Kernel::detect();
                let mut out = vec![0f32; rows * outputs];
                accumulate(&w, &x, rows, &mut out, 1);
                // Same integers, same float operations: equal up to summation order.
                for (o, r) in out.iter().zip(&want) {
                    assert!(
                        (o - r).abs() <= 1e-6 * r.abs().max(1.0),
                        "{kernel:?}: {o} vs {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn threads_split_rows_without_changing_results() {
        let (outputs, inputs, rows) = (48, 40, 29);
        let w = Int8Weight::quantize(&values(outputs * inputs, 3), outputs, inputs);
        let x = values(rows * inputs, 4);
        let mut one = vec![0.5f32; rows * outputs];
        let mut two = one.clone();
        accumulate(&w, &x, rows, &mut one, 1);
        accumulate(&w, &x, rows, &mut two, 3);
        assert_eq!(one, two);
        assert!(one.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn zero_rows_large_and_small_values_stay_finite_and_close() {
        let (outputs, inputs) = (16, 8);
        let mut w = vec![0f32; outputs * inputs];
        w[0] = 1e10;
        w[inputs + 1] = 1e-30;
        let q = Int8Weight::quantize(&w, outputs, inputs);
        let mut x = vec![0f32; 2 * inputs];
        x[inputs] = 3e10;
        x[inputs + 1] = -2.0;
        let mut out = vec![0f32; 2 * outputs];
        accumulate(&q, &x, 2, &mut out, 1);
        assert!(
            out[..outputs].iter().all(|&v| v == 0.0),
            "zero row: {out:?}"
        );
        assert!(out.iter().all(|v| v.is_finite()));
        assert!((out[outputs] / 3e20 - 1.0).abs() < 1e-2, "{}", out[outputs]);
        // -2 is below one step of the row's scale (3e10 / 127): it quantizes to zero.
        assert_eq!(out[outputs + 1], 0.0);
    }
}
