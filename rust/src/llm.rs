//! Locally linear mapping: per-word constrained least squares (Gram solves)
//! and the weighted combination of task-specific source vectors.

use std::ops::Range;

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::error::{Error, Result};
use crate::matrix::{check_block, MatRef};

/// Rows per parallel work item.
const CHUNK: usize = 64;

/// Most neighbours per row of an LLM solve. Each row solves a dense `k x k`
/// system (`k^3 / 3` flops, `8 k^2` bytes of scratch per thread), so a larger
/// `k` is a mistake that would otherwise exhaust memory or run for days.
pub const MAX_K: usize = 4096;

/// Check every neighbour index of rows `first..` (the rows of `nbrs`) lies in `0..n_source`.
fn check_neighbors(nbrs: MatRef<'_, i64>, first: usize, n_source: usize) -> Result<()> {
    if let Some((p, &v)) = nbrs
        .data()
        .iter()
        .enumerate()
        .find(|(_, &v)| v < 0 || v as u64 >= n_source as u64)
    {
        let (i, j) = (first + p / nbrs.cols(), p % nbrs.cols());
        return Err(Error::invalid(
            "neighbors",
            format!("entry ({i}, {j}) is {v}, outside the source vocabulary 0..{n_source}"),
        ));
    }
    Ok(())
}

/// Solve the symmetric positive (semi)definite system `a x = b` in place
/// (`a` is `k x k`, row-major) by Gaussian elimination with partial pivoting.
/// Returns `false` when the matrix is numerically singular.
fn solve_in_place(a: &mut [f64], b: &mut [f64], k: usize) -> bool {
    let scale = (0..k).map(|i| a[i * k + i].abs()).fold(0.0, f64::max);
    let tol = scale * 1e-13 * k as f64;
    for col in 0..k {
        let (piv, pmax) =
            (col..k)
                .map(|r| (r, a[r * k + col].abs()))
                .fold((col, -1.0), |acc, x| if x.1 > acc.1 { x } else { acc });
        if pmax <= tol || pmax.is_nan() || pmax == 0.0 {
            return false;
        }
        if piv != col {
            for c in 0..k {
                a.swap(piv * k + c, col * k + c);
            }
            b.swap(piv, col);
        }
        let p = a[col * k + col];
        for r in col + 1..k {
            let f = a[r * k + col] / p;
            if f != 0.0 {
                for c in col..k {
                    a[r * k + c] -= f * a[col * k + c];
                }
                b[r] -= f * b[col];
            }
        }
    }
    for col in (0..k).rev() {
        let mut s = b[col];
        for c in col + 1..k {
            s -= a[col * k + c] * b[c];
        }
        b[col] = s / a[col * k + col];
    }
    true
}

/// Reconstruction weights of rows `rows` of `y` from their neighbours in `x`.
///
/// For row `i` with neighbours `j = nbrs[i, :]`: `C_jl = (y - x_j).(y - x_l)`
/// accumulated in `f64`, `C += r I` with `r = reg * trace(C)` (or `reg` when
/// the trace is 0), solve `C w = 1`, then `w /= sum(w)`. `nbrs` has one row
/// per row of `y`; `out` holds `rows.len() * k` weights.
pub fn llm_weights_block(
    pool: &ThreadPool,
    y: MatRef<'_>,
    x: MatRef<'_>,
    nbrs: MatRef<'_, i64>,
    reg: f64,
    rows: Range<usize>,
    out: &mut [f32],
) -> Result<()> {
    let (n, d, k) = (y.rows(), y.cols(), nbrs.cols());
    if x.cols() != d {
        return Err(Error::invalid(
            "x_gen",
            format!("has {} columns but y_gen has {d}", x.cols()),
        ));
    }
    if nbrs.rows() != n || k == 0 {
        return Err(Error::invalid(
            "neighbors",
            format!("is {} x {k}, must be {n} x k with k >= 1", nbrs.rows()),
        ));
    }
    if k > MAX_K {
        return Err(Error::invalid(
            "neighbors",
            format!(
                "{k} neighbours per row: each row solves a k x k system, so k must be at most {MAX_K}; use fewer neighbours"
            ),
        ));
    }
    check_block(&rows, n, k, &[("weights", out.len())])?;
    let first = rows.start;
    let (y, nbrs) = (y.slice_rows(first, rows.end), nbrs.slice_rows(first, rows.end));
    check_neighbors(nbrs, first, x.rows())?;
    let nbrs = nbrs.data();
    // Per-thread scratch: the k x d differences and the k x k Gram matrix. `k`
    // comes from the caller's neighbour array, so size them with checked
    // arithmetic and allocate fallibly (an error, not an abort).
    let too_many = |what: &str| {
        Error::invalid(
            "neighbors",
            format!("{k} neighbours per row need a {what} that does not fit in memory; use fewer neighbours"),
        )
    };
    let zd = k.checked_mul(d).ok_or_else(|| too_many("k x d scratch matrix"))?;
    let kk = k.checked_mul(k).ok_or_else(|| too_many("k x k Gram matrix"))?;
    let scratch = |n: usize, what: &str| -> Result<Vec<f64>> {
        let mut v = Vec::new();
        v.try_reserve_exact(n).map_err(|_| too_many(what))?;
        v.resize(n, 0.0);
        Ok(v)
    };
    pool.install(|| {
        out.par_chunks_mut(CHUNK * k).enumerate().try_for_each(|(c, w_out)| {
            let mut z = scratch(zd, "k x d scratch matrix")?;
            let mut g = scratch(kk, "k x k Gram matrix")?;
            let mut w = vec![0f64; k];
            for r in 0..w_out.len() / k {
                let i = c * CHUNK + r;
                let yi = y.row(i);
                for j in 0..k {
                    let xj = x.row(nbrs[i * k + j] as usize);
                    for ((zz, &a), &b) in z[j * d..(j + 1) * d].iter_mut().zip(yi).zip(xj) {
                        *zz = a as f64 - b as f64;
                    }
                }
                let mut trace = 0.0;
                for j in 0..k {
                    for l in 0..=j {
                        let v: f64 = z[j * d..(j + 1) * d].iter().zip(&z[l * d..(l + 1) * d]).map(|(a, b)| a * b).sum();
                        g[j * k + l] = v;
                        g[l * k + j] = v;
                    }
                    trace += g[j * k + j];
                }
                let ridge = if trace > 0.0 { reg * trace } else { reg };
                for j in 0..k {
                    g[j * k + j] += ridge;
                }
                w.fill(1.0);
                let row = first + i;
                if !solve_in_place(&mut g, &mut w, k) {
                    return Err(Error::Numerical(format!(
                        "the Gram matrix of row {row} is singular (its neighbours are affinely dependent or equal to it); use reg > 0"
                    )));
                }
                let s: f64 = w.iter().sum();
                if !s.is_finite() || s.abs() < 1e-300 {
                    return Err(Error::Numerical(format!("the weights of row {row} do not sum to a usable value ({s}); use a larger reg")));
                }
                for (o, &v) in w_out[r * k..(r + 1) * k].iter_mut().zip(&w) {
                    *o = (v / s) as f32;
                }
            }
            Ok(())
        })
    })
}

/// `out[i] = sum_j weights[i, j] * x_spec[nbrs[i, j]]` for rows `rows` of
/// `nbrs`, accumulated in `f64`; `weights` and `out` hold those rows.
pub fn combine_block(
    pool: &ThreadPool,
    x_spec: MatRef<'_>,
    nbrs: MatRef<'_, i64>,
    weights: &[f32],
    rows: Range<usize>,
    out: &mut [f32],
) -> Result<()> {
    let (e, k) = (x_spec.cols(), nbrs.cols());
    check_block(&rows, nbrs.rows(), k, &[("weights", weights.len())])?;
    check_block(&rows, nbrs.rows(), e, &[("out", out.len())])?;
    let nbrs = nbrs.slice_rows(rows.start, rows.end);
    check_neighbors(nbrs, rows.start, x_spec.rows())?;
    let nbrs = nbrs.data();
    if e == 0 {
        return Ok(());
    }
    pool.install(|| {
        out.par_chunks_mut(CHUNK * e).enumerate().for_each(|(c, o)| {
            let mut acc = vec![0f64; e];
            for r in 0..o.len() / e {
                let i = c * CHUNK + r;
                acc.fill(0.0);
                for j in 0..k {
                    let w = weights[i * k + j] as f64;
                    for (a, &v) in acc.iter_mut().zip(x_spec.row(nbrs[i * k + j] as usize)) {
                        *a += w * v as f64;
                    }
                }
                for (dst, &a) in o[r * e..(r + 1) * e].iter_mut().zip(&acc) {
                    *dst = a as f32;
                }
            }
        });
    });
    Ok(())
}
