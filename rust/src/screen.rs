//! Exact cosine kNN by bfloat16 screening and exact re-ranking.
//!
//! On CPUs with AVX512-BF16 the dot products of a search run as bf16 pairs
//! accumulated in `f32` (`vdpbf16ps`), which does twice the multiply-adds
//! per cycle of an `f32` FMA. The screened scores are only approximate, so
//! they never decide the answer on their own:
//!
//! * For unit vectors `q`, `b` and their bf16 roundings `q~`, `b~`
//!   (relative error `u = 2^-9` per component),
//!   `|q~.b~ - q.b| <= (2u + u^2) * sum|q_i||b_i| + accumulation <= eps`, with
//!   `eps = 2^-8 + 2^-18 + O(d * 2^-24)` (Cauchy-Schwarz bounds the sum by 1).
//! * Let `A_k` be the k-th best screened score of a row. The `k` rows that
//!   reach it all have exact scores `>= A_k - eps`, so the true k-th score is
//!   at least `A_k - eps` and every member of the true top-k has a screened
//!   score `>= A_k - 2 eps`.
//! * A row therefore keeps every base row whose screened score is within
//!   `2 eps` of its running k-th best (the running value only rises, so the
//!   test is never stricter than the final one), and the survivors are
//!   re-scored exactly (cosine from `f64` dot products and norms) and sorted
//!   (best first, ties by lower index).
//!
//! The result is the exact top-k; only the candidate filter is approximate.
//! Near-ties (e.g. duplicated vectors) can admit many candidates: a row's
//! list is then cut to its exact top-k so far, and a block of queries that
//! admits too many is finished by the `f32` kernel instead.
//! The scan never stores a similarity tile: a 12 x 32 register block is
//! compared against the rows' thresholds as soon as it is computed.

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::knn::Search;
use crate::matrix::MatRef;

/// Query rows per register block.
const MR: usize = 12;
/// Base rows per packed panel (two 16-lane registers).
const NR: usize = 32;
/// Bytes of packed bf16 base rows per pass (16384 rows at d = 320).
const PASS_BYTES: usize = 10 << 20;
/// Query rows per work item (upper bound).
const QUERY_CHUNK: usize = 516;

/// Whether this CPU can run the bf16 screen (AVX-512F and AVX512-BF16).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Round a finite `f32` to bfloat16 (round to nearest, ties to even).
#[inline]
fn to_bf16(x: f32) -> u32 {
    let u = x.to_bits();
    (u + 0x7fff + ((u >> 16) & 1)) >> 16
}

/// Pack `row * scale` as bf16 pairs (even element in the low half), zero-padded to `dp` pairs.
#[inline]
fn pack_row(row: &[f32], scale: f32, out: &mut [u32]) {
    let d = row.len();
    for (p, slot) in out.iter_mut().enumerate() {
        let lo = if 2 * p < d { row[2 * p] * scale } else { 0.0 };
        let hi = if 2 * p + 1 < d { row[2 * p + 1] * scale } else { 0.0 };
        *slot = to_bf16(lo) | (to_bf16(hi) << 16);
    }
}

/// Bound on the score error of the screen, doubled (see the module docs),
/// with slack for the `f32` normalisation and the bias addition.
fn screen_margin(d: usize, max_bias: f32) -> f32 {
    let eps = 2f64.powi(-8) + 2f64.powi(-18) + (d as f64 + 8.0) * 2f64.powi(-23);
    (2.0 * eps + 2f64.powi(-20) * (1.0 + max_bias as f64)) as f32
}

/// Exact scores: cosine from `f64` dot products and norms, plus the bias.
#[derive(Clone, Copy)]
struct Exact<'a> {
    queries: MatRef<'a>,
    base: MatRef<'a>,
    bias: Option<&'a [f32]>,
}

impl Exact<'_> {
    /// Sort `cand` (candidates of query row `g`) by exact score, best first
    /// (ties by lower index), and keep the best `keep`.
    fn rank(&self, g: usize, cand: &[(f32, u32)], keep: usize, out: &mut Vec<(f64, u32)>) {
        let qrow = self.queries.row(g);
        let (_, qq) = dot_and_norm(qrow, qrow);
        out.clear();
        out.extend(cand.iter().map(|&(_, j)| {
            let (dot, bb) = dot_and_norm(qrow, self.base.row(j as usize));
            (
                dot / (qq * bb).sqrt() + self.bias.map_or(0.0, |b| b[j as usize] as f64),
                j,
            )
        }));
        out.sort_unstable_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        out.truncate(keep);
    }
}

/// `(q . b, b . b)` in `f64`, over eight independent lanes (vectorisable;
/// the same inputs always give the same bits, so duplicates tie exactly).
#[inline]
fn dot_and_norm(q: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut dot, mut norm) = ([0f64; 8], [0f64; 8]);
    let (qc, bc) = (q.chunks_exact(8), b.chunks_exact(8));
    let (qr, br) = (qc.remainder(), bc.remainder());
    for (x, y) in qc.zip(bc) {
        for l in 0..8 {
            let yl = y[l] as f64;
            dot[l] += x[l] as f64 * yl;
            norm[l] += yl * yl;
        }
    }
    for (l, (&x, &y)) in qr.iter().zip(br).enumerate() {
        dot[l] += x as f64 * y as f64;
        norm[l] += y as f64 * y as f64;
    }
    (dot.iter().sum(), norm.iter().sum())
}

/// Screening state of one query row.
struct RowState {
    /// The k best screened scores seen so far (descending; `-inf` until filled).
    top: Vec<f32>,
    /// Candidates `(screened score, base row)`.
    cand: Vec<(f32, u32)>,
    /// Prune the candidates when they reach this many.
    cap: usize,
}

/// A block of query rows with its packed bf16 copy and per-row state.
struct Chunk {
    q0: usize,
    rows: usize,
    /// `rows` rounded up to `MR`, times `dp` packed pairs.
    a: Vec<u32>,
    /// Per padded row: admit a candidate when its screened score is `>= thr`
    /// (`+inf` on padding rows).
    thr: Vec<f32>,
    state: Vec<RowState>,
    /// Candidates admitted so far (all rows).
    admitted: usize,
    /// Too many near-ties for the screen to pay: finish with the `f32` kernel.
    fallback: bool,
}

struct Scan<'a> {
    k: usize,
    dp: usize,
    margin: f32,
    panels: &'a [u32],
    /// Per packed base column: bias (0 without one), NaN on padding columns.
    col_add: &'a [f32],
    /// Global index of the first base row of `panels`.
    s0: usize,
    /// Most candidates a row keeps: beyond it (many near-ties, e.g.
    /// duplicated vectors) they are cut to the exact top-k so far.
    limit: usize,
    exact: Exact<'a>,
}

impl Chunk {
    /// Offer the set bits of `mask` (columns of `scores`) to query row `r`.
    #[inline(never)]
    fn offer(&mut self, sc: &Scan<'_>, r: usize, scores: &[f32; NR], mask: u32, col0: usize) {
        let st = &mut self.state[r];
        let mut thr = self.thr[r];
        let mut bits = mask;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let j = col0 + b;
            let s = scores[b];
            if s < thr {
                continue;
            }
            st.cand.push((s, j as u32));
            self.admitted += 1;
            let k = sc.k;
            if s > st.top[k - 1] {
                let mut pos = k - 1;
                while pos > 0 && st.top[pos - 1] < s {
                    st.top[pos] = st.top[pos - 1];
                    pos -= 1;
                }
                st.top[pos] = s;
                thr = st.top[k - 1] - sc.margin;
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
                    sc.exact.rank(self.q0 + r, &st.cand, sc.k, &mut ranked);
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
    /// The CPU must support AVX-512F and AVX512-BF16 ([`available`]). The
    /// buffers must have the shapes [`knn_block_screened`] gives them (checked
    /// by debug assertions): `sc.col_add` holds `n_panels * NR` values and
    /// `sc.panels` `n_panels * dp * NR`; `self.thr` has one entry per padded
    /// row, a multiple of `MR`, and `self.a` holds `dp` pairs per padded row.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn scan(&mut self, sc: &Scan<'_>) {
        use std::arch::x86_64::*;
        let dp = sc.dp;
        let n_panels = sc.col_add.len() / NR;
        let padded = self.thr.len();
        debug_assert_eq!(sc.col_add.len(), n_panels * NR);
        debug_assert_eq!(sc.panels.len(), n_panels * dp * NR);
        debug_assert_eq!(padded % MR, 0);
        debug_assert_eq!(self.a.len(), padded * dp);
        debug_assert!(self.rows <= padded && padded < self.rows + MR);
        // SAFETY (every raw access below), given the shapes above:
        // * `panel = panels + pi * dp * NR` with `pi < n_panels`; the loads at
        //   `panel + p * NR` and `+ 16` (16 u32 each, `p < dp`) end at
        //   `(pi + 1) * dp * NR <= panels.len()`;
        // * the loads of `col_add + pi * NR` and `+ 16` (16 f32 each) end at
        //   `(pi + 1) * NR <= col_add.len()`;
        // * `a = self.a + r0 * dp` with `r0 + MR <= padded` (r0 steps by MR over
        //   a multiple of MR), so `a + r * dp + p` (`r < MR`, `p < dp`) is below
        //   `padded * dp = self.a.len()`, and `thr.get_unchecked(r0 + r)` is below
        //   `padded = thr.len()`;
        // * the stores into `scores` write 16 f32 at offsets 0 and 16 of its 32;
        // * the transmutes reinterpret 512-bit registers of the same size, every
        //   bit pattern being a valid `__m512bh`;
        // * unaligned load/store intrinsics (`loadu`/`storeu`) need no alignment.
        let mut scores = [0f32; NR];
        for pi in 0..n_panels {
            let panel = sc.panels.as_ptr().add(pi * dp * NR);
            let add0 = _mm512_loadu_ps(sc.col_add.as_ptr().add(pi * NR));
            let add1 = _mm512_loadu_ps(sc.col_add.as_ptr().add(pi * NR + 16));
            let col0 = sc.s0 + pi * NR;
            // Exact cuts cost about 2d flops per admitted candidate: past this
            // many (typical rows admit a few hundred) the f32 kernel is cheaper.
            if self.admitted > 2 * self.rows * sc.limit {
                self.fallback = true;
                return;
            }
            for r0 in (0..padded).step_by(MR) {
                let a = self.a.as_ptr().add(r0 * dp);
                let mut acc = [[_mm512_setzero_ps(); 2]; MR];
                for p in 0..dp {
                    let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(p * NR) as *const _));
                    let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(p * NR + 16) as *const _));
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r * dp + p) as i32));
                        acc_r[0] = _mm512_dpbf16_ps(acc_r[0], x, b0);
                        acc_r[1] = _mm512_dpbf16_ps(acc_r[1], x, b1);
                    }
                }
                for (r, acc_r) in acc.iter().enumerate() {
                    let t = _mm512_set1_ps(*self.thr.get_unchecked(r0 + r));
                    let s0 = _mm512_add_ps(acc_r[0], add0);
                    let s1 = _mm512_add_ps(acc_r[1], add1);
                    let m0 = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(s0, t) as u32;
                    let m1 = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(s1, t) as u32;
                    let mask = m0 | (m1 << 16);
                    if mask != 0 {
                        _mm512_storeu_ps(scores.as_mut_ptr(), s0);
                        _mm512_storeu_ps(scores.as_mut_ptr().add(16), s1);
                        self.offer(sc, r0 + r, &scores, mask, col0);
                    }
                }
            }
        }
    }

    /// # Safety
    /// Never called: the screen is dispatched only where [`available`] is true,
    /// which it never is off x86_64. Unsafe only to match the x86_64 signature.
    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn scan(&mut self, _sc: &Scan<'_>) {
        unreachable!("the bf16 screen is only dispatched on x86_64")
    }
}

/// Exact top-k by bf16 screening; same contract as [`Search::run`]
/// after its argument checks. The caller must have checked [`available`].
pub(crate) fn knn_block_screened(pool: &ThreadPool, search: &Search<'_>, sims: &mut [f32], idx: &mut [i64]) {
    let Search {
        queries,
        q_inv,
        base,
        b_inv,
        bias,
        k,
    } = *search;
    // A safe function running AVX-512 code: a cheap (cached) check keeps it sound.
    assert!(available(), "the bf16 screen needs AVX-512F and AVX512-BF16");
    let n = queries.rows();
    let m = base.rows();
    let d = queries.cols();
    let dp = d.div_ceil(2);
    let max_bias = bias.map_or(0.0, |b| b.iter().fold(0f32, |a, &v| a.max(v.abs())));
    let margin = screen_margin(d, max_bias);
    let threads = pool.current_num_threads().max(1);
    let qb = n.div_ceil(threads * 4).clamp(MR, QUERY_CHUNK).next_multiple_of(MR);
    let limit = 4 * k + 1024;
    let pass_rows = (PASS_BYTES / (dp * 4)).next_multiple_of(NR).max(NR);
    let scorer = Exact { queries, base, bias };

    pool.install(|| {
        let mut chunks: Vec<Chunk> = (0..n.div_ceil(qb))
            .into_par_iter()
            .map(|c| {
                let q0 = c * qb;
                let rows = qb.min(n - q0);
                let padded = rows.next_multiple_of(MR);
                let mut a = vec![0u32; padded * dp];
                for r in 0..rows {
                    pack_row(queries.row(q0 + r), q_inv[q0 + r], &mut a[r * dp..(r + 1) * dp]);
                }
                let mut thr = vec![f32::NEG_INFINITY; padded];
                thr[rows..].fill(f32::INFINITY);
                let state = (0..rows)
                    .map(|_| RowState {
                        top: vec![f32::NEG_INFINITY; k],
                        cand: Vec::with_capacity(2 * k + NR),
                        cap: 2 * k + NR,
                    })
                    .collect();
                Chunk {
                    q0,
                    rows,
                    a,
                    thr,
                    state,
                    admitted: 0,
                    fallback: false,
                }
            })
            .collect();

        let mut panels: Vec<u32> = Vec::new();
        let mut col_add: Vec<f32> = Vec::new();
        let mut s0 = 0;
        while s0 < m {
            let sb = pass_rows.min(m - s0);
            let n_panels = sb.div_ceil(NR);
            panels.resize(n_panels * dp * NR, 0);
            col_add.resize(n_panels * NR, 0.0);
            panels
                .par_chunks_mut(dp * NR)
                .zip(col_add.par_chunks_mut(NR))
                .enumerate()
                .for_each(|(pi, (panel, add))| {
                    let mut row = vec![0u32; dp];
                    for c in 0..NR {
                        let j = s0 + pi * NR + c;
                        if j < s0 + sb {
                            pack_row(base.row(j), b_inv[j], &mut row);
                            add[c] = bias.map_or(0.0, |b| b[j]);
                        } else {
                            row.fill(0);
                            add[c] = f32::NAN;
                        }
                        for (p, &v) in row.iter().enumerate() {
                            panel[p * NR + c] = v;
                        }
                    }
                });
            let sc = Scan {
                k,
                dp,
                margin,
                panels: &panels,
                col_add: &col_add,
                s0,
                limit,
                exact: scorer,
            };
            // SAFETY: the caller checked `available()` (CPU features), and `panels`,
            // `col_add` (resized to `n_panels * dp * NR` and `n_panels * NR` above)
            // and every chunk's `a`, `thr` (built above) have the shapes `scan`
            // requires.
            debug_assert_eq!(panels.len(), n_panels * dp * NR);
            chunks
                .par_iter_mut()
                .filter(|ch| !ch.fallback)
                .for_each(|ch| unsafe { ch.scan(&sc) });
            s0 += sb;
        }

        // Exact re-ranking of the survivors (chunk c holds rows c*qb.., as the outputs' chunks do).
        let outputs = sims.par_chunks_mut(qb * k).zip(idx.par_chunks_mut(qb * k));
        chunks.par_iter().zip(outputs).for_each(|(ch, (s_out, i_out))| {
            if ch.fallback {
                crate::knn::knn_block_fp32(pool, &search.rows(ch.q0, ch.q0 + ch.rows), s_out, i_out);
                return;
            }
            let mut exact: Vec<(f64, u32)> = Vec::new();
            let mut kept: Vec<(f32, u32)> = Vec::new();
            for r in 0..ch.rows {
                let thr = ch.thr[r];
                kept.clear();
                kept.extend(ch.state[r].cand.iter().filter(|c| c.0 >= thr));
                scorer.rank(ch.q0 + r, &kept, k, &mut exact);
                debug_assert!(exact.len() >= k, "screen kept {} < k candidates", exact.len());
                for (t, &(s, j)) in exact.iter().take(k).enumerate() {
                    s_out[r * k + t] = s as f32;
                    i_out[r * k + t] = j as i64;
                }
            }
        });
    });
}
