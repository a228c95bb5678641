//! 8-bit scalar codes of a flat graph's rows, compared during the walk in place of the
//! `f32` vectors.
//!
//! A graph walk is bound by memory, not arithmetic: each distance loads a row the
//! caches have not seen, and at 384 dimensions that is 24 cache lines of `f32`. The
//! codes hold one byte per dimension (`x ≈ offset[i] + scale[i] · code[i]`, with the
//! offset and scale fitted per dimension to the segment's own range), so the same
//! comparison loads a quarter of the bytes. The walk ranks candidates by code distance;
//! the rows it keeps (its list, at least `k + k/2` wide, and the best `k` rows the list
//! pushed out) are then scored again against the `f32` rows, so the scores a search
//! returns are exact and recall at equal `ef` stays that of a walk over the floats
//! (`tests/flat.rs` holds it within 0.005 of the built graph's own search over the same
//! links).
//! The codes add `dim` bytes per row to the graph file, a quarter of a vector; the
//! vectors themselves are still stored once, in the segment's vector file.
//!
//! Rows of fewer than [`MIN_DIM`] dimensions get no codes: they span a few cache lines
//! either way, and the codes would only add to the segment's size.

use quiver_core::Distance;

use super::format::VectorRows;
use crate::simd::Isa;

/// The smallest graph dim that gets codes.
pub(super) const MIN_DIM: usize = 128;

/// The codes section's words for the first `dim` floats of each row (divided by the
/// row's entry in `inv_norms` when given, as a cosine graph over a prefix compares
/// them): `dim` offsets and `dim` scales as `f32` bits, then the code bytes, row after
/// row, padded to a whole word.
pub(super) fn encode(rows: VectorRows<'_>, dim: usize, inv_norms: Option<&[u32]>) -> Vec<u32> {
    let n = rows.len();
    let value = |r: usize, i: usize| {
        let x = rows.data[r * rows.stride + i];
        inv_norms.map_or(x, |t| x * f32::from_bits(t[r]))
    };
    let mut lo = vec![f32::INFINITY; dim];
    let mut hi = vec![f32::NEG_INFINITY; dim];
    for r in 0..n {
        for i in 0..dim {
            let x = value(r, i);
            lo[i] = lo[i].min(x);
            hi[i] = hi[i].max(x);
        }
    }
    let scale: Vec<f32> = lo
        .iter()
        .zip(&hi)
        .map(|(l, h)| if h > l { (h - l) / 255.0 } else { 0.0 })
        .collect();
    let mut bytes = Vec::with_capacity((n * dim).next_multiple_of(4));
    for r in 0..n {
        for i in 0..dim {
            let code = if scale[i] > 0.0 {
                ((value(r, i) - lo[i]) / scale[i]).round().clamp(0.0, 255.0) as u8
            } else {
                0
            };
            bytes.push(code);
        }
    }
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    let mut words: Vec<u32> = lo.iter().map(|x| x.to_bits()).collect();
    words.extend(scale.iter().map(|x| x.to_bits()));
    words.extend(
        bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
    words
}

/// Words the codes section of `n` rows of `dim` takes.
pub(super) fn section_words(n: usize, dim: usize) -> usize {
    2 * dim + (n * dim).div_ceil(4)
}

/// A codes section read in place.
#[derive(Debug, Clone, Copy)]
pub(super) struct Codes<'a> {
    offset: &'a [f32],
    scale: &'a [f32],
    bytes: &'a [u8],
    dim: usize,
}

impl<'a> Codes<'a> {
    /// The section of `n` rows of `dim` codes that starts `words`.
    pub(super) fn new(words: &'a [u32], n: usize, dim: usize) -> Codes<'a> {
        let floats = |w: &'a [u32]| {
            // SAFETY: f32 and u32 have the same size and alignment and every bit
            // pattern is a valid f32.
            unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<f32>(), w.len()) }
        };
        let body = &words[2 * dim..section_words(n, dim)];
        Codes {
            offset: floats(&words[..dim]),
            scale: floats(&words[dim..2 * dim]),
            // SAFETY: a u32 slice is readable as bytes; the length is its byte length,
            // and the rows read from it stop at `n * dim`, within it.
            bytes: unsafe {
                std::slice::from_raw_parts(body.as_ptr().cast::<u8>(), body.len() * 4)
            },
            dim,
        }
    }

    /// The codes of `node`.
    #[inline]
    pub(super) fn row(&self, node: u32) -> &'a [u8] {
        let at = node as usize * self.dim;
        &self.bytes[at..at + self.dim]
    }

    /// Start of `node`'s codes, for prefetching.
    #[inline]
    pub(super) fn row_ptr(&self, node: u32) -> *const u8 {
        self.bytes.as_ptr().wrapping_add(node as usize * self.dim)
    }
}

/// A query prepared for comparing with codes: per-dimension factors, so each comparison
/// is one pass over the code bytes.
#[derive(Debug, Default)]
pub(super) struct CodeQuery {
    /// Inner products: `q[i] · scale[i]`. L2: `(q[i] − offset[i]) / scale[i]`.
    a: Vec<f32>,
    /// L2 only: `scale[i]²`.
    w: Vec<f32>,
    /// Inner products: `Σ q[i] · offset[i]`.
    bias: f32,
    l2: bool,
}

impl CodeQuery {
    /// Prepares `q` (already cut to the graph dim and normalized as the graph needs).
    pub(super) fn prepare(&mut self, codes: &Codes<'_>, q: &[f32], distance: Distance) {
        self.a.clear();
        self.w.clear();
        self.l2 = distance == Distance::L2;
        if self.l2 {
            for ((x, o), s) in q.iter().zip(codes.offset).zip(codes.scale) {
                let (t, w) = if *s > 0.0 {
                    ((x - o) / s, s * s)
                } else {
                    (0.0, 0.0)
                };
                self.a.push(t);
                self.w.push(w);
            }
            self.bias = 0.0;
        } else {
            self.a.extend(q.iter().zip(codes.scale).map(|(x, s)| x * s));
            self.bias = q.iter().zip(codes.offset).map(|(x, o)| x * o).sum();
        }
    }

    /// The walk's distance to a row of codes (lower is closer): squared L2, or the
    /// negated inner product, of the decoded row.
    #[inline]
    pub(super) fn dist(&self, isa: Isa, row: &[u8]) -> f32 {
        if self.l2 {
            isa.wl2_u8(&self.a, &self.w, row)
        } else {
            -(self.bias + isa.dot_u8(&self.a, row))
        }
    }
}
