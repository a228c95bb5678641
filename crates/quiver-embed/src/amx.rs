//! f32 products of many rows on Intel AMX, the tile unit of Xeons since Sapphire Rapids,
//! at PyTorch's "high" float32 matmul precision ([`crate::Precision::F32`]).
//!
//! The tile unit multiplies bf16 values (8 significant bits) and sums in f32, at about
//! sixteen times the rate of AVX-512 f32 arithmetic. Each f32 operand is split into two
//! bf16 parts, `x = x₀ + x₁ (+ a rest below 2⁻¹⁶·|x|)`, the second the bf16 rounding of
//! what the first leaves; a product `x·w` is taken as `x₀w₀ + x₀w₁ + x₁w₀` (the left-out
//! `x₁w₁` is below 2⁻¹⁶ of it too). Each part product is exact in f32 and the unit sums
//! them in f32, so a product carries about 16 significant bits of its operands, where f32
//! carries 24: a sum of products is off by at most about `3·2⁻¹⁶` of `Σ|xᵢwᵢ|`, plus the
//! rounding of an f32 sum. Three bf16 products cost well under one f32 product's time.
//!
//! Weights are split and laid out as tiles once, at load ([`AmxWeight`]); activations
//! are split per call. A kernel call holds the sums of 32 rows × 32 columns in four tiles
//! (loaded from and stored back to `out`) and walks the inputs 32 at a time. The product
//! is blocked as a GEMM: the activations of a chunk of rows and inputs are split once and
//! stay in L2 while every column group's weights stream past them. Threads share out the
//! column groups a few at a time, so a core that runs faster takes more of them.
//!
//! Infinite or NaN inputs give NaN (their parts' difference is NaN); models' weights and
//! activations are finite. Values below 2⁻¹²⁶ count as zero, as the tile unit reads them.

use std::cell::Cell;
use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::panels::OutPtr;

/// bf16 parts per f32 value. A third part (and six part products, down to 2⁻²⁴) would
/// keep f32's full precision, but at twice the work it measured from 0.7 to 1.9 times
/// the speed of AVX-512 f32 products as the shared machine's load varied.
const PARTS: usize = 2;
/// Rows of a tile, and columns of a tile of sums.
const TILE: usize = 16;
/// Inputs one tile covers: 16 rows of 64 bytes hold 32 bf16 values each.
const K_BLOCK: usize = 32;
/// Rows and columns of the sums one kernel call holds: 2 × 2 tiles.
const BLOCK: usize = 2 * TILE;
/// Rows whose split activations are packed together and reused for every column group:
/// each chunk streams every weight once more, so chunks are as long as L2 allows.
const ROW_CHUNK: usize = 256;
/// Input blocks per chunk: 256 rows × 1024 inputs × 2 parts take 1 MiB of L2 (2 MiB),
/// a column group's weights for them 128 KiB. Two threads each running their own
/// products of 512 rows (alternating, one process) ran 5 to 30% faster than with
/// chunks of 128 rows × 512 inputs, and than 512 × 512 or 256 × 2048.
const K_CHUNK_BLOCKS: usize = 32;

/// One tile's bytes: 16 rows of 32 bf16 values (or 16 pairs of 16 columns).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Tile([u16; TILE * K_BLOCK]);

const ZERO_TILE: Tile = Tile([0; TILE * K_BLOCK]);

/// Whether this CPU and OS run AMX bf16 products; the first call asks Linux for the
/// tile state, once for the process.
pub(crate) fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    /// `arch_prctl` request for permission to use an extended state component.
    const ARCH_REQ_XCOMP_PERM: libc::c_ulong = 0x1023;
    /// The state component of the tile data registers.
    const XFEATURE_XTILEDATA: libc::c_ulong = 18;
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let (tile, bf16) = (leaf7.edx & (1 << 24) != 0, leaf7.edx & (1 << 22) != 0);
    if !(tile && bf16 && std::arch::is_x86_feature_detected!("avx512f")) {
        return false;
    }
    // SAFETY: a plain system call with integer arguments.
    let granted = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    granted == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// A weight split into bf16 parts and laid out as tiles: for each group of 32 output
/// columns, for each block of 32 inputs, for each part, two tiles of 16 columns, each
/// 16 rows of (input 2r, input 2r + 1) pairs per column, as the tile unit reads its
/// right-hand operand. Columns and inputs past the last are zero.
pub(crate) struct AmxWeight {
    tiles: Vec<Tile>,
    inputs: usize,
    outputs: usize,
}

impl AmxWeight {
    /// Splits and lays out PyTorch's `(outputs, inputs)` row-major weight.
    pub(crate) fn pack(rows: &[f32], outputs: usize, inputs: usize) -> Self {
        assert_eq!(rows.len(), outputs * inputs, "weight shape");
        let (groups, k_blocks) = (outputs.div_ceil(BLOCK), inputs.div_ceil(K_BLOCK));
        let mut tiles = vec![ZERO_TILE; groups * k_blocks * PARTS * 2];
        for (o, row) in rows.chunks_exact(inputs).enumerate() {
            let (g, t, column) = (o / BLOCK, (o % BLOCK) / TILE, o % TILE);
            for (i, &w) in row.iter().enumerate() {
                let (kb, pair, half) = (i / K_BLOCK, (i % K_BLOCK) / 2, i % 2);
                for (part, bits) in split(w).into_iter().enumerate() {
                    let tile = &mut tiles[((g * k_blocks + kb) * PARTS + part) * 2 + t];
                    tile.0[pair * K_BLOCK + column * 2 + half] = bits;
                }
            }
        }
        AmxWeight {
            tiles,
            inputs,
            outputs,
        }
    }

    /// The tiles of group `g`, input blocks `kbs`.
    fn group(&self, g: usize, kbs: &Range<usize>) -> &[Tile] {
        let k_blocks = self.inputs.div_ceil(K_BLOCK);
        let per_block = PARTS * 2;
        let start = (g * k_blocks + kbs.start) * per_block;
        &self.tiles[start..start + kbs.len() * per_block]
    }
}

/// The bf16 parts of `x`, high first, as bit patterns.
#[inline(always)]
fn split(x: f32) -> [u16; PARTS] {
    let mut rest = x;
    std::array::from_fn(|_| {
        let bits = rest.to_bits();
        // Round to nearest, ties to even, on the upper 16 bits.
        let high = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000;
        rest -= f32::from_bits(high);
        (high >> 16) as u16
    })
}

thread_local! {
    /// Split activations of a chunk, kept between calls so each call does not fault in
    /// fresh pages.
    static SPLIT_ROWS: Cell<Vec<Tile>> = const { Cell::new(Vec::new()) };
}

/// `out += x · Wᵀ` for `rows` rows of `x` (`inputs` wide) into `out` (`outputs` wide);
/// `threads` > 1 splits the column groups over the current rayon pool.
///
/// # Panics
/// If [`available`] is false, or on shapes that disagree.
pub(crate) fn accumulate(w: &AmxWeight, x: &[f32], rows: usize, out: &mut [f32], threads: usize) {
    assert!(available(), "AMX products on a CPU without AMX");
    assert_eq!(x.len(), rows * w.inputs, "input shape");
    assert_eq!(out.len(), rows * w.outputs, "output shape");
    let k_blocks = w.inputs.div_ceil(K_BLOCK);
    let groups = w.outputs.div_ceil(BLOCK);
    let out = OutPtr::new(out, w.outputs);
    // Taken, not borrowed: while this thread waits for the other threads' column groups,
    // rayon may run another product on it.
    let mut split = SPLIT_ROWS.take();
    for k0 in (0..k_blocks).step_by(K_CHUNK_BLOCKS) {
        let kbs = k0..(k0 + K_CHUNK_BLOCKS).min(k_blocks);
        for r0 in (0..rows).step_by(ROW_CHUNK) {
            let chunk = r0..(r0 + ROW_CHUNK).min(rows);
            split_rows(x, w.inputs, &chunk, &kbs, &mut split);
            let part = Part {
                w,
                split: &split,
                rows: chunk,
                kbs: kbs.clone(),
                out,
            };
            if threads > 1 && groups > 1 {
                let per = groups.div_ceil(4 * threads).max(1);
                (0..groups.div_ceil(per))
                    .into_par_iter()
                    .for_each(|t| part.run(t * per..((t + 1) * per).min(groups)));
            } else {
                part.run(0..groups);
            }
        }
    }
    SPLIT_ROWS.set(split);
}

/// Splits rows `rows` of `x`, input blocks `kbs`, into tiles: for each pair of row tiles
/// (16 rows each; rows past the last are zero), for each input block, for each part,
/// the two row tiles.
fn split_rows(
    x: &[f32],
    inputs: usize,
    rows: &Range<usize>,
    kbs: &Range<usize>,
    out: &mut Vec<Tile>,
) {
    let row_tiles = rows.len().div_ceil(BLOCK) * 2;
    out.clear();
    out.resize(row_tiles * kbs.len() * PARTS, ZERO_TILE);
    for (r, row) in x[rows.start * inputs..rows.end * inputs]
        .chunks_exact(inputs)
        .enumerate()
    {
        let (pair, t, lane) = (r / BLOCK, (r % BLOCK) / TILE, r % TILE);
        for (kb_local, kb) in kbs.clone().enumerate() {
            let values = &row[kb * K_BLOCK..((kb + 1) * K_BLOCK).min(inputs)];
            let base = ((pair * kbs.len() + kb_local) * PARTS) * 2;
            let mut parts = [[0u16; K_BLOCK]; PARTS];
            for (k, &v) in values.iter().enumerate() {
                let p = split(v);
                for part in 0..PARTS {
                    parts[part][k] = p[part];
                }
            }
            for (part, bits) in parts.iter().enumerate() {
                out[base + part * 2 + t].0[lane * K_BLOCK..(lane + 1) * K_BLOCK]
                    .copy_from_slice(bits);
            }
        }
    }
}

/// One chunk of rows and inputs, its activations split, ready to run over column groups.
struct Part<'a> {
    w: &'a AmxWeight,
    split: &'a [Tile],
    rows: Range<usize>,
    kbs: Range<usize>,
    out: OutPtr,
}

impl Part<'_> {
    /// Adds the products of column groups `groups` into `out`.
    fn run(&self, groups: Range<usize>) {
        let per_pair = self.kbs.len() * PARTS * 2;
        let mut edge = Sums([0.0; BLOCK * BLOCK]);
        // SAFETY: `available()` (asserted by `accumulate`) means the tile unit is present
        // and this process may use it.
        unsafe { TileConfig::all_full().load() };
        for g in groups {
            let weights = self.w.group(g, &self.kbs);
            let c0 = g * BLOCK;
            let cols = BLOCK.min(self.w.outputs - c0);
            for (pair, left) in self.split.chunks_exact(per_pair).enumerate() {
                let r0 = self.rows.start + pair * BLOCK;
                let rows = BLOCK.min(self.rows.end - r0);
                let (ptr, stride, cols) = self.out.region(r0, rows, c0, cols);
                if rows == BLOCK && cols == BLOCK {
                    // SAFETY: the tiles are configured; `left` and `weights` hold
                    // `kbs.len()` blocks of their layouts; the sums are the region just
                    // checked, whose columns only this thread writes (its groups).
                    unsafe { block(left, weights, self.kbs.len(), ptr, stride) };
                    continue;
                }
                // A block at the last rows or columns runs on a copy of its part of
                // `out`, padded to a whole block.
                for r in 0..rows {
                    // SAFETY: inside the region checked above, as before.
                    let row = unsafe { std::slice::from_raw_parts_mut(ptr.add(r * stride), cols) };
                    edge.0[r * BLOCK..r * BLOCK + cols].copy_from_slice(row);
                }
                // SAFETY: as above, with the sums in `edge`.
                unsafe { block(left, weights, self.kbs.len(), edge.0.as_mut_ptr(), BLOCK) };
                for r in 0..rows {
                    // SAFETY: as above.
                    let row = unsafe { std::slice::from_raw_parts_mut(ptr.add(r * stride), cols) };
                    row.copy_from_slice(&edge.0[r * BLOCK..r * BLOCK + cols]);
                }
            }
        }
        // SAFETY: releases the tile state this thread configured.
        unsafe { TileConfig::release() };
    }
}

/// Sums of a block at the last rows or columns: 32 × 32, row-major.
#[repr(C, align(64))]
struct Sums([f32; BLOCK * BLOCK]);

/// The tile configuration (palette 1): all eight tiles 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    row_bytes: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    fn all_full() -> Self {
        let mut row_bytes = [0; 16];
        let mut rows = [0; 16];
        row_bytes[..8].fill(64);
        rows[..8].fill(TILE as u8);
        TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            row_bytes,
            rows,
        }
    }

    /// # Safety
    /// The CPU must have AMX and the process permission to use it.
    unsafe fn load(&self) {
        // SAFETY: the caller's contract; `self` is a valid 64-byte configuration.
        unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) self, options(nostack, readonly)) };
    }

    /// # Safety
    /// As for [`TileConfig::load`].
    unsafe fn release() {
        // SAFETY: the caller's contract.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// Loads the tile at `$ptr` (64-byte rows) into tile register `$reg`.
macro_rules! load {
    ($reg:literal, $ptr:expr) => {
        std::arch::asm!(
            concat!("tileloadd ", $reg, ", [{p} + {s}]"),
            p = in(reg) $ptr,
            s = in(reg) 64usize,
            options(nostack, readonly),
        )
    };
}

/// `sums += left · rightᵀ` for one 32 × 32 block over `kbs` input blocks: `left` holds
/// each block's parts of two row tiles, `right` each block's parts of two column tiles;
/// `sums` is 32 rows of 32 floats, `stride` floats apart. Tiles 0 to 3 hold the sums, 4
/// and 5 a part of the row tiles, 6 and 7 of the column tiles. Each row part is loaded
/// once per input block and meets every column part it pairs with.
///
/// # Safety
/// Tiles configured by [`TileConfig::all_full`] on this thread; `left` and `right` hold
/// `kbs * PARTS * 2` tiles each; `sums` is valid for those reads and writes, and nothing
/// else touches them meanwhile.
#[inline(never)]
unsafe fn block(left: &[Tile], right: &[Tile], kbs: usize, sums: *mut f32, stride: usize) {
    debug_assert!(left.len() >= kbs * PARTS * 2 && right.len() >= kbs * PARTS * 2);
    let bytes = stride * 4;
    // SAFETY: the caller's contract; every tile pointer below is a whole tile of `left`
    // or `right`, every sum one of the caller's 32 × 32.
    unsafe {
        let quarters = [
            sums,
            sums.add(TILE),
            sums.add(TILE * stride),
            sums.add(TILE * stride + TILE),
        ];
        std::arch::asm!(
            "tileloadd tmm0, [{0} + {s}]",
            "tileloadd tmm1, [{1} + {s}]",
            "tileloadd tmm2, [{2} + {s}]",
            "tileloadd tmm3, [{3} + {s}]",
            in(reg) quarters[0],
            in(reg) quarters[1],
            in(reg) quarters[2],
            in(reg) quarters[3],
            s = in(reg) bytes,
            options(nostack, readonly)
        );
        for kb in 0..kbs {
            let a = left.as_ptr().add(kb * PARTS * 2);
            let b = right.as_ptr().add(kb * PARTS * 2);
            for i in 0..PARTS {
                load!("tmm4", a.add(i * 2));
                load!("tmm5", a.add(i * 2 + 1));
                for j in 0..PARTS - i {
                    load!("tmm6", b.add(j * 2));
                    load!("tmm7", b.add(j * 2 + 1));
                    std::arch::asm!(
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        options(nostack, nomem)
                    );
                }
            }
        }
        std::arch::asm!(
            "tilestored [{0} + {s}], tmm0",
            "tilestored [{1} + {s}], tmm1",
            "tilestored [{2} + {s}], tmm2",
            "tilestored [{3} + {s}], tmm3",
            in(reg) quarters[0],
            in(reg) quarters[1],
            in(reg) quarters[2],
            in(reg) quarters[3],
            s = in(reg) bytes,
            options(nostack)
        );
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    /// The parts of `x` as f32 values.
    fn parts(x: f32) -> [f32; PARTS] {
        split(x).map(|b| f32::from_bits(u32::from(b) << 16))
    }

    #[test]
    fn parts_keep_sixteen_bits() {
        let edge = [
            0.0,
            1.0,
            -1.0,
            0.1,
            -3.5e-30,
            6.0e30,
            f32::MAX / 2.0,
            f32::MIN_POSITIVE,
        ];
        for x in values(10_000, 7).into_iter().chain(edge) {
            let p = parts(x);
            let rest = f64::from(x) - p.iter().map(|&v| f64::from(v)).sum::<f64>();
            assert!(
                rest.abs() <= f64::from(x).abs() * 2f64.powi(-16),
                "{x}: {p:?}"
            );
            assert!(p[1].abs() <= x.abs() * 2f32.powi(-8), "{x}: {p:?}");
        }
    }

    /// Checks `got` (`rows × outputs`) against the exact products of `x` and `w`: each
    /// may miss by what 16-bit operands lose, `3·2⁻¹⁶` of `Σ|xᵢwᵢ|`, plus the rounding
    /// of an f32 sum of `inputs` terms. A misplaced value misses by far more.
    fn check(got: &[f32], x: &[f32], w: &[f32], rows: usize, inputs: usize, what: &str) {
        let outputs = w.len() / inputs;
        let slack = 3.0 * 2f64.powi(-16) + inputs as f64 * 2f64.powi(-24);
        for r in 0..rows {
            for o in 0..outputs {
                let terms = (0..inputs)
                    .map(|i| f64::from(x[r * inputs + i]) * f64::from(w[o * inputs + i]));
                let exact: f64 = terms.clone().sum();
                let size: f64 = terms.map(f64::abs).sum();
                let error = (f64::from(got[r * outputs + o]) - exact).abs();
                assert!(
                    error <= slack * size + 1e-30,
                    "{what}: ({r}, {o}) off by {error:e} of {size:e}"
                );
            }
        }
    }

    #[test]
    fn products_keep_sixteen_bit_operands() {
        if !available() {
            eprintln!("no AMX on this CPU: the tile products cannot run here");
            return;
        }
        // Partial tiles of rows, columns and inputs; whole blocks and edge blocks; several
        // row chunks and input chunks.
        for (rows, inputs, outputs) in [(1, 32, 16), (37, 70, 45), (150, 1100, 40), (64, 2048, 96)]
        {
            let x = values(rows * inputs, 3);
            let w = values(outputs * inputs, 11);
            let weight = AmxWeight::pack(&w, outputs, inputs);
            for threads in 1..=3 {
                // The products add onto what `out` holds.
                let start = values(rows * outputs, 5);
                let mut got = start.clone();
                accumulate(&weight, &x, rows, &mut got, threads);
                got.iter_mut().zip(&start).for_each(|(g, s)| *g -= s);
                check(
                    &got,
                    &x,
                    &w,
                    rows,
                    inputs,
                    &format!("{rows}x{inputs}x{outputs}, {threads} threads"),
                );
            }
        }
    }
}
