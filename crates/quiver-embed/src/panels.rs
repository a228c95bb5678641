//! Matrix products against weights packed once at load time, in panels of 16 output
//! columns, for the f32 ([`F32Weight`]) and int8 ([`crate::int8`]) linear layers.
//!
//! A product `out += x · Wᵀ` is cut into tiles of up to 6 rows × 4 panels (64 columns):
//! a tile's sums live in 24 of the 32 AVX-512 registers while the kernel walks the inputs,
//! reading each weight once per tile and each activation once per panel. Weights of a
//! 4-panel group are interleaved, and activations of a 6-row tile too, so each tile reads
//! two contiguous streams. For each column group the driver visits every row tile, input
//! block by input block (the f32 kernel's block of a group's weights is 32 KiB, so it
//! stays in L1 while the row tiles pass). Work is split across threads by rows when there
//! are many, else by column groups, so a short batch still reads each weight once.
//!
//! Packing at load means no product re-packs its weight: general GEMM libraries pack the
//! right-hand matrix on every call, which costs as much as the arithmetic for a batch of
//! a few dozen tokens (a query, say). For large f32 batches `gemm`'s blocking does better
//! and [`crate::linear`] uses it instead.

use rayon::prelude::*;

/// Output columns per panel: one 512-bit register of f32 or i32 sums.
pub(crate) const PANEL: usize = 16;
/// Panels one tile covers.
pub(crate) const TILE_PANELS: usize = 4;
/// Rows one tile covers.
pub(crate) const TILE_ROWS: usize = 6;
/// Inputs per pass of the f32 kernel: a tile group's weights for them take 32 KiB.
const F32_INPUT_BLOCK: usize = 128;
/// Floats in a 64-byte cache line.
const LINE_FLOATS: usize = 16;

/// Where a tile adds its results: `out` of a product, `stride` (= outputs) per row.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr {
    ptr: *mut f32,
    len: usize,
    pub(crate) stride: usize,
}

// SAFETY: concurrent tiles write disjoint rows × columns (see `accumulate`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Row `r`, columns `c0..c0 + cols`, as a mutable slice.
    ///
    /// # Safety
    /// No other thread may touch those elements while the slice lives.
    pub(crate) unsafe fn row<'a>(self, r: usize, c0: usize, cols: usize) -> &'a mut [f32] {
        let at = r * self.stride + c0;
        assert!(c0 + cols <= self.stride && at + cols <= self.len);
        // SAFETY: in bounds (asserted); exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), cols) }
    }
}

/// One tile of a product: rows `r0..r0 + rows` (at most [`TILE_ROWS`]) × panels
/// `p0..p0 + panels` (at most [`TILE_PANELS`]), over `inputs` (a whole input block).
#[derive(Clone, Debug)]
pub(crate) struct Tile {
    pub(crate) r0: usize,
    pub(crate) rows: usize,
    pub(crate) p0: usize,
    pub(crate) panels: usize,
    pub(crate) inputs: std::ops::Range<usize>,
    /// This tile is number `.0` of the `.1` row tiles that read this input block's
    /// weights: a kernel that prefetches the next block takes that share of it.
    pub(crate) share: (usize, usize),
}

/// A weight packed in panels, with the kernel for one tile.
pub(crate) trait PanelWeight: Sync {
    /// Activations as the kernel reads them.
    type Prepared<'a>: Sync
    where
        Self: 'a;
    fn inputs(&self) -> usize;
    fn outputs(&self) -> usize;
    fn prepare<'a>(&'a self, x: &'a [f32], rows: usize) -> Self::Prepared<'a>;
    /// Inputs per pass over the row tiles: a tile group's weights for that many inputs
    /// should stay in the L1 cache while every row tile reads them.
    fn input_block(&self) -> usize {
        self.inputs()
    }
    /// Adds `tile`'s part of `x · Wᵀ` to `out`.
    ///
    /// # Safety
    /// No other thread may touch that region of `out` meanwhile.
    unsafe fn tile(&self, a: &Self::Prepared<'_>, tile: Tile, out: OutPtr);
}

/// `out += x · Wᵀ` for `rows` rows of `x`; `out` is `rows × outputs`.
pub(crate) fn accumulate<W: PanelWeight>(
    w: &W,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    threads: usize,
) {
    assert_eq!(x.len(), rows * w.inputs(), "input shape");
    assert_eq!(out.len(), rows * w.outputs(), "output shape");
    if rows == 0 || w.outputs() == 0 {
        return;
    }
    let a = w.prepare(x, rows);
    let out = OutPtr {
        ptr: out.as_mut_ptr(),
        len: out.len(),
        stride: w.outputs(),
    };
    let groups = w.outputs().div_ceil(PANEL * TILE_PANELS);
    let threads = threads.max(1);
    // Blocks of (rows, column groups); each block is one task and owns its region.
    let blocks: Vec<(usize, usize, usize, usize)> = if rows >= 4 * TILE_ROWS * threads {
        let per = rows.div_ceil(threads).next_multiple_of(TILE_ROWS);
        (0..rows)
            .step_by(per)
            .map(|r| (r, per.min(rows - r), 0, groups))
            .collect()
    } else {
        let per = groups.div_ceil(threads);
        (0..groups)
            .step_by(per)
            .map(|g| (0, rows, g, per.min(groups - g)))
            .collect()
    };
    let run = |&(r0, nrows, g0, ngroups): &(usize, usize, usize, usize)| {
        let panels = w.outputs().div_ceil(PANEL);
        let (k, kb) = (w.inputs(), w.input_block().max(1));
        for g in g0..g0 + ngroups {
            let p0 = g * TILE_PANELS;
            let tile_panels = TILE_PANELS.min(panels - p0);
            let row_tiles = nrows.div_ceil(TILE_ROWS);
            for k0 in (0..k).step_by(kb) {
                for (t, r) in (r0..r0 + nrows).step_by(TILE_ROWS).enumerate() {
                    let tile_rows = TILE_ROWS.min(r0 + nrows - r);
                    let tile = Tile {
                        r0: r,
                        rows: tile_rows,
                        p0,
                        panels: tile_panels,
                        inputs: k0..(k0 + kb).min(k),
                        share: (t, row_tiles),
                    };
                    // SAFETY: blocks cover disjoint rows × column groups, and tiles
                    // within a block run one after another.
                    unsafe { w.tile(&a, tile, out) };
                }
            }
        }
    };
    if blocks.len() > 1 {
        blocks.par_iter().for_each(run);
    } else {
        blocks.iter().for_each(run);
    }
}

/// An f32 weight in panels, four panels (a tile's width) interleaved: for column group
/// `g` (panels `4g..4g + n`, `n` = 4 except perhaps for the last group), each input `i`
/// holds the `16 n` weights of those columns side by side, so a tile reads its weights as
/// one contiguous stream. Columns past the last are zero.
pub(crate) struct F32Weight {
    packed: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl F32Weight {
    /// Packs PyTorch's `(outputs, inputs)` row-major weight, if this CPU runs the
    /// AVX-512 kernel (else the caller keeps a layout for the `gemm` crate).
    pub(crate) fn pack(rows: &[f32], outputs: usize, inputs: usize) -> Option<Self> {
        if !avx512() {
            return None;
        }
        let panels = outputs.div_ceil(PANEL);
        let mut packed = vec![0f32; panels * inputs * PANEL];
        for (o, row) in rows.chunks_exact(inputs).enumerate() {
            let (panel, lane) = (o / PANEL, o % PANEL);
            let group = panel / TILE_PANELS;
            let width = TILE_PANELS.min(panels - group * TILE_PANELS) * PANEL;
            let base = group * TILE_PANELS * PANEL * inputs + (panel % TILE_PANELS) * PANEL + lane;
            for (i, &w) in row.iter().enumerate() {
                packed[base + i * width] = w;
            }
        }
        Some(F32Weight {
            packed,
            inputs,
            outputs,
        })
    }
}

/// Activation rows in tiles of [`TILE_ROWS`] interleaved: for each input, the tile's
/// rows side by side (zero past the last row), so a tile reads one contiguous stream.
pub(crate) struct F32Rows {
    data: Vec<f32>,
}

impl F32Rows {
    fn new(x: &[f32], rows: usize, k: usize) -> Self {
        let tiles = rows.div_ceil(TILE_ROWS);
        let mut data = vec![0f32; tiles * k * TILE_ROWS];
        for (r, row) in x.chunks_exact(k).enumerate() {
            let base = (r / TILE_ROWS) * k * TILE_ROWS + r % TILE_ROWS;
            for (i, &v) in row.iter().enumerate() {
                data[base + i * TILE_ROWS] = v;
            }
        }
        F32Rows { data }
    }
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl PanelWeight for F32Weight {
    type Prepared<'a> = F32Rows;

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn prepare(&self, x: &[f32], rows: usize) -> F32Rows {
        F32Rows::new(x, rows, self.inputs)
    }

    fn input_block(&self) -> usize {
        F32_INPUT_BLOCK
    }

    unsafe fn tile(&self, x: &F32Rows, tile: Tile, out: OutPtr) {
        let Tile {
            r0,
            rows,
            p0,
            panels,
            inputs,
            share: (t, tiles),
        } = tile;
        let k = self.inputs;
        assert!(rows <= TILE_ROWS && panels <= TILE_PANELS && inputs.end <= k);
        assert!(r0.is_multiple_of(TILE_ROWS) && p0.is_multiple_of(TILE_PANELS));
        let kn = inputs.len();
        let a = &x.data[r0 * k + inputs.start * TILE_ROWS..][..kn * TILE_ROWS];
        let width = panels * PANEL;
        let start = p0 * PANEL * k + inputs.start * width;
        let b = &self.packed[start..][..kn * width];
        // The weights a thread reads next follow these in memory (the next input block
        // of this column group, or the next group's first): while the row tiles compute
        // on this block, each fetches its share of the next into L2, so the product does
        // not stall on memory at every block's first tile.
        let next = &self.packed[(start + kn * width).min(self.packed.len())..];
        let lines = next.len().min(kn * width).div_ceil(LINE_FLOATS);
        let mine = lines * t / tiles..lines * (t + 1) / tiles;
        let prefetch = &next[(mine.start * LINE_FLOATS).min(next.len())..];
        let mut sums = [0f32; TILE_ROWS * TILE_PANELS * PANEL];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `pack` checked for AVX-512 F; `a` and `b` hold what the tile reads.
        unsafe {
            avx512_f32::tile(a, kn, rows, b, panels, (prefetch, mine.len()), &mut sums)
        };
        let c0 = p0 * PANEL;
        let cols = (panels * PANEL).min(self.outputs - c0);
        for r in 0..rows {
            // SAFETY: the caller owns this region of `out`.
            let dest = unsafe { out.row(r0 + r, c0, cols) };
            let src = &sums[r * TILE_PANELS * PANEL..][..cols];
            dest.iter_mut().zip(src).for_each(|(d, s)| *d += s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512_f32 {
    use std::arch::x86_64::*;

    use super::{LINE_FLOATS, PANEL, TILE_PANELS, TILE_ROWS};

    /// Sums of a tile of `R` rows × `P` panels held in `R × P` registers, prefetching
    /// `lines` cache lines from `prefetch` into L2 along the way.
    ///
    /// # Safety
    /// The CPU has AVX-512 F; `a` holds `k × TILE_ROWS` interleaved floats, `b` holds
    /// `k × P × 16` interleaved floats, `prefetch` holds `lines` cache lines.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile_rp<const R: usize, const P: usize>(
        a: *const f32,
        k: usize,
        b: *const f32,
        (prefetch, lines): (*const f32, usize),
        sums: *mut f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        let per_step = lines.div_ceil(k.max(1));
        for i in 0..k {
            for line in i * per_step..((i + 1) * per_step).min(lines) {
                // SAFETY: line `line` lies inside `prefetch` (caller's promise).
                let at = unsafe { prefetch.add(line * LINE_FLOATS) };
                _mm_prefetch::<_MM_HINT_T1>(at.cast());
            }
            let mut w = [_mm512_setzero_ps(); P];
            for (p, w) in w.iter_mut().enumerate() {
                // SAFETY: input i of panel p lies inside `b` (caller's promise).
                *w = unsafe { _mm512_loadu_ps(b.add((i * P + p) * PANEL)) };
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: element i of row r lies inside `a`.
                let x = _mm512_set1_ps(unsafe { *a.add(i * TILE_ROWS + r) });
                for (acc, &w) in acc.iter_mut().zip(&w) {
                    *acc = _mm512_fmadd_ps(x, w, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (p, &v) in acc.iter().enumerate() {
                // SAFETY: `sums` is TILE_ROWS × TILE_PANELS × PANEL floats.
                unsafe { _mm512_storeu_ps(sums.add(r * TILE_PANELS * PANEL + p * PANEL), v) };
            }
        }
    }

    /// Dispatches a tile to the `tile_rp` instance of its shape.
    ///
    /// # Safety
    /// As [`tile_rp`], for `rows` rows and `panels` panels.
    pub(super) unsafe fn tile(
        a: &[f32],
        k: usize,
        rows: usize,
        b: &[f32],
        panels: usize,
        (prefetch, lines): (&[f32], usize),
        sums: &mut [f32; TILE_ROWS * TILE_PANELS * PANEL],
    ) {
        assert!(lines * LINE_FLOATS <= prefetch.len().next_multiple_of(LINE_FLOATS));
        let (a, b, s) = (a.as_ptr(), b.as_ptr(), sums.as_mut_ptr());
        let pf = (prefetch.as_ptr(), lines);
        macro_rules! shapes {
            ($($r:literal),*) => {
                match (rows, panels) {
                    $(
                        ($r, 4) => unsafe { tile_rp::<$r, 4>(a, k, b, pf, s) },
                        ($r, 3) => unsafe { tile_rp::<$r, 3>(a, k, b, pf, s) },
                        ($r, 2) => unsafe { tile_rp::<$r, 2>(a, k, b, pf, s) },
                        ($r, 1) => unsafe { tile_rp::<$r, 1>(a, k, b, pf, s) },
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
    use super::*;
    use crate::kernels::test_values as values;

    #[test]
    fn packed_f32_products_match_plain_sums_on_ragged_shapes() {
        let shapes = [
            (1, 1, 1),
            (17, 5, 7),
            (64, 64, 6),
            (100, 131, 13),
            (300, 40, 200),
        ];
        for (outputs, inputs, rows) in shapes {
            let w = values(outputs * inputs, 1);
            let Some(packed) = F32Weight::pack(&w, outputs, inputs) else {
                return; // no AVX-512 here: Linear uses gemm, tested in linear.rs
            };
            let x = values(rows * inputs, 2);
            for threads in [1, 2, 3] {
                let mut out = vec![0.25f32; rows * outputs];
                accumulate(&packed, &x, rows, &mut out, threads);
                for r in 0..rows {
                    for o in 0..outputs {
                        let want: f64 = 0.25
                            + (0..inputs)
                                .map(|i| {
                                    f64::from(x[r * inputs + i]) * f64::from(w[o * inputs + i])
                                })
                                .sum::<f64>();
                        let got = f64::from(out[r * outputs + o]);
                        assert!(
                            (got - want).abs() < 1e-5,
                            "{rows}x{inputs}x{outputs}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
