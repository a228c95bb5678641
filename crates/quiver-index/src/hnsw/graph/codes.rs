//! The 8-bit codes a growing graph keeps beside each vector, which inserts' walks score
//! in place of the `f32` rows.
//!
//! An insert walks `ef_construction` wide and scores thousands of nodes, each a row the
//! caches have not seen, so building is bound by loading rows, as searching is (see the
//! flat graph's codes). A graph is filled while it is built, so its codes cannot be
//! fitted per dimension to a finished range as a flat graph's are: each node's codes are
//! fitted to its own vector, `x[i] ≈ lo + step · code[i]` with `lo` the vector's
//! smallest value and `step` its range over 255. The inner product with a query `q` is
//! then `lo · Σq + step · Σ q[i] · code[i]`, and a squared distance adds both squared
//! norms (the node's kept exact in its record). An insert ranks its walk by these and
//! scores the nodes it kept again against the `f32` vectors before it chooses links, so
//! links are chosen by exact distances, as without codes.
//!
//! A record: `lo`, `step` and the squared norm as little-endian `f32`, four bytes of
//! padding, then one code per dimension, padded to a multiple of 16 bytes.

/// The smallest graph dim whose nodes get codes: shorter rows span a few cache lines
/// either way (the flat graph's codes start at the same width).
pub(super) const MIN_DIM: usize = 128;

/// Bytes before the codes.
const HEADER: usize = 16;

/// Bytes of one node's record.
pub(super) fn stride(dim: usize) -> usize {
    HEADER + dim.next_multiple_of(16)
}

/// Writes the record of `vector` into `out` (`stride(vector.len())` bytes).
pub(super) fn encode(vector: &[f32], out: &mut [u8]) {
    let (lo, hi) = vector
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    let step = if hi > lo { (hi - lo) / 255.0 } else { 0.0 };
    let norm: f32 = vector.iter().map(|x| x * x).sum();
    out[0..4].copy_from_slice(&lo.to_le_bytes());
    out[4..8].copy_from_slice(&step.to_le_bytes());
    out[8..12].copy_from_slice(&norm.to_le_bytes());
    for (code, &x) in out[HEADER..].iter_mut().zip(vector) {
        *code = if step > 0.0 {
            ((x - lo) / step).round().clamp(0.0, 255.0) as u8
        } else {
            0
        };
    }
}

/// One node's record, read in place.
#[derive(Clone, Copy)]
pub(super) struct CodeRecord<'a> {
    bytes: &'a [u8],
}

impl<'a> CodeRecord<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> CodeRecord<'a> {
        CodeRecord { bytes }
    }

    fn word(&self, at: usize) -> f32 {
        f32::from_le_bytes([
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ])
    }

    pub(super) fn lo(&self) -> f32 {
        self.word(0)
    }

    pub(super) fn step(&self) -> f32 {
        self.word(4)
    }

    /// The vector's squared norm, exact.
    pub(super) fn norm(&self) -> f32 {
        self.word(8)
    }

    /// The whole record.
    pub(super) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The codes (with the record's padding after them).
    pub(super) fn codes(&self) -> &'a [u8] {
        &self.bytes[HEADER..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_restores_its_vector_within_half_a_step() {
        let v: Vec<f32> = (0..200)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let mut out = vec![0u8; stride(v.len())];
        encode(&v, &mut out);
        let r = CodeRecord::new(&out);
        assert_eq!(r.norm(), v.iter().map(|x| x * x).sum::<f32>());
        for (x, &c) in v.iter().zip(r.codes()) {
            let back = r.lo() + r.step() * f32::from(c);
            assert!(
                (back - x).abs() <= r.step() / 2.0 + 1e-6,
                "{x} came back {back}"
            );
        }
    }

    #[test]
    fn a_constant_vector_has_zero_step() {
        let v = vec![0.25f32; 130];
        let mut out = vec![0u8; stride(v.len())];
        encode(&v, &mut out);
        let r = CodeRecord::new(&out);
        assert_eq!((r.lo(), r.step()), (0.25, 0.0));
        assert!(r.codes().iter().all(|&c| c == 0));
    }
}
