//! Vector sets for the ANN benchmark: read and write `.fvecs` and `.npy`, and generate
//! clustered data.
//!
//! | format  | layout                                                                   |
//! |---------|--------------------------------------------------------------------------|
//! | `.fvecs`| per vector: `dim` as i32 little-endian, then `dim` f32 little-endian       |
//! | `.npy`  | NumPy v1.0 header (`<f4`, C order, shape `(n, dim)`), then rows of f32 LE |
//!
//! Written `.npy` files are what the peer script loads, so both sides search the very same
//! numbers.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{BenchError, Result};

/// Row-major vectors of one length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Vectors {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Vectors {
    /// Rows from separate vectors (all of one length).
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Vectors> {
        let dim = rows.first().map_or(0, Vec::len);
        if dim == 0 || rows.iter().any(|r| r.len() != dim) {
            return Err(BenchError::InvalidInput(
                "vectors must share one positive length".into(),
            ));
        }
        Ok(Vectors {
            dim,
            data: rows.concat(),
        })
    }

    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Splits off the last `n` rows (queries taken from the same file).
    pub fn split_tail(mut self, n: usize) -> (Vectors, Vectors) {
        let keep = self.len().saturating_sub(n) * self.dim;
        let tail = self.data.split_off(keep);
        let dim = self.dim;
        (self, Vectors { dim, data: tail })
    }

    /// Reads `.fvecs` or `.npy` by extension.
    pub fn read(path: &Path) -> Result<Vectors> {
        let bytes = std::fs::read(path).map_err(|e| BenchError::io(path, e))?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("fvecs") => parse_fvecs(path, &bytes),
            Some("npy") => parse_npy(path, &bytes),
            _ => Err(BenchError::InvalidInput(format!(
                "{}: expected .fvecs or .npy",
                path.display()
            ))),
        }
    }

    /// Writes a `.npy` file of shape `(n, dim)`.
    pub fn write_npy(&self, path: &Path) -> Result<()> {
        let mut header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
            self.len(),
            self.dim
        );
        // Magic (6) + version (2) + header length (2) + header, padded to 64 with '\n' last.
        let total = (10 + header.len() + 1).div_ceil(64) * 64;
        header.push_str(&" ".repeat(total - 10 - header.len() - 1));
        header.push('\n');
        let mut out = Vec::with_capacity(total + self.data.len() * 4);
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for v in &self.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(path, out).map_err(|e| BenchError::io(path, e))
    }

    /// L2-normalizes every row (cosine data).
    pub fn normalize(&mut self) {
        let dim = self.dim;
        for row in self.data.chunks_mut(dim.max(1)) {
            quiver_core::normalize(row);
        }
    }
}

fn parse_fvecs(path: &Path, bytes: &[u8]) -> Result<Vectors> {
    let bad = |offset: usize, why: &str| BenchError::data(path, offset, why.to_string());
    let head: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(0, "empty file"))?;
    let dim = usize::try_from(i32::from_le_bytes(head))
        .ok()
        .filter(|&d| d > 0)
        .ok_or_else(|| bad(0, "bad dim"))?;
    let stride = 4 + dim * 4;
    if !bytes.len().is_multiple_of(stride) {
        return Err(bad(
            bytes.len(),
            "file length is not a multiple of the record size",
        ));
    }
    let mut data = Vec::with_capacity(bytes.len() / stride * dim);
    for (i, rec) in bytes.chunks_exact(stride).enumerate() {
        if rec[..4] != head {
            return Err(bad(i * stride, "records differ in dim"));
        }
        data.extend(
            rec[4..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
    Ok(Vectors { dim, data })
}

fn parse_npy(path: &Path, bytes: &[u8]) -> Result<Vectors> {
    let bad = |why: &str| BenchError::data(path, 0, why.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (usize::try_from(n).map_err(|_| bad("header too long"))?, 12)
        }
        _ => return Err(bad("unsupported .npy version")),
    };
    let header = bytes
        .get(start..start + hlen)
        .map(String::from_utf8_lossy)
        .ok_or_else(|| bad("short header"))?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad(
            "only little-endian float32 ('<f4') in C order is supported",
        ));
    }
    let shape = header
        .split_once("'shape':")
        .and_then(|(_, rest)| rest.split_once('(')?.1.split_once(')'))
        .map(|(inner, _)| {
            inner
                .split(',')
                .filter_map(|d| d.trim().parse::<usize>().ok())
                .collect::<Vec<_>>()
        })
        .ok_or_else(|| bad("no shape"))?;
    let [n, dim] = shape[..] else {
        return Err(bad("expected a 2-d array"));
    };
    let body = &bytes[start + hlen..];
    if dim == 0 || body.len() != n * dim * 4 {
        return Err(bad("data length does not match the shape"));
    }
    let data = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Vectors { dim, data })
}

/// `n` base vectors and `queries` query vectors around `clusters` random centres
/// (Gaussian spread `spread`), unit length, reproducible from `seed`.
pub fn clustered(
    seed: u64,
    n: usize,
    queries: usize,
    dim: usize,
    clusters: usize,
    spread: f32,
) -> (Vectors, Vectors) {
    let mut rng = StdRng::seed_from_u64(seed);
    let gauss = move |rng: &mut StdRng| {
        // Box-Muller: rand's core has no normal distribution.
        let u1: f32 = rng.random::<f32>().max(1e-7);
        let u2: f32 = rng.random::<f32>();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    };
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| (0..dim).map(|_| gauss(&mut rng)).collect())
        .collect();
    let make = |count: usize, rng: &mut StdRng| {
        let mut v = Vectors {
            dim,
            data: Vec::with_capacity(count * dim),
        };
        for _ in 0..count {
            let c = &centres[rng.random_range(0..centres.len())];
            v.data.extend(c.iter().map(|x| x + spread * gauss(rng)));
        }
        v.normalize();
        v
    };
    let base = make(n, &mut rng);
    let q = make(queries, &mut rng);
    (base, q)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn npy_and_fvecs_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let v = Vectors {
            dim: 3,
            data: vec![1.0, -2.5, 3.0, 0.0, 0.5, f32::MIN_POSITIVE],
        };
        let p = t.path().join("v.npy");
        v.write_npy(&p).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert_eq!((raw.len() - 24) % 64, 0, "header pads to 64 bytes");
        assert_eq!(Vectors::read(&p).unwrap(), v);
        let mut fv = Vec::new();
        for row in v.data.chunks(3) {
            fv.extend_from_slice(&3i32.to_le_bytes());
            row.iter()
                .for_each(|x| fv.extend_from_slice(&x.to_le_bytes()));
        }
        let pf = t.path().join("v.fvecs");
        std::fs::write(&pf, &fv).unwrap();
        assert_eq!(Vectors::read(&pf).unwrap(), v);
        std::fs::write(&pf, &fv[..fv.len() - 1]).unwrap();
        assert!(Vectors::read(&pf).is_err());
        let (base, tail) = v.split_tail(1);
        assert_eq!((base.len(), tail.row(0)[1]), (1, 0.5));
    }

    #[test]
    fn clustered_is_reproducible_and_unit_length() {
        let (a, q) = clustered(3, 50, 5, 8, 4, 0.3);
        let (b, _) = clustered(3, 50, 5, 8, 4, 0.3);
        assert_eq!(a, b);
        assert_eq!((a.len(), q.len(), a.dim), (50, 5, 8));
        let n: f32 = a.row(7).iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
    }
}
