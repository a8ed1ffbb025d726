//! The int8 screens: each unit row quantised with its own scale to
//! integers in `[-127, 127]`, dot products summed exactly in `i32` by
//! `vpdpbusd` (four unsigned-by-signed byte products per 32-bit lane).
//!
//! With integer codes `x` (query) and `y` (base row), queries are packed as
//! unsigned bytes `x + 128`, base rows as signed bytes `y`, so a lane
//! accumulates `x.y + 128 sum(y)`; it starts at `-128 sum(y)`
//! ([`super::Code::init`]) and ends at `x.y`. `vpdpbusd` and the start value
//! wrap modulo `2^32`, so the result is exact whenever it fits `i32`:
//! `|x.y| <= 127^2 d < 2^31`, i.e. `d <= 133144` ([`Int8::MAX_DIM`]).
//!
//! The screened score is `w = f32(x.y) * s_b * s_q + (c_b + g_b)` (one
//! conversion, one multiply, one fused multiply-add): its rounding is
//! covered by the slack `σ` of the module docs of [`super`].
//!
//! * [`Int8`]: AVX512-VNNI, a 12 x 32 block in 512-bit registers (24
//!   accumulators, two panel registers, one broadcast: 64 multiply-adds per
//!   instruction).
//! * [`Int8Avx`]: AVX-VNNI (e.g. Alder Lake without AVX-512), a 6 x 16 block
//!   in 256-bit registers (12 accumulators of the 16 registers).
//! * [`Int8Avx2`]: plain AVX2 (Haswell to Comet Lake, Zen 1 to 3), a 5 x 16
//!   block: `vpmaddubsw` (pairs of byte products summed into `i16`), then
//!   `vpmaddwd` by ones and `vpaddd` stand in for `vpdpbusd`. `vpmaddubsw`
//!   saturates, so base rows are coded in 63 levels (`[-63, 63]`): a pair
//!   sums to at most `2 * 255 * 63 = 32130 < 2^15`. The base rows' residuals
//!   double, so the window is about 1.4 times as wide as [`Int8`]'s.

use super::{Block, Code, Scores, Screen, MR_MAX};

/// The int8 screen in 512-bit registers (AVX-512F and AVX512-VNNI; AVX2 and FMA to pack).
pub(crate) struct Int8;

/// The int8 screen in 256-bit registers (AVX2, FMA and AVX-VNNI).
pub(crate) struct Int8Avx;

/// Widest rows whose integer dot products fit `i32`: `127^2 d < 2^31`.
const MAX_DIM: usize = (i32::MAX / (127 * 127)) as usize;

/// `1.5 * 2^52`: adding it rounds an `f64` of magnitude below `2^51` to an
/// integer (to nearest, ties to even), whose two's complement then fills
/// the low 32 bits of the sum's bits.
const ROUND: f64 = 6_755_399_441_055_744.0;

/// Quantise `u` with scale `s = max|u_i| / levels`: `x~_i = round(u_i / s)`
/// in `[-levels, levels]`, written as bytes `x~_i + offset`, four per word
/// (component `4p + t` in byte `t` of word `p`; padding components are
/// zero); returns the scale, the residual `||u - s x~||` and, as `init`,
/// `-128 * sum(x~)`. Branch-free over four lanes, so it vectorises where it
/// is inlined.
#[inline(always)]
fn quantise(u: &[f64], offset: u32, levels: f64, out: &mut [u32]) -> Code {
    let mut max = [0f64; 4];
    let quads = u.chunks_exact(4);
    for (m, &x) in max.iter_mut().zip(quads.remainder()) {
        *m = x.abs();
    }
    for quad in quads {
        for t in 0..4 {
            // A plain compare (not `f64::max`): one `vmaxpd`, NaN never reaches here.
            max[t] = if quad[t].abs() > max[t] { quad[t].abs() } else { max[t] };
        }
    }
    let scale = (max[0].max(max[1]).max(max[2].max(max[3])) / levels) as f32;
    let s = scale as f64;
    // A zero or non-finite scale (zero or non-finite rows only) codes zeros.
    let inv = if s > 0.0 && s.is_finite() { 1.0 / s } else { 0.0 };
    let (mut resid2, mut sum) = ([0f64; 4], [0i32; 4]);
    let mut code = |quad: [f64; 4]| -> u32 {
        let mut word = 0u32;
        for t in 0..4 {
            // |u_i / s| <= levels (1 + 2^-23): the clamp only catches rounding
            // noise. Any integer code is sound: the residual is measured.
            let r = (quad[t] * inv).clamp(-levels, levels) + ROUND;
            let bits = r.to_bits() as u32;
            let err = quad[t] - s * (r - ROUND);
            resid2[t] += err * err;
            sum[t] += bits as i32;
            word |= (bits.wrapping_add(offset) & 0xff) << (8 * t);
        }
        word
    };
    let quads = u.chunks_exact(4);
    let tail = quads.remainder();
    let mut words = out.iter_mut();
    for (quad, w) in quads.zip(&mut words) {
        *w = code([quad[0], quad[1], quad[2], quad[3]]);
    }
    if !tail.is_empty() {
        let quad = std::array::from_fn(|t| tail.get(t).copied().unwrap_or(0.0));
        if let Some(w) = words.next() {
            *w = code(quad);
        }
    }
    for w in words {
        *w = offset * 0x0101_0101;
    }
    Code {
        scale,
        resid: resid2.iter().sum::<f64>().sqrt(),
        // Modulo 2^32 (see the module docs): it may wrap near `MAX_DIM`.
        init: sum.iter().sum::<i32>().wrapping_mul(-128),
    }
}

/// [`Screen::pack_query`] and [`Screen::pack_base`] of the int8 screens:
/// queries unsigned (`offset` 128), base rows signed (`offset` 0).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack(row: &[f32], u: &mut Vec<f64>, offset: u32, levels: f64, out: &mut [u32]) -> Code {
    super::unit(row, u);
    quantise(u, offset, levels, out)
}

/// Portable stand-in (never dispatched off x86_64; used by nothing else).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack(row: &[f32], u: &mut Vec<f64>, offset: u32, levels: f64, out: &mut [u32]) -> Code {
    super::unit(row, u);
    quantise(u, offset, levels, out)
}

/// `|u_i - s x~_i| <= s / 2` with `s <= (1 + 2^-24) / levels`, so
/// `e <= sqrt(d) / 250` for 127 levels (and `sqrt(d) / 124` for 63).
fn resid_bound(d: usize, levels: f64) -> f64 {
    (d as f64).sqrt() / (2.0 * levels - 4.0)
}

impl Screen for Int8 {
    const MR: usize = 12;
    const NR: usize = 32;
    const PER_WORD: usize = 4;
    const MAX_DIM: usize = MAX_DIM;

    fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    fn resid_bound(d: usize) -> f64 {
        resid_bound(d, 127.0)
    }

    /// The integer sum is exact.
    fn acc_error(_d: usize) -> f64 {
        0.0
    }

    unsafe fn pack_query(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
        // SAFETY: the caller guarantees the screen's features, AVX2 and FMA among them.
        let code = unsafe { pack(row, u, 128, 127.0, out) };
        // The query's offset is taken off through the base rows' `init`.
        Code { init: 0, ..code }
    }

    unsafe fn pack_base(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
        // SAFETY: as in `pack_query`.
        unsafe { pack(row, u, 0, 127.0, out) }
    }

    unsafe fn block(blk: &Block<'_>, scores: &mut Scores) -> [u32; MR_MAX] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the caller guarantees AVX-512F and AVX512-VNNI.
            unsafe { block_avx512(blk, scores) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (blk, scores);
            unreachable!("the int8 screen is only dispatched on x86_64")
        }
    }
}

impl Screen for Int8Avx {
    const MR: usize = 6;
    const NR: usize = 16;
    const PER_WORD: usize = 4;
    const MAX_DIM: usize = MAX_DIM;

    fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("avxvnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    fn resid_bound(d: usize) -> f64 {
        resid_bound(d, 127.0)
    }

    fn acc_error(_d: usize) -> f64 {
        0.0
    }

    unsafe fn pack_query(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
        // SAFETY: the caller guarantees AVX2 and FMA (all `pack` needs).
        unsafe { Int8::pack_query(row, u, out) }
    }

    unsafe fn pack_base(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
        // SAFETY: as in `pack_query`.
        unsafe { Int8::pack_base(row, u, out) }
    }

    unsafe fn block(blk: &Block<'_>, scores: &mut Scores) -> [u32; MR_MAX] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the caller guarantees AVX2, FMA and AVX-VNNI.
            unsafe { block_avx(blk, scores) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (blk, scores);
            unreachable!("the int8 screen is only dispatched on x86_64")
        }
    }
}

/// The int8 screen with plain AVX2 (and FMA), base rows in 63 levels.
pub(crate) struct Int8Avx2;

impl Screen for Int8Avx2 {
    const MR: usize = 5;
    const NR: usize = 16;
    const PER_WORD: usize = 4;
    /// `|x.y| <= 127 * 63 * d < 2^31`.
    const MAX_DIM: usize = (i32::MAX / (127 * 63)) as usize;

    fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    fn resid_bound(d: usize) -> f64 {
        resid_bound(d, 63.0)
    }

    fn acc_error(_d: usize) -> f64 {
        0.0
    }

    unsafe fn pack_query(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe { Int8::pack_query(row, u, out) }
    }

    unsafe fn pack_base(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code {
        // SAFETY: as in `pack_query`.
        unsafe { pack(row, u, 0, 63.0, out) }
    }

    unsafe fn block(blk: &Block<'_>, scores: &mut Scores) -> [u32; MR_MAX] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the caller guarantees AVX2 and FMA.
            unsafe { block_avx2(blk, scores) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (blk, scores);
            unreachable!("the int8 screen is only dispatched on x86_64")
        }
    }
}

/// [`Screen::block`] of [`Int8`]: 12 x 32, `w = f32(acc) * s_b * s_q + add`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX512-VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn block_avx512(blk: &Block<'_>, scores: &mut Scores) -> [u32; MR_MAX] {
    use std::arch::x86_64::*;
    const MR: usize = 12;
    const NR: usize = 32;
    let dp = blk.dp;
    assert!(blk.a.len() == MR * dp && blk.panel.len() == dp * NR);
    assert!(blk.thr.len() == MR && blk.row_scale.len() == MR);
    let (a, panel, cols) = (blk.a.as_ptr(), blk.panel.as_ptr(), blk.cols);
    // SAFETY (every raw access below), given the lengths asserted above:
    // * the panel loads at `panel + p * NR` and `+ 16` (16 u32 each, `p < dp`)
    //   end at `dp * NR = panel.len()`;
    // * the broadcast reads `a + p * MR + r` (`r < MR`, `p < dp`) are below
    //   `MR * dp = a.len()`;
    // * the loads of `cols.init`, `cols.scale`, `cols.add` and `+ 16` (16
    //   values each) and the stores into `scores[r]` (16 f32 at offsets 0
    //   and 16) stay inside their 32-element arrays;
    // * unaligned load/store intrinsics (`loadu`/`storeu`) need no alignment.
    let init0 = _mm512_loadu_si512(cols.init.as_ptr() as *const _);
    let init1 = _mm512_loadu_si512(cols.init.as_ptr().add(16) as *const _);
    let mut acc = [[init0, init1]; MR];
    for p in 0..dp {
        let b0 = _mm512_loadu_si512(panel.add(p * NR) as *const _);
        let b1 = _mm512_loadu_si512(panel.add(p * NR + 16) as *const _);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_epi32(*a.add(p * MR + r) as i32);
            acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], x, b0);
            acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], x, b1);
        }
    }
    let sb = [
        _mm512_loadu_ps(cols.scale.as_ptr()),
        _mm512_loadu_ps(cols.scale.as_ptr().add(16)),
    ];
    let add = [
        _mm512_loadu_ps(cols.add.as_ptr()),
        _mm512_loadu_ps(cols.add.as_ptr().add(16)),
    ];
    let mut masks = [0u32; MR_MAX];
    let mut row = |r: usize| {
        let t = _mm512_set1_ps(blk.thr[r]);
        let sq = _mm512_set1_ps(blk.row_scale[r]);
        for h in 0..2 {
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][h]), sb[h]);
            let w = _mm512_fmadd_ps(v, sq, add[h]);
            masks[r] |= (_mm512_cmp_ps_mask::<_CMP_GE_OQ>(w, t) as u32) << (16 * h);
            // Stored whatever the mask: a store is cheaper than a mispredicted branch.
            _mm512_storeu_ps(scores[r].as_mut_ptr().add(16 * h), w);
        }
    };
    // Unrolled, so the accumulators stay in registers.
    each_row!(row, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
    masks
}

/// [`Screen::block`] of [`Int8Avx`]: 6 x 16, as [`block_avx512`].
///
/// # Safety
/// The CPU must support AVX2, FMA and AVX-VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn block_avx(blk: &Block<'_>, scores: &mut Scores) -> [u32; MR_MAX] {
    use std::arch::x86_64::*;
    const MR: usize = 6;
    const NR: usize = 16;
    let dp = blk.dp;
    assert!(blk.a.len() == MR * dp && blk.panel.len() == dp * NR);
    assert!(blk.thr.len() == MR && blk.row_scale.len() == MR);
    let (a, panel, cols) = (blk.a.as_ptr(), blk.panel.as_ptr(), blk.cols);
    // SAFETY (every raw access below), given the lengths asserted above:
    // * the panel loads at `panel + p * NR` and `+ 8` (8 u32 each, `p < dp`)
    //   end at `dp * NR = panel.len()`;
    // * the broadcast reads `a + p * MR + r` (`r < MR`, `p < dp`) are below
    //   `MR * dp = a.len()`;
    // * the loads of `cols.init`, `cols.scale`, `cols.add` and `+ 8` (8
    //   values each) and the stores into `scores[r]` (8 f32 at offsets 0
    //   and 8) stay inside their 32-element arrays;
    // * unaligned load/store intrinsics (`loadu`/`storeu`) need no alignment.
    let init0 = _mm256_loadu_si256(cols.init.as_ptr() as *const _);
    let init1 = _mm256_loadu_si256(cols.init.as_ptr().add(8) as *const _);
    let mut acc = [[init0, init1]; MR];
    for p in 0..dp {
        let b0 = _mm256_loadu_si256(panel.add(p * NR) as *const _);
        let b1 = _mm256_loadu_si256(panel.add(p * NR + 8) as *const _);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let x = _mm256_set1_epi32(*a.add(p * MR + r) as i32);
            acc_r[0] = _mm256_dpbusd_avx_epi32(acc_r[0], x, b0);
            acc_r[1] = _mm256_dpbusd_avx_epi32(acc_r[1], x, b1);
        }
    }
    let sb = [
        _mm256_loadu_ps(cols.scale.as_ptr()),
        _mm256_loadu_ps(cols.scale.as_ptr().add(8)),
    ];
    let add = [
        _mm256_loadu_ps(cols.add.as_ptr()),
        _mm256_loadu_ps(cols.add.as_ptr().add(8)),
    ];
    let mut masks = [0u32; MR_MAX];
    let mut row = |r: usize| {
        let t = _mm256_set1_ps(blk.thr[r]);
        let sq = _mm256_set1_ps(blk.row_scale[r]);
        for h in 0..2 {
            let v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][h]), sb[h]);
            let w = _mm256_fmadd_ps(v, sq, add[h]);
            let ge = _mm256_cmp_ps::<_CMP_GE_OQ>(w, t);
            masks[r] |= (_mm256_movemask_ps(ge) as u32) << (8 * h);
            _mm256_storeu_ps(scores[r].as_mut_ptr().add(8 * h), w);
        }
    };
    each_row!(row, 0, 1, 2, 3, 4, 5);
    masks
}

/// [`Screen::block`] of [`Int8Avx2`]: 5 x 16, as [`block_avx`] with
/// `vpmaddubsw` + `vpmaddwd` + `vpaddd` for `vpdpbusd` (15 of the 16
/// registers: 10 accumulators, two panel registers, the broadcast, the
/// product and the ones).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(blk: &Block<'_>, scores: &mut Scores) -> [u32; MR_MAX] {
    use std::arch::x86_64::*;
    const MR: usize = 5;
    const NR: usize = 16;
    let dp = blk.dp;
    assert!(blk.a.len() == MR * dp && blk.panel.len() == dp * NR);
    assert!(blk.thr.len() == MR && blk.row_scale.len() == MR);
    let (a, panel, cols) = (blk.a.as_ptr(), blk.panel.as_ptr(), blk.cols);
    // SAFETY (every raw access below), given the lengths asserted above:
    // * the panel loads at `panel + p * NR` and `+ 8` (8 u32 each, `p < dp`)
    //   end at `dp * NR = panel.len()`;
    // * the broadcast reads `a + p * MR + r` (`r < MR`, `p < dp`) are below
    //   `MR * dp = a.len()`;
    // * the loads of `cols.init`, `cols.scale`, `cols.add` and `+ 8` (8
    //   values each) and the stores into `scores[r]` (8 f32 at offsets 0
    //   and 8) stay inside their 32-element arrays;
    // * unaligned load/store intrinsics (`loadu`/`storeu`) need no alignment.
    // No product pair saturates `vpmaddubsw`: |(x + 128) y| <= 255 * 63 per product.
    let ones = _mm256_set1_epi16(1);
    let init0 = _mm256_loadu_si256(cols.init.as_ptr() as *const _);
    let init1 = _mm256_loadu_si256(cols.init.as_ptr().add(8) as *const _);
    let mut acc = [[init0, init1]; MR];
    for p in 0..dp {
        let b0 = _mm256_loadu_si256(panel.add(p * NR) as *const _);
        let b1 = _mm256_loadu_si256(panel.add(p * NR + 8) as *const _);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let x = _mm256_set1_epi32(*a.add(p * MR + r) as i32);
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones);
            acc_r[0] = _mm256_add_epi32(acc_r[0], p0);
            acc_r[1] = _mm256_add_epi32(acc_r[1], p1);
        }
    }
    let sb = [
        _mm256_loadu_ps(cols.scale.as_ptr()),
        _mm256_loadu_ps(cols.scale.as_ptr().add(8)),
    ];
    let add = [
        _mm256_loadu_ps(cols.add.as_ptr()),
        _mm256_loadu_ps(cols.add.as_ptr().add(8)),
    ];
    let mut masks = [0u32; MR_MAX];
    let mut row = |r: usize| {
        let t = _mm256_set1_ps(blk.thr[r]);
        let sq = _mm256_set1_ps(blk.row_scale[r]);
        for h in 0..2 {
            let v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][h]), sb[h]);
            let w = _mm256_fmadd_ps(v, sq, add[h]);
            let ge = _mm256_cmp_ps::<_CMP_GE_OQ>(w, t);
            masks[r] |= (_mm256_movemask_ps(ge) as u32) << (8 * h);
            _mm256_storeu_ps(scores[r].as_mut_ptr().add(8 * h), w);
        }
    };
    each_row!(row, 0, 1, 2, 3, 4);
    masks
}
