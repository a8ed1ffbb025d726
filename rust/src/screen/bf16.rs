//! The bf16 screen: unit rows rounded to bfloat16 pairs, multiplied with
//! AVX512-BF16 `vdpbf16ps` (products exact, sums in `f32`) in a 12 x 32
//! register block (24 accumulators, two panel registers, one broadcast).

use super::{Block, Code, Scores, Screen, MR_MAX};

/// The bf16 screen (AVX-512F and AVX512-BF16; AVX2 and FMA to pack).
pub(crate) struct Bf16;

const MR: usize = 12;
const NR: usize = 32;

/// Round a finite `f32` to bfloat16 (round to nearest, ties to even);
/// subnormals become zero, as `vdpbf16ps` reads them. Branch-free.
#[inline(always)]
fn to_bf16(x: f32) -> u32 {
    let u = x.to_bits();
    let h = (u + 0x7fff + ((u >> 16) & 1)) >> 16;
    if x.abs() < f32::MIN_POSITIVE {
        0
    } else {
        h
    }
}

/// Scale `row` to a unit row `u` and pack it as bf16 pairs (even component
/// in the low half), zero-padded: the residual is that of the bf16 values.
/// Two lanes of residual, so it vectorises where it is inlined.
#[inline(always)]
fn pack_row(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
    super::unit(row, u);
    let mut resid2 = [0f64; 2];
    let mut code = |pair: [f64; 2]| -> u32 {
        let mut word = 0;
        for t in 0..2 {
            let h = to_bf16(pair[t] as f32);
            let err = pair[t] - f32::from_bits(h << 16) as f64;
            resid2[t] += err * err;
            word |= h << (16 * t);
        }
        word
    };
    let pairs = u.chunks_exact(2);
    let tail = pairs.remainder();
    let mut words = out.iter_mut();
    for (pair, w) in pairs.zip(&mut words) {
        *w = code([pair[0], pair[1]]);
    }
    if let (Some(&x), Some(w)) = (tail.first(), words.next()) {
        *w = code([x, 0.0]);
    }
    words.for_each(|w| *w = 0);
    Code {
        scale: 1.0,
        resid: (resid2[0] + resid2[1]).sqrt(),
        init: 0,
    }
}

/// [`pack_row`] with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
    pack_row(row, u, out)
}

/// Portable stand-in (never dispatched off x86_64).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
    pack_row(row, u, out)
}

impl Screen for Bf16 {
    const MR: usize = MR;
    const NR: usize = NR;
    const PER_WORD: usize = 2;
    const MAX_DIM: usize = usize::MAX;

    fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bf16")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Each component moves by at most `2^-8` of itself (bfloat16 keeps 8
    /// significant bits; plus `2^-24` from `f64` to `f32`), so
    /// `e <= 2^-8 + 2^-24 < 2^-7`.
    fn resid_bound(_d: usize) -> f64 {
        2f64.powi(-7)
    }

    /// At most `d` roundings of partial sums bounded by `sum |q~_i b~_i| <=
    /// ||q~|| ||b~|| <= (1 + 2^-7)^2`, each `<= 2^-24` of it (the products of
    /// bf16 values are exact in `f32`); doubled, as `vdpbf16ps` may round
    /// the two products of a pair separately, plus 4. Products below `2^-126`
    /// are flushed to zero (at most `d 2^-126` in all: inside `σ`).
    fn acc_error(d: usize) -> f64 {
        (d as f64 + 4.0) * 2f64.powi(-23) * (1.0 + 2f64.powi(-7)).powi(2)
    }

    unsafe fn pack_query(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
        // SAFETY: the caller guarantees the screen's features, AVX2 and FMA among them.
        unsafe { pack(row, u, out) }
    }

    unsafe fn pack_base(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
        // SAFETY: as in `pack_query`.
        unsafe { pack(row, u, out) }
    }

    unsafe fn block(blk: &Block<'_>, scores: &mut Scores) -> [u32; MR_MAX] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the caller guarantees AVX-512F and AVX512-BF16.
            unsafe { block_avx512(blk, scores) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (blk, scores);
            unreachable!("the bf16 screen is only dispatched on x86_64")
        }
    }
}

/// [`Screen::block`] of [`Bf16`]: `w = a + add`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX512-BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn block_avx512(blk: &Block<'_>, scores: &mut Scores) -> [u32; MR_MAX] {
    use std::arch::x86_64::*;
    let dp = blk.dp;
    assert!(blk.a.len() == MR * dp && blk.panel.len() == dp * NR);
    assert!(blk.thr.len() == MR && blk.row_scale.len() == MR);
    let (a, panel) = (blk.a.as_ptr(), blk.panel.as_ptr());
    // SAFETY (every raw access below), given the lengths asserted above:
    // * the panel loads at `panel + p * NR` and `+ 16` (16 u32 each, `p < dp`)
    //   end at `dp * NR = panel.len()`;
    // * the broadcast reads `a + p * MR + r` (`r < MR`, `p < dp`) are below
    //   `MR * dp = a.len()`;
    // * the loads of `cols.add` and `+ 16` (16 f32 each) and the stores into
    //   `scores[r]` (16 f32 at offsets 0 and 16) stay inside their 32-element arrays;
    // * the transmutes reinterpret 512-bit registers of the same size, every
    //   bit pattern being a valid `__m512bh`;
    // * unaligned load/store intrinsics (`loadu`/`storeu`) need no alignment.
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..dp {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(p * NR) as *const _));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(p * NR + 16) as *const _));
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(p * MR + r) as i32));
            acc_r[0] = _mm512_dpbf16_ps(acc_r[0], x, b0);
            acc_r[1] = _mm512_dpbf16_ps(acc_r[1], x, b1);
        }
    }
    let add0 = _mm512_loadu_ps(blk.cols.add.as_ptr());
    let add1 = _mm512_loadu_ps(blk.cols.add.as_ptr().add(16));
    let mut masks = [0u32; MR_MAX];
    let mut row = |r: usize| {
        let t = _mm512_set1_ps(blk.thr[r]);
        for (h, add) in [add0, add1].into_iter().enumerate() {
            let w = _mm512_add_ps(acc[r][h], add);
            masks[r] |= (_mm512_cmp_ps_mask::<_CMP_GE_OQ>(w, t) as u32) << (16 * h);
            _mm512_storeu_ps(scores[r].as_mut_ptr().add(16 * h), w);
        }
    };
    each_row!(row, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
    masks
}
