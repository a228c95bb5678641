//! Matrix products against weights packed once at load time, in panels of 16 output
//! columns, for the f32 ([`F32Weight`]) and int8 ([`crate::int8`]) linear layers.
//!
//! A product `out += x · Wᵀ` is cut into tiles of up to 6 rows × 4 panels (64 columns):
//! a tile's sums live in 24 of the 32 AVX-512 registers while the kernel walks the inputs,
//! reading each weight once per tile and each activation once per panel. Weights of a
//! 4-panel group are interleaved, so a tile reads them as one contiguous stream; f32
//! activations are read in place, a tile's six rows side by side.
//!
//! Two orders visit the tiles, as the batch decides:
//! - **Few rows** (a query, a short batch): threads split the column groups, so each
//!   weight is read once. For each group the driver walks the inputs in blocks whose
//!   weights fit L1 and runs every row tile over a block, while the tiles fetch their
//!   share of the next block into L2: the product streams the weights from memory once.
//! - **Many rows**: the column groups are cut into parts of a few groups (about 1 MiB
//!   of weights per block of a few hundred inputs, which L2 holds), and threads take
//!   parts as they free up. For each input block a part runs every row tile over each
//!   of its groups: a tile's activations stay in L1 while the groups' weights come from
//!   L2, and each tile adds into `out` once per block. Tiles fetch their share of the
//!   next block into L2 as they go. This is the blocking of a general GEMM, without its
//!   packing of the weights on every call.
//!
//! Packing at load means no product re-packs its weight: general GEMM libraries pack the
//! right-hand matrix on every call, which costs as much as the arithmetic for a batch of
//! a few dozen tokens (a query, say), and a few percent of a large one.

use std::ops::Range;

use rayon::prelude::*;

/// Output columns per panel: one 512-bit register of f32 or i32 sums.
pub(crate) const PANEL: usize = 16;
/// Panels one tile covers.
pub(crate) const TILE_PANELS: usize = 4;
/// Rows one tile covers.
pub(crate) const TILE_ROWS: usize = 6;
/// Columns of a group of panels, the width of a tile.
const GROUP_COLUMNS: usize = TILE_PANELS * PANEL;
/// Bytes of the block of weights the many-rows order keeps in L2 (of 2 MiB a core).
const L2_BLOCK_BYTES: usize = 1 << 20;
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
    /// `out` as rows of `stride` values.
    pub(crate) fn new(out: &mut [f32], stride: usize) -> Self {
        OutPtr {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            stride,
        }
    }

    /// Rows `r0..r0 + rows`, columns `c0..c0 + cols`: a pointer to the first element,
    /// the stride, and `cols`.
    pub(crate) fn region(
        self,
        r0: usize,
        rows: usize,
        c0: usize,
        cols: usize,
    ) -> (*mut f32, usize, usize) {
        assert!(rows > 0 && c0 + cols <= self.stride);
        assert!((r0 + rows - 1) * self.stride + c0 + cols <= self.len);
        // SAFETY: in bounds (asserted).
        (
            unsafe { self.ptr.add(r0 * self.stride + c0) },
            self.stride,
            cols,
        )
    }

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
/// `p0..p0 + panels` (at most [`TILE_PANELS`]), over `inputs`.
#[derive(Clone, Debug)]
pub(crate) struct Tile {
    pub(crate) r0: usize,
    pub(crate) rows: usize,
    pub(crate) p0: usize,
    pub(crate) panels: usize,
    pub(crate) inputs: Range<usize>,
    /// Weights a later tile reads that this one fetches into L2, if any.
    pub(crate) prefetch: Option<Prefetch>,
}

/// A share of a block of weights to fetch: part `share.0` of `share.1` of the weights
/// of the group starting at panel `p0`, over `inputs`.
#[derive(Clone, Debug)]
pub(crate) struct Prefetch {
    pub(crate) p0: usize,
    pub(crate) inputs: Range<usize>,
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
    /// Inputs per tile in the few-rows order: a group's weights for that many inputs
    /// should stay in L1 while every row tile reads them.
    fn l1_inputs(&self) -> usize {
        self.inputs()
    }
    /// Inputs per tile in the many-rows order (the kernel's sums cover them in registers).
    fn l2_inputs(&self) -> usize {
        self.inputs()
    }
    /// Bytes of one column group's weights per input.
    fn group_bytes_per_input(&self) -> usize;
    /// Column groups whose weights for `l2_inputs` fit the L2 block.
    fn l2_groups(&self) -> usize {
        let per_group = self.l2_inputs().min(self.inputs()) * self.group_bytes_per_input();
        (L2_BLOCK_BYTES / per_group.max(1)).max(1)
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
    let out = OutPtr::new(out, w.outputs());
    let groups = w.outputs().div_ceil(GROUP_COLUMNS);
    let threads = threads.max(1);
    // Each part (a range of column groups, every row) is one task and owns its columns
    // of `out`. Few rows: one part per thread. Many rows: parts of a few groups each (no
    // more than one L2 block of weights), enough of them that a thread the machine slows
    // down does not hold up the product. Either way each weight is read by one thread.
    let many_rows = rows >= 4 * TILE_ROWS * threads;
    let per = if many_rows {
        groups.div_ceil(4 * threads).min(w.l2_groups()).max(1)
    } else {
        groups.div_ceil(threads)
    };
    let parts: Vec<Range<usize>> = (0..groups)
        .step_by(per)
        .map(|g| g..(g + per).min(groups))
        .collect();
    let run = |groups: &Range<usize>| {
        let tiles = Tiles {
            w,
            rows,
            groups: groups.clone(),
        };
        let run_tile = |tile| {
            // SAFETY: parts cover disjoint column groups, and a part runs its tiles one
            // after another.
            unsafe { w.tile(&a, tile, out) }
        };
        if many_rows {
            tiles.many_rows(run_tile);
        } else {
            tiles.few_rows(run_tile);
        }
    };
    if threads > 1 && parts.len() > 1 {
        parts.par_iter().for_each(run);
    } else {
        parts.iter().for_each(run);
    }
}

/// The tiles of one part of a product: every row, some column groups.
struct Tiles<'a, W> {
    w: &'a W,
    rows: usize,
    groups: Range<usize>,
}

impl<W: PanelWeight> Tiles<'_, W> {
    /// The row tiles: (index, first row, rows).
    fn row_tiles(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        (0..self.rows)
            .step_by(TILE_ROWS)
            .enumerate()
            .map(|(t, r)| (t, r, TILE_ROWS.min(self.rows - r)))
    }

    fn tile(&self, r: usize, rows: usize, g: usize, inputs: Range<usize>) -> Tile {
        let p0 = g * TILE_PANELS;
        Tile {
            r0: r,
            rows,
            p0,
            panels: TILE_PANELS.min(self.w.outputs().div_ceil(PANEL) - p0),
            inputs,
            prefetch: None,
        }
    }

    /// Group by group, input block by input block, every row tile (see the module docs).
    fn few_rows(&self, mut run: impl FnMut(Tile)) {
        let k = self.w.inputs();
        let kb = self.w.l1_inputs().max(1);
        let row_tiles = self.rows.div_ceil(TILE_ROWS);
        // The (group, inputs) blocks in the order they run; each prefetches the next.
        let blocks: Vec<(usize, Range<usize>)> = self
            .groups
            .clone()
            .flat_map(|g| (0..k).step_by(kb).map(move |k0| (g, k0..(k0 + kb).min(k))))
            .collect();
        for (i, (g, inputs)) in blocks.iter().enumerate() {
            let next = blocks.get(i + 1);
            for (t, r, rows) in self.row_tiles() {
                let mut tile = self.tile(r, rows, *g, inputs.clone());
                tile.prefetch = next.map(|(g, inputs)| Prefetch {
                    p0: g * TILE_PANELS,
                    inputs: inputs.clone(),
                    share: (t, row_tiles),
                });
                run(tile);
            }
        }
    }

    /// Input block by input block (`l2_inputs`), every row tile over each of the part's
    /// groups (see the module docs).
    fn many_rows(&self, mut run: impl FnMut(Tile)) {
        let k = self.w.inputs();
        let kc = self.w.l2_inputs().max(1);
        let row_tiles = self.rows.div_ceil(TILE_ROWS);
        for k0 in (0..k).step_by(kc) {
            let next = (k0 + kc < k).then(|| k0 + kc..(k0 + 2 * kc).min(k));
            for (t, r, rows) in self.row_tiles() {
                for g in self.groups.clone() {
                    let mut tile = self.tile(r, rows, g, k0..(k0 + kc).min(k));
                    tile.prefetch = next.clone().map(|inputs| Prefetch {
                        p0: g * TILE_PANELS,
                        inputs,
                        share: (t, row_tiles),
                    });
                    run(tile);
                }
            }
        }
    }
}

/// An f32 weight in panels, four panels (a tile's width) interleaved: for column group
/// `g` (panels `4g..4g + n`, `n` = 4 except perhaps for the last group), each input `i`
/// holds the `16 n` weights of those columns side by side, so a tile reads its weights as
/// one contiguous stream. Columns past the last are zero.
pub(crate) struct F32Weight {
    packed: Lines,
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
        let mut lines = Lines::zeros(panels * inputs * PANEL);
        let packed = lines.floats_mut();
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
            packed: lines,
            inputs,
            outputs,
        })
    }

    /// Floats per input of the group starting at panel `p0`.
    fn width(&self, p0: usize) -> usize {
        TILE_PANELS.min(self.outputs.div_ceil(PANEL) - p0) * PANEL
    }

    /// Where the weights of the group starting at panel `p0` for input `i` begin.
    fn offset(&self, p0: usize, i: usize) -> usize {
        p0 * PANEL * self.inputs + i * self.width(p0)
    }
}

/// Floats in whole cache lines, the first at a line's start: a panel's 16 weights are
/// then one line, and each load of them touches one line, not two.
pub(crate) struct Lines(Vec<Line>);

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; LINE_FLOATS]);

impl Lines {
    /// `len` zeros (rounded up to whole lines).
    pub(crate) fn zeros(len: usize) -> Self {
        Lines(vec![Line([0.0; LINE_FLOATS]); len.div_ceil(LINE_FLOATS)])
    }

    pub(crate) fn floats(&self) -> &[f32] {
        // SAFETY: `Line` is `LINE_FLOATS` floats with no padding, lines are adjacent.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len() * LINE_FLOATS) }
    }

    pub(crate) fn floats_mut(&mut self) -> &mut [f32] {
        let len = self.0.len() * LINE_FLOATS;
        // SAFETY: as in `floats`, and `self` is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), len) }
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
    type Prepared<'a> = &'a [f32];

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn prepare<'a>(&'a self, x: &'a [f32], _rows: usize) -> &'a [f32] {
        x
    }

    fn l1_inputs(&self) -> usize {
        // A group's weights for 128 inputs take 32 KiB.
        128
    }

    fn l2_inputs(&self) -> usize {
        512
    }

    fn group_bytes_per_input(&self) -> usize {
        GROUP_COLUMNS * 4
    }

    unsafe fn tile(&self, x: &&[f32], tile: Tile, out: OutPtr) {
        let Tile {
            r0,
            rows,
            p0,
            panels,
            inputs,
            prefetch,
        } = tile;
        let k = self.inputs;
        assert!(rows <= TILE_ROWS && panels <= TILE_PANELS && inputs.end <= k);
        assert!(r0.is_multiple_of(TILE_ROWS) && p0.is_multiple_of(TILE_PANELS));
        let kn = inputs.len();
        let a = &x[r0 * k + inputs.start..][..(rows - 1) * k + kn];
        let packed = self.packed.floats();
        let b = &packed[self.offset(p0, inputs.start)..][..kn * panels * PANEL];
        let prefetch = prefetch.map_or(&[][..], |Prefetch { p0, inputs, share }| {
            let block = &packed[self.offset(p0, inputs.start)..][..inputs.len() * self.width(p0)];
            let lines = block.len().div_ceil(LINE_FLOATS);
            let mine = lines * share.0 / share.1..lines * (share.0 + 1) / share.1;
            &block[mine.start * LINE_FLOATS..(mine.end * LINE_FLOATS).min(block.len())]
        });
        let c0 = p0 * PANEL;
        let cols = (panels * PANEL).min(self.outputs - c0);
        let dest = out.region(r0, rows, c0, cols);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `pack` checked for AVX-512 F; `a` and `b` hold what the tile reads, and
        // the caller owns the tile's region of `out`.
        unsafe {
            avx512_f32::tile((a, k), kn, rows, b, panels, prefetch, dest)
        };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512_f32 {
    use std::arch::x86_64::*;

    use super::{LINE_FLOATS, PANEL};

    /// Adds a tile of `R` rows × `P` panels, its sums held in `R × P` registers, to
    /// `out`, prefetching `lines` cache lines from `prefetch` into L2 along the way.
    ///
    /// # Safety
    /// The CPU has AVX-512 F; `a` holds `R` rows of `k` floats, `lda` apart; `b` holds
    /// `k × P × 16` interleaved floats; `prefetch` holds `lines` cache lines; `out` holds
    /// `R` rows of `cols` floats (`cols` within the last of the `P` panels), `stride`
    /// apart, that no other thread touches meanwhile.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile_rp<const R: usize, const P: usize>(
        (a, lda): (*const f32, usize),
        k: usize,
        b: *const f32,
        (prefetch, lines): (*const f32, usize),
        (out, stride, cols): (*mut f32, usize, usize),
    ) {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        // The prefetches are spread over the inputs in chunks, one batch of them per
        // chunk, so the loop over a chunk's inputs is only loads and FMAs.
        let chunk = if lines == 0 { k } else { k.div_ceil(lines) }.max(1);
        let per_chunk = lines.div_ceil(k.div_ceil(chunk).max(1));
        let mut line = 0;
        for i0 in (0..k).step_by(chunk) {
            for _ in 0..per_chunk.min(lines - line) {
                // SAFETY: line `line` lies inside `prefetch` (caller's promise).
                let at = unsafe { prefetch.add(line * LINE_FLOATS) };
                _mm_prefetch::<_MM_HINT_T1>(at.cast());
                line += 1;
            }
            for i in i0..(i0 + chunk).min(k) {
                let mut w = [_mm512_setzero_ps(); P];
                for (p, w) in w.iter_mut().enumerate() {
                    // SAFETY: input i of panel p lies inside `b` (caller's promise).
                    *w = unsafe { _mm512_loadu_ps(b.add((i * P + p) * PANEL)) };
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: element i of row r lies inside `a`.
                    let x = _mm512_set1_ps(unsafe { *a.add(r * lda + i) });
                    for (acc, &w) in acc.iter_mut().zip(&w) {
                        *acc = _mm512_fmadd_ps(x, w, *acc);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (p, &v) in acc.iter().enumerate() {
                let left = cols - p * PANEL;
                // SAFETY: row r's columns `p * PANEL..cols` lie inside `out` (caller's
                // promise); the mask keeps the last panel's loads and stores to them.
                unsafe {
                    let at = out.add(r * stride + p * PANEL);
                    if left >= PANEL {
                        _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), v));
                    } else {
                        let m: __mmask16 = (1 << left) - 1;
                        let sum = _mm512_add_ps(_mm512_maskz_loadu_ps(m, at), v);
                        _mm512_mask_storeu_ps(at, m, sum);
                    }
                }
            }
        }
    }

    /// Dispatches a tile to the `tile_rp` instance of its shape, fetching the cache
    /// lines of `prefetch` into L2 along the way.
    ///
    /// # Safety
    /// As [`tile_rp`], for `rows` rows and `panels` panels.
    pub(super) unsafe fn tile(
        (a, lda): (&[f32], usize),
        k: usize,
        rows: usize,
        b: &[f32],
        panels: usize,
        prefetch: &[f32],
        (out, stride, cols): (*mut f32, usize, usize),
    ) {
        // `prefetch` starts on a cache line.
        let lines = prefetch.len().div_ceil(LINE_FLOATS);
        assert!(rows >= 1 && (rows - 1) * lda + k <= a.len());
        assert!(cols <= panels * PANEL && cols > (panels - 1) * PANEL);
        let (a, b, s) = ((a.as_ptr(), lda), b.as_ptr(), (out, stride, cols));
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
            // Several input blocks in both orders (many rows for 1 and 2 threads).
            (70, 1100, 60),
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
                            (got - want).abs() < 1e-5 * want.abs().max(1.0),
                            "{rows}x{inputs}x{outputs}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
