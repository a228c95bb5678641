//! Distance kernels: inner product and squared Euclidean distance over `f32` slices,
//! with AVX-512 and AVX2+FMA versions chosen once at run time and a portable fallback.
//!
//! The search loop spends most of its time here, so the choice is made once per process
//! ([`Isa::detect`]) and each call is a predictable branch plus a direct call. The
//! fallback keeps eight independent accumulators so the compiler vectorizes it on any
//! target. `QUIVER_SIMD=scalar|avx2|avx512` caps the instruction set (to compare kernels,
//! or to rule one out); a level the processor lacks is never chosen.
//!
//! The kernels sum in different orders, so results differ in the last bits between
//! levels; nothing in Quiver depends on bit-identical scores across machines.

use std::sync::OnceLock;

/// An instruction-set level the kernels are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, auto-vectorized for the build target.
    Scalar,
    /// AVX2 with fused multiply-add (x86-64).
    Avx2,
    /// AVX-512 Foundation (x86-64).
    Avx512,
}

impl Isa {
    /// The best level this processor supports, capped by `QUIVER_SIMD` when set.
    /// Detected once per process.
    pub fn detect() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let cap = match std::env::var("QUIVER_SIMD").ok().as_deref() {
                Some("scalar") => Isa::Scalar,
                Some("avx2") => Isa::Avx2,
                _ => Isa::Avx512,
            };
            Isa::available()
                .into_iter()
                .filter(|&isa| isa <= cap)
                .max()
                .unwrap_or(Isa::Scalar)
        })
    }

    /// Every level this processor can run, lowest first.
    pub fn available() -> Vec<Isa> {
        let mut out = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                out.push(Isa::Avx2);
            }
            // The AVX-512 level also runs AVX2 kernels (the code kernels), so it needs both.
            if is_x86_feature_detected!("avx512f") && out.contains(&Isa::Avx2) {
                out.push(Isa::Avx512);
            }
        }
        out
    }

    /// Inner product of two equally long slices.
    #[inline]
    pub fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only produced when the processor has AVX2 and FMA.
            Isa::Avx2 => unsafe { x86::dot_avx2(a, b) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx512` is only produced when the processor has AVX-512F.
            Isa::Avx512 => unsafe { x86::dot_avx512(a, b) },
            _ => dot_portable(a, b),
        }
    }

    /// Squared Euclidean distance of two equally long slices.
    #[inline]
    pub fn l2sq(self, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `dot`.
            Isa::Avx2 => unsafe { x86::l2sq_avx2(a, b) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `dot`.
            Isa::Avx512 => unsafe { x86::l2sq_avx512(a, b) },
            _ => l2sq_portable(a, b),
        }
    }

    /// `Σ q[i] · c[i]`: the inner product of `q` with a row of 8-bit codes.
    #[inline]
    pub fn dot_u8(self, q: &[f32], c: &[u8]) -> f32 {
        let n = q.len().min(c.len());
        let (q, c) = (&q[..n], &c[..n]);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both levels are only produced when the processor has AVX2 and FMA
            // (AVX-512 hosts have both); the AVX2 kernel serves both, since code rows are
            // a quarter of a vector's bytes and the time goes to loading them.
            Isa::Avx2 | Isa::Avx512 => unsafe { x86::dot_u8_avx2(q, c) },
            _ => q.iter().zip(c).map(|(x, &y)| x * f32::from(y)).sum(),
        }
    }

    /// `Σ w[i] · (t[i] − c[i])²`: a weighted squared distance from `t` to a row of
    /// 8-bit codes.
    #[inline]
    pub fn wl2_u8(self, t: &[f32], w: &[f32], c: &[u8]) -> f32 {
        let n = t.len().min(w.len()).min(c.len());
        let (t, w, c) = (&t[..n], &w[..n], &c[..n]);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `dot_u8`.
            Isa::Avx2 | Isa::Avx512 => unsafe { x86::wl2_u8_avx2(t, w, c) },
            _ => t
                .iter()
                .zip(w)
                .zip(c)
                .map(|((x, w), &y)| w * (x - f32::from(y)) * (x - f32::from(y)))
                .sum(),
        }
    }
}

/// Inner product with the best kernel this processor has.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    Isa::detect().dot(a, b)
}

/// Squared Euclidean distance with the best kernel this processor has.
#[inline]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    Isa::detect().l2sq(a, b)
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn l2sq_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Asks the processor to start loading the cache line at `p` (a hint; never faults).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint that never faults, whatever the address; SSE is part of
    // the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The x86-64 kernels. Each takes two slices of the same length (the caller cuts
    //! them) and reads only within them: full vectors with unaligned loads, the tail
    //! with a masked load (AVX-512) or scalar code (AVX2).

    use std::arch::x86_64::*;

    /// Sum of the eight lanes of `v`.
    #[target_feature(enable = "avx2,fma")]
    fn hsum256(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(_mm256_castps256_ps128(v), hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The processor must support AVX2 and FMA; `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        // Four accumulators in registers hide the FMA latency; loads are by pointer
        // offset so the loop carries no bounds checks.
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        let mut i = 0;
        // SAFETY (all loads below): `i + 8 * lanes <= n` before each load, and both
        // slices hold `n` floats.
        unsafe {
            while i + 32 <= n {
                let (x, y) = (pa.add(i), pb.add(i));
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(8)), _mm256_loadu_ps(y.add(8)), a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(16)), _mm256_loadu_ps(y.add(16)), a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(24)), _mm256_loadu_ps(y.add(24)), a3);
                i += 32;
            }
            while i + 8 <= n {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), a0);
                i += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        let tail: f32 = a[i..].iter().zip(&b[i..]).map(|(x, y)| x * y).sum();
        hsum256(sum) + tail
    }

    /// # Safety
    /// As [`dot_avx2`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        let mut i = 0;
        // SAFETY: as in `dot_avx2`.
        unsafe {
            while i + 32 <= n {
                let (x, y) = (pa.add(i), pb.add(i));
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y));
                let d1 = _mm256_sub_ps(_mm256_loadu_ps(x.add(8)), _mm256_loadu_ps(y.add(8)));
                let d2 = _mm256_sub_ps(_mm256_loadu_ps(x.add(16)), _mm256_loadu_ps(y.add(16)));
                let d3 = _mm256_sub_ps(_mm256_loadu_ps(x.add(24)), _mm256_loadu_ps(y.add(24)));
                a0 = _mm256_fmadd_ps(d0, d0, a0);
                a1 = _mm256_fmadd_ps(d1, d1, a1);
                a2 = _mm256_fmadd_ps(d2, d2, a2);
                a3 = _mm256_fmadd_ps(d3, d3, a3);
                i += 32;
            }
            while i + 8 <= n {
                let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                a0 = _mm256_fmadd_ps(d, d, a0);
                i += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        let tail: f32 = a[i..]
            .iter()
            .zip(&b[i..])
            .map(|(x, y)| (x - y) * (x - y))
            .sum();
        hsum256(sum) + tail
    }

    /// Eight codes from `p`, widened to floats.
    ///
    /// # Safety
    /// AVX2; `p` must point at 8 readable bytes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn codes8(p: *const u8) -> __m256 {
        // SAFETY: the caller guarantees 8 readable bytes.
        let b = unsafe { _mm_loadl_epi64(p.cast::<__m128i>()) };
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b))
    }

    /// # Safety
    /// The processor must support AVX2 and FMA; `q.len() == c.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_u8_avx2(q: &[f32], c: &[u8]) -> f32 {
        let n = q.len();
        let (pq, pc) = (q.as_ptr(), c.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads below): `i + 8 * lanes <= n` before each load, and both
        // slices hold `n` items.
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let x = unsafe { _mm256_loadu_ps(pq.add(i + 8 * j)) };
                let y = unsafe { codes8(pc.add(i + 8 * j)) };
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let x = unsafe { _mm256_loadu_ps(pq.add(i)) };
            let y = unsafe { codes8(pc.add(i)) };
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let tail: f32 = q[i..]
            .iter()
            .zip(&c[i..])
            .map(|(x, &y)| x * f32::from(y))
            .sum();
        hsum256(sum) + tail
    }

    /// # Safety
    /// The processor must support AVX2 and FMA; `t`, `w` and `c` equally long.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn wl2_u8_avx2(t: &[f32], w: &[f32], c: &[u8]) -> f32 {
        let n = t.len();
        let (pt, pw, pc) = (t.as_ptr(), w.as_ptr(), c.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        // SAFETY (all loads below): as in `dot_u8_avx2`.
        while i + 16 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let x = unsafe { _mm256_loadu_ps(pt.add(i + 8 * j)) };
                let k = unsafe { _mm256_loadu_ps(pw.add(i + 8 * j)) };
                let d = _mm256_sub_ps(x, unsafe { codes8(pc.add(i + 8 * j)) });
                *acc = _mm256_fmadd_ps(_mm256_mul_ps(d, k), d, *acc);
            }
            i += 16;
        }
        while i + 8 <= n {
            let x = unsafe { _mm256_loadu_ps(pt.add(i)) };
            let k = unsafe { _mm256_loadu_ps(pw.add(i)) };
            let d = _mm256_sub_ps(x, unsafe { codes8(pc.add(i)) });
            acc[0] = _mm256_fmadd_ps(_mm256_mul_ps(d, k), d, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(acc[0], acc[1]);
        let tail: f32 = (i..n)
            .map(|j| w[j] * (t[j] - f32::from(c[j])) * (t[j] - f32::from(c[j])))
            .sum();
        hsum256(sum) + tail
    }

    /// Mask of the `rest` (< 16) lowest lanes.
    fn tail_mask(rest: usize) -> __mmask16 {
        ((1u32 << rest) - 1) as __mmask16
    }

    /// # Safety
    /// The processor must support AVX-512F; `a.len() == b.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
        );
        let mut i = 0;
        // SAFETY (all loads below): full loads only while `i + 16 * lanes <= n`; the
        // masked tail load reads only the `n - i` lanes left.
        unsafe {
            while i + 64 <= n {
                let (x, y) = (pa.add(i), pb.add(i));
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(y), a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x.add(16)), _mm512_loadu_ps(y.add(16)), a1);
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x.add(32)), _mm512_loadu_ps(y.add(32)), a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x.add(48)), _mm512_loadu_ps(y.add(48)), a3);
                i += 64;
            }
            while i + 16 <= n {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), a0);
                i += 16;
            }
            if i < n {
                let m = tail_mask(n - i);
                let x = _mm512_maskz_loadu_ps(m, pa.add(i));
                let y = _mm512_maskz_loadu_ps(m, pb.add(i));
                a1 = _mm512_fmadd_ps(x, y, a1);
            }
        }
        let sum = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        _mm512_reduce_add_ps(sum)
    }

    /// # Safety
    /// As [`dot_avx512`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn l2sq_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
        );
        let mut i = 0;
        // SAFETY: as in `dot_avx512`.
        unsafe {
            while i + 64 <= n {
                let (x, y) = (pa.add(i), pb.add(i));
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(y));
                let d1 = _mm512_sub_ps(_mm512_loadu_ps(x.add(16)), _mm512_loadu_ps(y.add(16)));
                let d2 = _mm512_sub_ps(_mm512_loadu_ps(x.add(32)), _mm512_loadu_ps(y.add(32)));
                let d3 = _mm512_sub_ps(_mm512_loadu_ps(x.add(48)), _mm512_loadu_ps(y.add(48)));
                a0 = _mm512_fmadd_ps(d0, d0, a0);
                a1 = _mm512_fmadd_ps(d1, d1, a1);
                a2 = _mm512_fmadd_ps(d2, d2, a2);
                a3 = _mm512_fmadd_ps(d3, d3, a3);
                i += 64;
            }
            while i + 16 <= n {
                let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                a0 = _mm512_fmadd_ps(d, d, a0);
                i += 16;
            }
            if i < n {
                let m = tail_mask(n - i);
                let d = _mm512_sub_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                );
                a1 = _mm512_fmadd_ps(d, d, a1);
            }
        }
        let sum = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        _mm512_reduce_add_ps(sum)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plain_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    fn plain_l2sq(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum()
    }

    /// Every level this host runs agrees with a plain f64 sum, at every length from 0
    /// to 130 (all tail shapes of both vector widths) and at model widths.
    #[test]
    fn every_kernel_matches_plain_sums() {
        let levels = Isa::available();
        assert!(levels.contains(&Isa::Scalar));
        let lens: Vec<usize> = (0..=130).chain([384, 768, 1024, 1031]).collect();
        for n in lens {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let b: Vec<f32> = (0..n)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 13.0)
                .collect();
            let (want_dot, want_l2) = (plain_dot(&a, &b), plain_l2sq(&a, &b));
            for &isa in &levels {
                let tol = 1e-4 * (1.0 + want_l2.abs() + want_dot.abs());
                let got = f64::from(isa.dot(&a, &b));
                assert!(
                    (got - want_dot).abs() <= tol,
                    "{isa:?} dot n={n}: {got} vs {want_dot}"
                );
                let got = f64::from(isa.l2sq(&a, &b));
                assert!(
                    (got - want_l2).abs() <= tol,
                    "{isa:?} l2 n={n}: {got} vs {want_l2}"
                );
            }
        }
    }

    /// The code kernels agree with plain sums at every tail shape and model widths.
    #[test]
    fn every_code_kernel_matches_plain_sums() {
        let lens: Vec<usize> = (0..=70).chain([128, 384, 1031]).collect();
        for n in lens {
            let q: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let w: Vec<f32> = (0..n).map(|i| (i % 5) as f32 / 4.0).collect();
            let c: Vec<u8> = (0..n).map(|i| (i * 91 % 256) as u8).collect();
            let want_dot: f64 = q
                .iter()
                .zip(&c)
                .map(|(x, &y)| f64::from(*x) * f64::from(y))
                .sum();
            let want_l2: f64 = (0..n)
                .map(|i| f64::from(w[i]) * (f64::from(q[i]) - f64::from(c[i])).powi(2))
                .sum();
            for isa in Isa::available() {
                let tol = 1e-4 * (1.0 + want_dot.abs() + want_l2.abs());
                let got = f64::from(isa.dot_u8(&q, &c));
                assert!(
                    (got - want_dot).abs() <= tol,
                    "{isa:?} dot_u8 n={n}: {got} vs {want_dot}"
                );
                let got = f64::from(isa.wl2_u8(&q, &w, &c));
                assert!(
                    (got - want_l2).abs() <= tol,
                    "{isa:?} wl2_u8 n={n}: {got} vs {want_l2}"
                );
            }
        }
    }

    #[test]
    fn detected_level_is_available() {
        assert!(Isa::available().contains(&Isa::detect()));
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
        assert_eq!(l2sq(&[1.0, 2.0], &[4.0, 6.0]), 25.0);
    }
}
