//! Exact cosine kNN by low-precision screening and exact re-ranking.
//!
//! A *screen* scores every pair with a fast low-precision dot product, but
//! only to decide which base rows may still belong to a query row's top-k.
//! The survivors are re-scored exactly (cosine from `f64` dot products and
//! norms, plus the bias) and sorted (best first, ties by lower index), so the
//! answer is the exact top-k and every screen returns the same bits. The
//! screens share everything here (query chunks, packed base passes, the
//! candidate state, the re-ranking); each supplies only its packed format and
//! its register block ([`Screen`]):
//!
//! * [`Bf16`] (AVX512-BF16 `vdpbf16ps`): unit rows rounded to bfloat16, pairs
//!   multiplied exactly and summed in `f32` — 32 multiply-adds per 512-bit
//!   instruction, twice an `f32` FMA.
//! * [`Int8`] (AVX512-VNNI `vpdpbusd`) and [`Int8Avx`] (its 256-bit AVX-VNNI
//!   form): each unit row quantised with its own scale `s = max|u_i| / 127`
//!   to integers `x~` in `[-127, 127]`, quadruples multiplied and summed
//!   exactly in `i32` — 64 multiply-adds per 512-bit instruction.
//!   [`Int8Avx2`] does the same with plain AVX2 instructions (base rows in
//!   `[-63, 63]`).
//!
//! # Error bound
//!
//! Let `u` be a unit row (the row over its `f64` norm) and `u~` what a screen
//! computes with (the bf16 values, or `s * x~`). Packing records the residual
//! `e = ||u - u~||`, computed in `f64`. For a query `q` and a base row `b`,
//! `q.b - q~.b~ = (q - q~).b + q~.(b - b~)` with `||b|| = 1` and
//! `||q~|| <= 1 + e_q`, so by Cauchy-Schwarz
//!
//! ```text
//! |q.b - q~.b~| <= e_q + (1 + e_q) e_b <= G_q + g_b,
//! G_q = e_q + acc + σ   (per query row)
//! g_b = (1 + E) e_b + σ (per base row; E = the largest e_q of the search)
//! ```
//!
//! where `acc` bounds the rounding of the screened dot product `a ≈ q~.b~`
//! (zero for the exact integer sums of int8; `(d + 4) 2^-23 (1 + ē)^2` for
//! the `f32` sums of bf16, products of bf16 being exact in `f32`) and `σ`
//! the rounding of the few `f32` operations that scale `a` and form the
//! bounds, and of the `f64` exact scores ([`slack`]). So with the bias `c_b`
//! (CSLS), a pair's exact score lies in `[L, U] = [a + c_b - g_b - G_q,
//! a + c_b + g_b + G_q]`:
//!
//! * Let `T` be the k-th best `L` of a query row over the base rows seen so
//!   far. The `k` rows that reach it all score `>= T`, so the true k-th best
//!   score is `>= T`, and every member of the true top-k has `U >= T`.
//! * A row therefore admits every base row with `U >= T`. `T` only rises
//!   during the scan, so the test is never stricter than the final one. In the
//!   register loop it reads `a + (c_b + g_b) >= T - G_q`: one compare per
//!   score against a per-row threshold, after (int8) one conversion, one
//!   multiply and one fused multiply-add.
//!
//! Per-row residuals keep the window `U - L` narrow: at d = 300 a typical
//! unit row has `e ≈ 1.6e-3` in bf16 (an 8-bit significand: relative
//! rounding of up to `2^-8` per component) and `e ≈ 7e-3` in int8 (the
//! rounding error of each component is uniform in `±s/2`, so
//! `e ≈ sqrt(d / 12) s`), against the worst cases `2^-8` and `sqrt(d) / 254`.
//!
//! The survivors (those with `U >= T` at the end) are scored exactly in
//! descending order of `U`, stopping at the first whose `U` is below the
//! k-th best exact score so far. On the benchmark's clustered data (k = 10,
//! d = 300, 40k base rows) a row admits about 120 (bf16) or 290 (int8)
//! candidates during the scan, 17 or 73 survive, and 13 or 29 of those are
//! scored exactly.
//!
//! Near-ties (e.g. duplicated vectors) can admit many candidates: a row's
//! list is then cut to its exact top-k so far, and a block of queries that
//! admits too many is finished by the `f32` kernel instead. The scan never
//! stores a similarity tile: each register block is compared against the
//! rows' thresholds as soon as it is computed.

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::knn::Search;
use crate::matrix::MatRef;

/// Call `f(r)` for each listed row `r`: the epilogue of a register block,
/// unrolled so that its accumulators stay in registers. Every score is
/// stored, whatever its row's mask: cheaper than a mispredicted branch.
macro_rules! each_row {
    ($f:ident, $($r:literal),+) => {
        $($f($r);)+
    };
}

mod bf16;
mod int8;

pub(crate) use bf16::Bf16;
pub(crate) use int8::{Int8, Int8Avx, Int8Avx2};

/// Largest register block of any screen: query rows ...
pub(crate) const MR_MAX: usize = 12;
/// ... and base rows (also the column count of [`PanelCols`]).
pub(crate) const NR_MAX: usize = 32;
/// Bytes of packed base rows per pass (16384 bf16 rows or 32768 int8 rows at d = 320).
const PASS_BYTES: usize = 10 << 20;
/// Query rows per work item (upper bound, rounded up to the screen's `MR`).
const QUERY_CHUNK: usize = 516;

/// What packing one unit row produced, besides its packed words.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Code {
    /// The row is approximated by `scale` times its packed values.
    pub scale: f32,
    /// `||u - u~||` of the unit row `u` and its approximation `u~`, in `f64`.
    pub resid: f64,
    /// Start value of this base row's accumulator (int8: `-128 * sum(x~)`).
    pub init: i32,
}

/// Per-column data of one packed base panel (`NR_MAX` columns; a screen
/// with a narrower block uses the first `NR`).
#[derive(Clone, Debug)]
pub(crate) struct PanelCols {
    /// `c_b + g_b`, added to the screened score; NaN on padding columns.
    pub add: [f32; NR_MAX],
    /// Row scale of the base row (int8; 1 for bf16).
    pub scale: [f32; NR_MAX],
    /// Accumulator start ([`Code::init`]).
    pub init: [i32; NR_MAX],
    /// `2 g_b`: the score minus this (and `G_q`) is the lower bound `L`.
    pub gap: [f32; NR_MAX],
}

impl Default for PanelCols {
    fn default() -> Self {
        PanelCols {
            add: [f32::NAN; NR_MAX],
            scale: [0.0; NR_MAX],
            init: [0; NR_MAX],
            gap: [0.0; NR_MAX],
        }
    }
}

/// One register block: `MR` query rows against one packed panel of `NR` base rows.
pub(crate) struct Block<'a> {
    /// Packed words per row.
    pub dp: usize,
    /// `MR` packed query rows, `dp` words each, interleaved: word `p` of
    /// row `r` at `p * MR + r`.
    pub a: &'a [u32],
    /// The panel: word `p` of column `c` at `p * NR + c`.
    pub panel: &'a [u32],
    pub cols: &'a PanelCols,
    /// Row scales of the `MR` query rows.
    pub row_scale: &'a [f32],
    /// Admission thresholds of the `MR` query rows (`+inf` on padding rows).
    pub thr: &'a [f32],
}

/// Screened scores of a register block, `[row][column]` ([`Screen::block`]).
pub(crate) type Scores = [[f32; NR_MAX]; MR_MAX];

/// A screen: its packed format, error terms and register block.
pub(crate) trait Screen {
    /// Query rows per register block (at most [`MR_MAX`]).
    const MR: usize;
    /// Base rows per packed panel (at most [`NR_MAX`]).
    const NR: usize;
    /// Vector components per packed `u32` word.
    const PER_WORD: usize;
    /// Widest rows it screens (wider searches use the `f32` kernel).
    const MAX_DIM: usize;

    /// Whether this CPU can run [`Screen::block`].
    fn available() -> bool;
    /// A priori bound on [`Code::resid`] at width `d`.
    fn resid_bound(d: usize) -> f64;
    /// Bound on `|a - q~.b~|` for the screened score `a` at width `d` (before the `f32` scaling).
    fn acc_error(d: usize) -> f64;
    /// Pack query row `row`, scaled to a unit row (via the scratch `u`),
    /// into `out` (`d.div_ceil(PER_WORD)` words, zero-padded).
    ///
    /// # Safety
    /// The CPU must support the screen ([`Screen::available`]).
    unsafe fn pack_query(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code;
    /// Pack base row `row` into `out` (as [`Screen::pack_query`]).
    ///
    /// # Safety
    /// The CPU must support the screen ([`Screen::available`]).
    unsafe fn pack_base(row: &[f32], u: &mut Vec<f64>, out: &mut [u32]) -> Code;
    /// Score `blk`: for each of its `MR` rows, the mask of columns whose
    /// score `w` satisfies `w >= thr[r]`, and (at least where the mask is
    /// not empty) the scores in `scores[r][..NR]`.
    ///
    /// # Safety
    /// The CPU must support the screen's instructions ([`Screen::available`]).
    /// The slices of `blk` are checked against `MR`, `NR` and `dp`.
    unsafe fn block(blk: &Block<'_>, scores: &mut Scores) -> [u32; MR_MAX];
}

/// `row / ||row||` in `f64` into `out` (the exact scorer's unit row, up to
/// `f64` rounding; eight lanes, so it vectorises where it is inlined).
#[inline(always)]
fn unit(row: &[f32], out: &mut Vec<f64>) {
    let mut lanes = [0f64; 8];
    let chunks = row.chunks_exact(8);
    for (l, &x) in chunks.remainder().iter().enumerate() {
        lanes[l] += x as f64 * x as f64;
    }
    for c in chunks {
        for l in 0..8 {
            lanes[l] += c[l] as f64 * c[l] as f64;
        }
    }
    let inv = 1.0 / lanes.iter().sum::<f64>().sqrt();
    out.clear();
    out.extend(row.iter().map(|&x| x as f64 * inv));
}

/// The smallest `f32` not below `x` (bounds stay bounds in `f32`).
fn up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

/// `σ` of the module docs: covers the rounding of the `f32` operations on
/// scores and bounds (at most eight roundings of values of magnitude below
/// `m`, each `<= m 2^-24`; four times that) and of the `f64` exact scores
/// and unit rows (`< 2^-30`).
fn slack(e_bound: f64, max_bias: f32) -> f64 {
    let m = 2.0 * (1.0 + e_bound).powi(2) + 2.0 * max_bias as f64 + 1.0;
    m * 2f64.powi(-19)
}

/// Exact scores: cosine from `f64` dot products and norms, plus the bias.
#[derive(Clone, Copy)]
struct Exact<'a> {
    queries: MatRef<'a>,
    base: MatRef<'a>,
    bias: Option<&'a [f32]>,
}

impl Exact<'_> {
    /// The exact top `keep` of the candidates `cand` of query row `g` into
    /// `out`, best first (ties by lower index). Each candidate `(w, j)` has
    /// an exact score of at most `w + gap_q` (its upper bound `U`): they are
    /// scored in descending `w`, stopping at the first whose bound is below
    /// the `keep`-th best exact score so far (it and every later one are out).
    fn rank(&self, g: usize, cand: &mut [(f32, u32)], gap_q: f32, keep: usize, out: &mut Vec<(f64, u32)>) {
        cand.sort_unstable_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        let qrow = self.queries.row(g);
        let (_, qq) = dot_and_norm(qrow, qrow);
        out.clear();
        for &(_, j) in cand.iter().take(PREFETCH) {
            prefetch(self.base.row(j as usize));
        }
        for (i, &(w, j)) in cand.iter().enumerate() {
            if out.len() == keep && (w as f64 + gap_q as f64) < out[keep - 1].0 {
                break;
            }
            if let Some(&(_, ahead)) = cand.get(i + PREFETCH) {
                prefetch(self.base.row(ahead as usize));
            }
            let (dot, bb) = dot_and_norm(qrow, self.base.row(j as usize));
            let s = dot / (qq * bb).sqrt() + self.bias.map_or(0.0, |b| b[j as usize] as f64);
            // Insert (s, j) into the sorted list, ties after lower indices.
            let pos = out.partition_point(|&(t, l)| t > s || (t == s && l < j));
            if pos < keep {
                out.truncate(keep - 1);
                out.insert(pos, (s, j));
            }
        }
    }
}

/// Candidates whose base rows are asked for ahead of their exact scoring.
const PREFETCH: usize = 4;

/// Ask for `row` in cache ahead of its use (a hint: no effect on results).
#[inline]
fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16) {
        // SAFETY: a prefetch never faults and reads nothing architecturally;
        // the pointer is inside `row` anyway.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr() as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Independent partial sums of [`dot_and_norm`].
const LANES: usize = 16;

/// `(q . b, b . b)` in `f64` over [`LANES`] independent partial sums, added
/// in lane order at the end, so the same inputs always give the same bits
/// (duplicates tie exactly). With AVX2 it runs the same operations in the
/// same order (Rust never fuses a multiply and an add): the same bits.
fn dot_and_norm(q: &[f32], b: &[f32]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { dot_and_norm_avx2(q, b) };
    }
    let (mut dot, mut norm) = ([0f64; LANES], [0f64; LANES]);
    let (qc, bc) = (q.chunks_exact(LANES), b.chunks_exact(LANES));
    let (qr, br) = (qc.remainder(), bc.remainder());
    for (x, y) in qc.zip(bc) {
        for l in 0..LANES {
            let (x, y) = (x[l] as f64, y[l] as f64);
            dot[l] += x * y;
            norm[l] += y * y;
        }
    }
    lanes_total(dot, norm, qr, br)
}

/// Add the tails `qr`, `br` (shorter than [`LANES`]) into the first lanes,
/// then the lanes in order.
#[inline(always)]
fn lanes_total(mut dot: [f64; LANES], mut norm: [f64; LANES], qr: &[f32], br: &[f32]) -> (f64, f64) {
    for (l, (&x, &y)) in qr.iter().zip(br).enumerate() {
        let (x, y) = (x as f64, y as f64);
        dot[l] += x * y;
        norm[l] += y * y;
    }
    let total = |v: [f64; LANES]| v.iter().fold(0.0, |a, &x| a + x);
    (total(dot), total(norm))
}

/// [`dot_and_norm`] in 256-bit registers.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_and_norm_avx2(q: &[f32], b: &[f32]) -> (f64, f64) {
    use std::arch::x86_64::*;
    let n = q.len().min(b.len());
    let main = n - n % LANES;
    // acc[g] holds dot lanes 4g..4g + 4, acc[4 + g] the same norm lanes.
    let mut acc = [_mm256_setzero_pd(); 8];
    let (qp, bp) = (q.as_ptr(), b.as_ptr());
    for i in (0..main).step_by(LANES) {
        for g in 0..4 {
            // SAFETY: `i + 4g + 4 <= main <= n`, inside both slices; `loadu` needs no alignment.
            let (x, y) = unsafe {
                (
                    _mm256_cvtps_pd(_mm_loadu_ps(qp.add(i + 4 * g))),
                    _mm256_cvtps_pd(_mm_loadu_ps(bp.add(i + 4 * g))),
                )
            };
            acc[g] = _mm256_add_pd(acc[g], _mm256_mul_pd(x, y));
            acc[4 + g] = _mm256_add_pd(acc[4 + g], _mm256_mul_pd(y, y));
        }
    }
    let (mut dot, mut norm) = ([0f64; LANES], [0f64; LANES]);
    for g in 0..4 {
        // SAFETY: 4 f64 at `4g`, inside the 16-element arrays.
        unsafe {
            _mm256_storeu_pd(dot.as_mut_ptr().add(4 * g), acc[g]);
            _mm256_storeu_pd(norm.as_mut_ptr().add(4 * g), acc[4 + g]);
        }
    }
    lanes_total(dot, norm, &q[main..n], &b[main..n])
}

/// Screening state of one query row.
struct RowState {
    /// The k best lower bounds `L` seen so far (descending; `-inf` until filled).
    top: Vec<f32>,
    /// Candidates `(screened score w, base row)`.
    cand: Vec<(f32, u32)>,
    /// Prune the candidates when they reach this many.
    cap: usize,
}

/// A block of query rows with its packed copy and per-row state.
struct Chunk {
    q0: usize,
    rows: usize,
    /// `rows` rounded up to `MR`, times `dp` packed words: each block of
    /// `MR` rows interleaved word by word (word `p` of row `r0 + r` at
    /// `r0 * dp + p * MR + r`).
    a: Vec<u32>,
    /// Per padded row: its scale (0 on padding rows).
    row_scale: Vec<f32>,
    /// Per row: `G_q`.
    row_gap: Vec<f32>,
    /// Per padded row: admit a candidate when its score `w` is `>= thr`
    /// (`T - G_q`; `+inf` on padding rows).
    thr: Vec<f32>,
    state: Vec<RowState>,
    /// Largest residual of the chunk's rows.
    resid_max: f64,
    /// Candidates admitted so far (all rows).
    admitted: usize,
    /// Too many near-ties for the screen to pay: finish with the `f32` kernel.
    fallback: bool,
}

/// One pass: a packed slice of the base and what every chunk needs to scan it.
struct Scan<'a> {
    k: usize,
    dp: usize,
    panels: &'a [u32],
    cols: &'a [PanelCols],
    /// Global index of the first base row of `panels`.
    s0: usize,
    /// Most candidates a row keeps: beyond it (many near-ties, e.g.
    /// duplicated vectors) they are cut to the exact top-k so far.
    limit: usize,
    exact: Exact<'a>,
}

impl Chunk {
    /// Pack query rows `q0..q0 + rows` for screen `S`.
    ///
    /// # Safety
    /// The CPU must support screen `S` ([`Screen::available`]).
    unsafe fn new<S: Screen>(queries: MatRef<'_>, q0: usize, rows: usize, dp: usize, k: usize, gap0: f64) -> Chunk {
        let padded = rows.next_multiple_of(S::MR);
        let mut a = vec![0u32; padded * dp];
        let mut row_scale = vec![0f32; padded];
        let mut row_gap = vec![0f32; rows];
        let mut resid_max = 0f64;
        let (mut u, mut packed) = (Vec::with_capacity(queries.cols()), vec![0u32; dp]);
        for r in 0..rows {
            // SAFETY: the caller checked `S::available()`.
            let code = unsafe { S::pack_query(queries.row(q0 + r), &mut u, &mut packed) };
            // Interleave each block of MR rows word by word: a register block
            // reads its MR words of step p at `p * MR`, one after the other.
            let block = &mut a[(r - r % S::MR) * dp..][..S::MR * dp];
            for (p, &w) in packed.iter().enumerate() {
                block[p * S::MR + r % S::MR] = w;
            }
            row_scale[r] = code.scale;
            row_gap[r] = up(code.resid + gap0);
            resid_max = resid_max.max(code.resid);
        }
        let mut thr = vec![f32::NEG_INFINITY; padded];
        thr[rows..].fill(f32::INFINITY);
        let state = (0..rows)
            .map(|_| RowState {
                top: vec![f32::NEG_INFINITY; k],
                cand: Vec::with_capacity(2 * k + NR_MAX),
                cap: 2 * k + NR_MAX,
            })
            .collect();
        Chunk {
            q0,
            rows,
            a,
            row_scale,
            row_gap,
            thr,
            state,
            resid_max,
            admitted: 0,
            fallback: false,
        }
    }

    /// Offer the set bits of `mask` (columns `col0 + b` of `scores`, with
    /// the per-column data `cols`) to query row `r`.
    #[inline(never)]
    fn offer(&mut self, sc: &Scan<'_>, r: usize, scores: &[f32; NR_MAX], mask: u32, cols: &PanelCols, col0: usize) {
        let st = &mut self.state[r];
        let gap_q = self.row_gap[r];
        let mut thr = self.thr[r];
        let k = sc.k;
        let mut bits = mask;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let w = scores[b];
            if w < thr {
                continue;
            }
            st.cand.push((w, (col0 + b) as u32));
            self.admitted += 1;
            if insert_low(&mut st.top, w - cols.gap[b] - gap_q) {
                thr = st.top[k - 1] - gap_q;
            }
        }
        if st.cand.len() >= st.cap {
            st.cand.retain(|c| c.0 >= thr);
            if st.cand.len() * 2 > st.cap {
                if st.cap < sc.limit {
                    st.cap = (st.cap * 2).min(sc.limit);
                } else {
                    // A row outside the exact top-k of the rows seen so far is
                    // outside the final top-k too: keep only those k.
                    let mut ranked = Vec::new();
                    sc.exact.rank(self.q0 + r, &mut st.cand, gap_q, k, &mut ranked);
                    // Their screened scores no longer matter: +inf keeps them
                    // through every later filter; the final ranking is exact.
                    st.cand.clear();
                    st.cand.extend(ranked.iter().map(|&(_, j)| (f32::INFINITY, j)));
                }
            }
        }
        self.thr[r] = thr;
    }

    /// Screen this chunk against every panel of `sc`.
    ///
    /// # Safety
    /// The CPU must support screen `S` ([`Screen::available`]).
    unsafe fn scan<S: Screen>(&mut self, sc: &Scan<'_>) {
        let (dp, nr, mr) = (sc.dp, S::NR, S::MR);
        let padded = self.thr.len();
        debug_assert_eq!(sc.panels.len(), sc.cols.len() * dp * nr);
        debug_assert_eq!(padded % mr, 0);
        let mut scores: Scores = [[0f32; NR_MAX]; MR_MAX];
        for (pi, cols) in sc.cols.iter().enumerate() {
            // Exact cuts cost about 2d flops per admitted candidate: past this
            // many (typical rows admit a few dozen) the f32 kernel is cheaper.
            if self.admitted > 2 * self.rows * sc.limit {
                self.fallback = true;
                return;
            }
            let panel = &sc.panels[pi * dp * nr..(pi + 1) * dp * nr];
            let col0 = sc.s0 + pi * nr;
            for r0 in (0..padded).step_by(mr) {
                let blk = Block {
                    dp,
                    a: &self.a[r0 * dp..(r0 + mr) * dp],
                    panel,
                    cols,
                    row_scale: &self.row_scale[r0..r0 + mr],
                    thr: &self.thr[r0..r0 + mr],
                };
                // SAFETY: the caller guarantees the CPU features; `block`
                // checks the slices' lengths against `MR`, `NR` and `dp`.
                let masks = unsafe { S::block(&blk, &mut scores) };
                // Visit only the rows with admissions (a few per block): one
                // loop branch instead of one unpredictable branch per row.
                let mut rows = masks[..mr]
                    .iter()
                    .enumerate()
                    .fold(0u32, |b, (r, &m)| b | ((m != 0) as u32) << r);
                while rows != 0 {
                    let r = rows.trailing_zeros() as usize;
                    rows &= rows - 1;
                    self.offer(sc, r0 + r, &scores[r], masks[r], cols, col0);
                }
            }
        }
    }
}

/// Insert `low` into the descending k-best array `top` if it beats the last;
/// returns whether it did.
#[inline]
fn insert_low(top: &mut [f32], low: f32) -> bool {
    let k = top.len();
    if low > top[k - 1] {
        let mut pos = k - 1;
        while pos > 0 && top[pos - 1] < low {
            top[pos] = top[pos - 1];
            pos -= 1;
        }
        top[pos] = low;
        true
    } else {
        false
    }
}

/// Pack base rows `s0..s0 + sb` into `panels` (`NR` columns per panel, `dp`
/// words per column) and their column data into `cols`: `c_b + g_b` with
/// `g_b = (1 + e_max) e_b + sigma`.
///
/// # Safety
/// The CPU must support screen `S` ([`Screen::available`]).
#[allow(clippy::too_many_arguments)]
unsafe fn pack_pass<S: Screen>(
    base: MatRef<'_>,
    bias: Option<&[f32]>,
    s0: usize,
    sb: usize,
    dp: usize,
    e_max: f64,
    sigma: f64,
    panels: &mut Vec<u32>,
    cols: &mut Vec<PanelCols>,
) {
    let n_panels = sb.div_ceil(S::NR);
    panels.resize(n_panels * dp * S::NR, 0);
    cols.resize(n_panels, PanelCols::default());
    panels
        .par_chunks_mut(dp * S::NR)
        .zip(cols.par_iter_mut())
        .enumerate()
        .for_each(|(pi, (panel, pc))| {
            let mut row = vec![0u32; dp];
            let mut u = Vec::with_capacity(base.cols());
            *pc = PanelCols::default();
            for c in 0..S::NR {
                let j = s0 + pi * S::NR + c;
                if j < s0 + sb {
                    // SAFETY: the caller checked `S::available()`.
                    let code = unsafe { S::pack_base(base.row(j), &mut u, &mut row) };
                    let g = (1.0 + e_max) * code.resid + sigma;
                    pc.add[c] = (bias.map_or(0.0, |b| b[j] as f64) + g) as f32;
                    pc.scale[c] = code.scale;
                    pc.init[c] = code.init;
                    pc.gap[c] = up(2.0 * g);
                } else {
                    row.fill(0);
                }
                for (p, &v) in row.iter().enumerate() {
                    panel[p * S::NR + c] = v;
                }
            }
        });
}

/// Exact top-k by screen `S`; same contract as [`Search::run`] after its
/// argument checks. The caller must have checked [`Screen::available`],
/// `d <= S::MAX_DIM` and that base indices fit `u32`.
pub(crate) fn knn_block_screened<S: Screen>(pool: &ThreadPool, search: &Search<'_>, sims: &mut [f32], idx: &mut [i64]) {
    let Search {
        queries, base, bias, k, ..
    } = *search;
    // A safe function running special instructions: a cheap (cached) check keeps it sound.
    assert!(S::available(), "this CPU cannot run the screen");
    let (n, m, d) = (queries.rows(), base.rows(), queries.cols());
    assert!(d <= S::MAX_DIM && m <= u32::MAX as usize);
    let dp = d.div_ceil(S::PER_WORD);
    let max_bias = bias.map_or(0.0, |b| b.iter().fold(0f32, |a, &v| a.max(v.abs())));
    let sigma = slack(S::resid_bound(d), max_bias);
    let threads = pool.current_num_threads().max(1);
    let qb = n
        .div_ceil(threads * 4)
        .clamp(S::MR, QUERY_CHUNK)
        .next_multiple_of(S::MR);
    let exact = Exact { queries, base, bias };

    pool.install(|| {
        // G_q = e_q + acc + sigma.
        let gap0 = S::acc_error(d) + sigma;
        let mut chunks: Vec<Chunk> = (0..n.div_ceil(qb))
            .into_par_iter()
            // SAFETY: checked `S::available()` above.
            .map(|c| unsafe { Chunk::new::<S>(queries, c * qb, qb.min(n - c * qb), dp, k, gap0) })
            .collect();
        // SAFETY: as above.
        unsafe { scan_passes::<S>(&mut chunks, search, dp, sigma, exact) };
        // Exact re-ranking of the survivors (chunk c holds rows c*qb.., as the outputs' chunks do).
        let outputs = sims.par_chunks_mut(qb * k).zip(idx.par_chunks_mut(qb * k));
        chunks.par_iter().zip(outputs).for_each(|(ch, (s_out, i_out))| {
            if ch.fallback {
                crate::knn::knn_block_fp32(pool, &search.rows(ch.q0, ch.q0 + ch.rows), s_out, i_out);
            } else {
                ch.rank(exact, k, s_out, i_out);
            }
        });
    });
}

/// Screen every chunk against the base, one packed pass of it at a time.
///
/// # Safety
/// The CPU must support screen `S` ([`Screen::available`]).
unsafe fn scan_passes<S: Screen>(chunks: &mut [Chunk], search: &Search<'_>, dp: usize, sigma: f64, exact: Exact<'_>) {
    let (base, bias, m) = (search.base, search.bias, search.base.rows());
    let e_max = chunks.iter().fold(0f64, |e, ch| e.max(ch.resid_max));
    let pass_rows = (PASS_BYTES / (dp * 4)).next_multiple_of(S::NR).max(S::NR);
    let (mut panels, mut cols) = (Vec::new(), Vec::new());
    let mut s0 = 0;
    while s0 < m {
        let sb = pass_rows.min(m - s0);
        // SAFETY: the caller guarantees the CPU features.
        unsafe { pack_pass::<S>(base, bias, s0, sb, dp, e_max, sigma, &mut panels, &mut cols) };
        let sc = Scan {
            k: search.k,
            dp,
            panels: &panels,
            cols: &cols,
            s0,
            limit: 4 * search.k + 1024,
            exact,
        };
        chunks
            .par_iter_mut()
            .filter(|ch| !ch.fallback)
            // SAFETY: as above.
            .for_each(|ch| unsafe { ch.scan::<S>(&sc) });
        s0 += sb;
    }
}

impl Chunk {
    /// The exact top-k of each row's surviving candidates into `s_out`, `i_out`
    /// (`rows * k` each).
    fn rank(&self, exact: Exact<'_>, k: usize, s_out: &mut [f32], i_out: &mut [i64]) {
        let mut ranked: Vec<(f64, u32)> = Vec::new();
        let mut kept: Vec<(f32, u32)> = Vec::new();
        for (r, st) in self.state.iter().enumerate() {
            let thr = self.thr[r];
            kept.clear();
            kept.extend(st.cand.iter().filter(|c| c.0 >= thr));
            exact.rank(self.q0 + r, &mut kept, self.row_gap[r], k, &mut ranked);
            debug_assert!(ranked.len() >= k, "screen kept {} < k candidates", ranked.len());
            for (t, &(s, j)) in ranked.iter().take(k).enumerate() {
                s_out[r * k + t] = s as f32;
                i_out[r * k + t] = j as i64;
            }
        }
    }
}

/// Time `reps` calls of `S`'s register block on one panel and one block of
/// query rows held in L1 (`dp` words per row): returns seconds per call.
/// Used by the ignored microkernel benchmark in the tests.
#[cfg(test)]
pub(crate) fn time_block<S: Screen>(dp: usize, reps: usize) -> f64 {
    let a: Vec<u32> = (0..S::MR * dp)
        .map(|i| (i as u32).wrapping_mul(0x9E37_79B9) & 0x3f3f_3f3f)
        .collect();
    let panel: Vec<u32> = (0..S::NR * dp)
        .map(|i| (i as u32).wrapping_mul(0x85EB_CA6B) & 0x3f3f_3f3f)
        .collect();
    let cols = PanelCols {
        add: [0.0; NR_MAX],
        scale: [1.0; NR_MAX],
        ..PanelCols::default()
    };
    let row_scale = vec![1f32; S::MR];
    let thr = vec![f32::INFINITY; S::MR];
    let mut scores: Scores = [[0f32; NR_MAX]; MR_MAX];
    let start = std::time::Instant::now();
    for _ in 0..reps {
        let blk = Block {
            dp,
            a: std::hint::black_box(&a),
            panel: &panel,
            cols: &cols,
            row_scale: &row_scale,
            thr: &thr,
        };
        // SAFETY: the caller checked `S::available()`.
        std::hint::black_box(unsafe { S::block(&blk, &mut scores) });
    }
    start.elapsed().as_secs_f64() / reps as f64
}
