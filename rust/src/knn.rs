//! Exact cosine k-nearest-neighbour search.
//!
//! Every kernel ([`Kernel`]) gives the same exact answer:
//!
//! * The screens of [`crate::screen`] (`int8` on AVX512-VNNI, `bf16` on
//!   AVX512-BF16, `int8-avx` on AVX-VNNI, `int8-avx2` on AVX2) score
//!   candidates with low-precision dot products and re-rank the survivors
//!   exactly in `f64`.
//! * The `fp32` kernel computes similarities tile by tile with a blocked
//!   SIMD matrix product (the `gemm` crate, dispatched at run time to
//!   AVX-512/AVX2/SSE) and folds each tile into a per-row top-k at once.
//!
//! None stores the full similarity matrix: extra memory is one tile (or
//! one packed base pass of 10 MiB) plus one normalised query block per
//! thread, and one inverse norm per base row.

use std::ops::Range;

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::error::{Error, Result};
use crate::matrix::{check_block, MatRef};

/// Query rows per tile (upper bound).
const QUERY_BLOCK: usize = 512;
/// Base rows per tile.
const BASE_BLOCK: usize = 512;

/// An exact-kNN kernel. All return the same exact top-k; they differ in
/// speed and in the instructions they need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// int8 screen with AVX512-VNNI (512-bit `vpdpbusd`), exact re-ranking.
    Int8,
    /// bf16 screen with AVX512-BF16 (`vdpbf16ps`), exact re-ranking.
    Bf16,
    /// int8 screen with AVX-VNNI (256-bit `vpdpbusd`), exact re-ranking.
    Int8Avx,
    /// int8 screen with plain AVX2 (`vpmaddubsw`, base rows in 7 bits), exact re-ranking.
    Int8Avx2,
    /// `f32` GEMM tiles (any CPU).
    Fp32,
}

impl Kernel {
    /// Every kernel, in the order [`Kernel::best`] prefers them (fastest
    /// first, as measured on a CPU that runs them all).
    pub const ALL: [Kernel; 5] = [
        Kernel::Int8,
        Kernel::Bf16,
        Kernel::Int8Avx,
        Kernel::Int8Avx2,
        Kernel::Fp32,
    ];

    /// Its name, as `TASKSPEC_KNN_KERNEL` and `taskspec_rs.knn_kernel()` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Int8 => "int8",
            Kernel::Bf16 => "bf16",
            Kernel::Int8Avx => "int8-avx",
            Kernel::Int8Avx2 => "int8-avx2",
            Kernel::Fp32 => "fp32",
        }
    }

    /// The instructions it needs beyond baseline x86-64.
    fn needs(self) -> &'static str {
        match self {
            Kernel::Int8 => "AVX-512F and AVX512-VNNI",
            Kernel::Bf16 => "AVX-512F and AVX512-BF16",
            Kernel::Int8Avx => "AVX2, FMA and AVX-VNNI",
            Kernel::Int8Avx2 => "AVX2 and FMA",
            Kernel::Fp32 => "nothing",
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        use crate::screen::Screen;
        match self {
            Kernel::Int8 => crate::screen::Int8::available(),
            Kernel::Bf16 => crate::screen::Bf16::available(),
            Kernel::Int8Avx => crate::screen::Int8Avx::available(),
            Kernel::Int8Avx2 => crate::screen::Int8Avx2::available(),
            Kernel::Fp32 => true,
        }
    }

    /// The kernels this CPU can run, best first (never empty: `fp32` runs anywhere).
    pub fn available_kernels() -> Vec<Kernel> {
        Kernel::ALL.into_iter().filter(|k| k.available()).collect()
    }

    /// The fastest kernel this CPU can run.
    pub fn best() -> Kernel {
        Kernel::ALL.into_iter().find(|k| k.available()).unwrap_or(Kernel::Fp32)
    }

    /// The kernel called `name` (`auto` or empty: [`Kernel::best`]; case and
    /// surrounding blanks ignored). An unknown name, or one this CPU cannot
    /// run, is an error naming `arg` (e.g. the environment variable the name
    /// came from) and the valid names.
    pub fn select(name: &str, arg: &'static str) -> Result<Kernel> {
        let key = name.trim().to_ascii_lowercase();
        if key.is_empty() || key == "auto" {
            return Ok(Kernel::best());
        }
        let runs = || {
            let names: Vec<&str> = Kernel::available_kernels().iter().map(|k| k.name()).collect();
            format!("this CPU runs: auto, {}", names.join(", "))
        };
        let Some(kernel) = Kernel::ALL.into_iter().find(|k| k.name() == key) else {
            let all: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
            return Err(Error::invalid(
                arg,
                format!(
                    "unknown kNN kernel {name:?}; valid names are auto, {} ({})",
                    all.join(", "),
                    runs()
                ),
            ));
        };
        if !kernel.available() {
            return Err(Error::invalid(
                arg,
                format!(
                    "kNN kernel {:?} needs {}, which this CPU lacks ({})",
                    kernel.name(),
                    kernel.needs(),
                    runs()
                ),
            ));
        }
        Ok(kernel)
    }
}

/// Output of a kNN search: `rows x k` similarities (best first) and indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbors {
    pub k: usize,
    pub sims: Vec<f32>,
    pub idx: Vec<i64>,
}

/// Inverse Euclidean norms of the rows of `m`.
///
/// Norms are accumulated in `f64`. A row containing NaN/inf, a row of zero
/// norm (cosine is undefined for it) or a row whose norm overflows `f32` is
/// an error naming `arg` and the row.
pub fn inverse_norms(pool: &ThreadPool, m: MatRef<'_>, arg: &'static str) -> Result<Vec<f32>> {
    let d = m.cols();
    let mut out = vec![0f32; m.rows()];
    pool.install(|| {
        out.par_chunks_mut(4096).enumerate().try_for_each(|(c, chunk)| {
            for (o, slot) in chunk.iter_mut().enumerate() {
                let i = c * 4096 + o;
                let row = &m.data()[i * d..(i + 1) * d];
                let mut s = 0f64;
                for &v in row {
                    let v = v as f64;
                    s += v * v;
                }
                if !s.is_finite() {
                    return Err(Error::invalid(
                        arg,
                        format!("row {i} contains NaN or inf; clean the input (e.g. numpy.nan_to_num) or drop the row"),
                    ));
                }
                let norm = s.sqrt();
                if norm == 0.0 {
                    return Err(Error::invalid(
                        arg,
                        format!("row {i} has zero norm, so its cosine similarity is undefined; drop zero vectors before calling"),
                    ));
                }
                if norm > f32::MAX as f64 / 4.0 || !((1.0 / norm) as f32).is_normal() {
                    return Err(Error::invalid(
                        arg,
                        format!("row {i} has norm {norm:e}, outside float32 range; rescale the input"),
                    ));
                }
                *slot = (1.0 / norm) as f32;
            }
            Ok(())
        })
    })?;
    Ok(out)
}

/// Insert `(s, j)` into the sorted (descending) top-k arrays if it beats the
/// current k-th entry. Equal similarities keep the earlier (lower) index first.
#[inline]
fn push_topk(sims: &mut [f32], idx: &mut [i64], s: f32, j: i64) {
    let k = sims.len();
    if s <= sims[k - 1] || s.is_nan() {
        return;
    }
    let mut pos = k - 1;
    while pos > 0 && sims[pos - 1] < s {
        sims[pos] = sims[pos - 1];
        idx[pos] = idx[pos - 1];
        pos -= 1;
    }
    sims[pos] = s;
    idx[pos] = j;
}

/// A checked exact kNN problem: the `k` nearest rows of `base` by cosine
/// similarity (plus an optional per-base-row `bias`) for the rows of `queries`.
///
/// [`Search::new`] checks the invariants the kernels rely on once; [`Search::run`]
/// then searches any block of query rows.
#[derive(Clone, Copy)]
pub struct Search<'a> {
    pub(crate) queries: MatRef<'a>,
    pub(crate) q_inv: &'a [f32],
    pub(crate) base: MatRef<'a>,
    pub(crate) b_inv: &'a [f32],
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) k: usize,
    pub(crate) kernel: Kernel,
}

impl<'a> Search<'a> {
    /// * `q_inv`, `b_inv`: inverse row norms from [`inverse_norms`].
    /// * `bias`: optional per-base-row score added to the cosine similarity
    ///   (e.g. `-r(x)/2` turns the ranking into CSLS); `None` for plain cosine.
    /// * `k`: neighbours per query row, `1..=base.rows()`.
    ///
    /// It runs the CPU's best kernel ([`Kernel::best`]); see [`Search::with_kernel`].
    pub fn new(
        queries: MatRef<'a>,
        q_inv: &'a [f32],
        base: MatRef<'a>,
        b_inv: &'a [f32],
        bias: Option<&'a [f32]>,
        k: usize,
    ) -> Result<Self> {
        let (n, m, d) = (queries.rows(), base.rows(), queries.cols());
        if base.cols() != d {
            return Err(Error::invalid(
                "base",
                format!("has {} columns but queries have {d}", base.cols()),
            ));
        }
        if k == 0 || k > m {
            return Err(Error::invalid(
                "k",
                format!("must be in 1..={m} (base has {m} rows), got {k}"),
            ));
        }
        if n.checked_mul(k).is_none_or(|c| c > isize::MAX as usize / 8) {
            return Err(Error::invalid(
                "k",
                format!("{n} x {k} neighbours do not fit in memory"),
            ));
        }
        if q_inv.len() != n || b_inv.len() != m {
            return Err(Error::invalid(
                "norms",
                "inverse norm counts disagree with the matrix shapes",
            ));
        }
        // Anything else (NaN, zero) would leave rows without neighbours.
        if let Some(v) = q_inv.iter().chain(b_inv).find(|v| !(v.is_normal() && **v > 0.0)) {
            return Err(Error::invalid(
                "norms",
                format!("inverse norm {v} is not a positive normal number"),
            ));
        }
        if let Some(b) = bias {
            if b.len() != m {
                return Err(Error::invalid(
                    "bias",
                    format!("has {} entries but base has {m} rows", b.len()),
                ));
            }
            if let Some(j) = b.iter().position(|v| !v.is_finite()) {
                return Err(Error::invalid("bias", format!("entry {j} is not finite")));
            }
        }
        Ok(Search {
            queries,
            q_inv,
            base,
            b_inv,
            bias,
            k,
            kernel: Kernel::best(),
        })
    }

    /// The same search run by `kernel` (an error if this CPU cannot run it).
    /// A screen needs base indices that fit `u32`, and the int8 screens rows
    /// whose integer sums fit `i32` (at most 133144 components; 268401 for
    /// `int8-avx2`): beyond that the search silently runs the `fp32` kernel
    /// (same answer).
    pub fn with_kernel(self, kernel: Kernel) -> Result<Self> {
        if !kernel.available() {
            return Err(Error::invalid(
                "kernel",
                format!(
                    "kNN kernel {:?} needs {}, which this CPU lacks",
                    kernel.name(),
                    kernel.needs()
                ),
            ));
        }
        Ok(Search { kernel, ..self })
    }

    /// The kernel this search runs.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Search query rows `rows` into `sims`, `idx` (`rows.len() * k` each):
    /// best first, ties by lower index.
    pub fn run(&self, pool: &ThreadPool, rows: Range<usize>, sims: &mut [f32], idx: &mut [i64]) -> Result<()> {
        check_block(
            &rows,
            self.queries.rows(),
            self.k,
            &[("sims", sims.len()), ("idx", idx.len())],
        )?;
        if rows.is_empty() {
            return Ok(());
        }
        let block = self.rows(rows.start, rows.end);
        block.run_kernel(pool, sims, idx);
        Ok(())
    }

    /// Run this (checked) search with its kernel, or with `fp32` where the
    /// kernel's screen does not cover the shape.
    pub(crate) fn run_kernel(&self, pool: &ThreadPool, sims: &mut [f32], idx: &mut [i64]) {
        use crate::screen::{knn_block_screened, Bf16, Int8, Int8Avx, Int8Avx2, Screen};
        fn covers<S: Screen>(s: &Search<'_>) -> bool {
            s.queries.cols() <= S::MAX_DIM && s.base.rows() <= u32::MAX as usize
        }
        match self.kernel {
            Kernel::Int8 if covers::<Int8>(self) => knn_block_screened::<Int8>(pool, self, sims, idx),
            Kernel::Bf16 if covers::<Bf16>(self) => knn_block_screened::<Bf16>(pool, self, sims, idx),
            Kernel::Int8Avx if covers::<Int8Avx>(self) => knn_block_screened::<Int8Avx>(pool, self, sims, idx),
            Kernel::Int8Avx2 if covers::<Int8Avx2>(self) => knn_block_screened::<Int8Avx2>(pool, self, sims, idx),
            _ => knn_block_fp32(pool, self, sims, idx),
        }
    }

    /// The same search for query rows `start..end` (in range).
    pub(crate) fn rows(&self, start: usize, end: usize) -> Search<'a> {
        Search {
            queries: self.queries.slice_rows(start, end),
            q_inv: &self.q_inv[start..end],
            ..*self
        }
    }
}

/// `k` nearest rows of `base` by cosine similarity for every row of `queries`
/// (see [`Search::new`] for the arguments): `sims`, `idx` are
/// `queries.rows() * k` outputs, best first, ties by lower index.
#[allow(clippy::too_many_arguments)]
pub fn knn_block(
    pool: &ThreadPool,
    queries: MatRef<'_>,
    q_inv: &[f32],
    base: MatRef<'_>,
    b_inv: &[f32],
    bias: Option<&[f32]>,
    k: usize,
    sims: &mut [f32],
    idx: &mut [i64],
) -> Result<()> {
    Search::new(queries, q_inv, base, b_inv, bias, k)?.run(pool, 0..queries.rows(), sims, idx)
}

/// The `f32` GEMM kernel of [`Search::run`] (arguments already checked).
pub(crate) fn knn_block_fp32(pool: &ThreadPool, search: &Search<'_>, sims: &mut [f32], idx: &mut [i64]) {
    let Search {
        queries,
        q_inv,
        base,
        b_inv,
        bias,
        k,
        ..
    } = *search;
    let n = queries.rows();
    let m = base.rows();
    let d = queries.cols();
    let threads = pool.current_num_threads().max(1);
    let qb = n.div_ceil(threads * 4).clamp(16, QUERY_BLOCK);

    pool.install(|| {
        sims.par_chunks_mut(qb * k)
            .zip(idx.par_chunks_mut(qb * k))
            .enumerate()
            .for_each(|(c, (s_out, i_out))| {
                let q0 = c * qb;
                let rows = s_out.len() / k;
                // Normalised copy of this query block.
                let mut qn = vec![0f32; rows * d];
                for r in 0..rows {
                    let inv = q_inv[q0 + r];
                    for (dst, &src) in qn[r * d..(r + 1) * d].iter_mut().zip(queries.row(q0 + r)) {
                        *dst = src * inv;
                    }
                }
                s_out.fill(f32::NEG_INFINITY);
                i_out.fill(-1);
                let mut tile = vec![0f32; rows * BASE_BLOCK];
                // Normalised copy of the current base block (cache-resident, so the
                // tile holds cosines directly and needs no scaling pass).
                let mut bn = vec![0f32; BASE_BLOCK * d];
                let mut b0 = 0;
                while b0 < m {
                    let bb = BASE_BLOCK.min(m - b0);
                    for j in 0..bb {
                        let inv = b_inv[b0 + j];
                        for (dst, &src) in bn[j * d..(j + 1) * d].iter_mut().zip(base.row(b0 + j)) {
                            *dst = src * inv;
                        }
                    }
                    // tile[r, j] = qn[r, :] . bn[j, :]
                    debug_assert!(bb <= BASE_BLOCK && qn.len() == rows * d);
                    debug_assert!(tile.len() >= rows * bb && bn.len() >= bb * d);
                    // SAFETY: gemm reads and writes through raw pointers with the given
                    // strides, so every element it touches must lie inside its buffer:
                    // * dst `tile`: rows x bb, column stride 1, row stride bb, so the
                    //   last element is (rows - 1) * bb + bb - 1 < rows * bb <= tile.len()
                    //   (tile holds rows * BASE_BLOCK and bb <= BASE_BLOCK);
                    // * lhs `qn`: rows x d, column stride 1, row stride d, inside
                    //   qn.len() = rows * d;
                    // * rhs `bn`: d x bb, column stride d (column j is base row j),
                    //   row stride 1, so the last element is (bb - 1) * d + d - 1 <
                    //   bb * d <= bn.len() = BASE_BLOCK * d.
                    // The three buffers are distinct Vecs (no aliasing); read_dst is
                    // false, so tile's old contents are never read; Parallelism::None
                    // keeps the call on this thread while the borrows are live.
                    unsafe {
                        gemm::gemm(
                            rows,
                            bb,
                            d,
                            tile.as_mut_ptr(),
                            1,
                            bb as isize,
                            false,
                            qn.as_ptr(),
                            1,
                            d as isize,
                            bn.as_ptr(),
                            d as isize,
                            1,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                    for r in 0..rows {
                        let trow = &mut tile[r * bb..(r + 1) * bb];
                        if let Some(bias) = bias {
                            for (t, &c) in trow.iter_mut().zip(&bias[b0..b0 + bb]) {
                                *t += c;
                            }
                        }
                        let srow = &mut s_out[r * k..(r + 1) * k];
                        let irow = &mut i_out[r * k..(r + 1) * k];
                        let mut thr = srow[k - 1];
                        // Branch-free test of 16 values at a time; insert only when one beats the k-th.
                        for (c16, chunk) in trow.chunks(16).enumerate() {
                            if chunk.iter().fold(false, |any, &s| any | (s > thr)) {
                                for (o, &s) in chunk.iter().enumerate() {
                                    if s > thr {
                                        push_topk(srow, irow, s, (b0 + c16 * 16 + o) as i64);
                                        thr = srow[k - 1];
                                    }
                                }
                            }
                        }
                    }
                    b0 += bb;
                }
            });
    });
}

/// Convenience: full search over all rows (used by tests and Rust callers).
pub fn knn(pool: &ThreadPool, queries: MatRef<'_>, base: MatRef<'_>, k: usize) -> Result<Neighbors> {
    let q_inv = inverse_norms(pool, queries, "queries")?;
    let b_inv = inverse_norms(pool, base, "base")?;
    let search = Search::new(queries, &q_inv, base, &b_inv, None, k)?;
    let n = queries.rows();
    let mut sims = vec![0f32; n * k];
    let mut idx = vec![0i64; n * k];
    search.run(pool, 0..n, &mut sims, &mut idx)?;
    Ok(Neighbors { k, sims, idx })
}
