//! Core tests: blocked kNN against a naive scan, LLM weights against the definition.
#![allow(clippy::needless_range_loop)]

mod parsers;

use proptest::prelude::*;

use crate::knn::{inverse_norms, knn, knn_block, Kernel, Search};
use crate::llm::{combine_block, llm_weights_block};
use crate::matrix::MatRef;
use crate::pool::{thread_pool, MAX_THREADS};
use crate::Error;

/// Deterministic clustered data: `n` rows around `c` centres.
fn clustered(n: usize, d: usize, c: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 / (1u64 << 53) as f64) as f32 - 0.5
    };
    let centres: Vec<f32> = (0..c * d).map(|_| next() * 4.0).collect();
    let mut out = Vec::with_capacity(n * d);
    for i in 0..n {
        let ci = i % c;
        for j in 0..d {
            out.push(centres[ci * d + j] + next());
        }
    }
    out
}

/// Every base row of every query, scored in f64 (cosine plus `bias`), best first, ties by lower index.
/// With `self_offset = Some(o)`, query row `i` is base row `o + i` and is left out of its own list.
fn naive_ranked(
    q: &[f32],
    b: &[f32],
    d: usize,
    self_offset: Option<usize>,
    bias: Option<&[f32]>,
) -> Vec<Vec<(f64, i64)>> {
    let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    q.chunks(d)
        .enumerate()
        .map(|(i, qr)| {
            let mut all: Vec<(f64, i64)> = b
                .chunks(d)
                .enumerate()
                .filter(|(j, _)| self_offset.is_none_or(|o| *j != o + i))
                .map(|(j, br)| {
                    let dot: f64 = qr.iter().zip(br).map(|(&x, &y)| x as f64 * y as f64).sum();
                    (
                        dot / norm(qr) / norm(br) + bias.map_or(0.0, |bb| bb[j] as f64),
                        j as i64,
                    )
                })
                .collect();
            all.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            all
        })
        .collect()
}

fn naive(q: &[f32], b: &[f32], d: usize, k: usize) -> Vec<Vec<(f64, i64)>> {
    let mut all = naive_ranked(q, b, d, None, None);
    all.iter_mut().for_each(|row| row.truncate(k));
    all
}

/// What the Python layer does to leave a word out of its own list: from a
/// search of `k1 = k + 1`, drop query row `i`'s own index `offset + i` (the
/// last neighbour when it is not among them).
fn drop_self(s: &[f32], ix: &[i64], k1: usize, offset: usize) -> (Vec<f32>, Vec<i64>) {
    let (mut so, mut io) = (Vec::new(), Vec::new());
    for (i, (sr, ir)) in s.chunks(k1).zip(ix.chunks(k1)).enumerate() {
        let own = ir.iter().position(|&j| j == (offset + i) as i64).unwrap_or(k1 - 1);
        for t in (0..k1).filter(|&t| t != own) {
            so.push(sr[t]);
            io.push(ir[t]);
        }
    }
    (so, io)
}

fn check_against_naive(n: usize, m: usize, d: usize, k: usize, threads: usize) {
    let pool = thread_pool(Some(threads)).unwrap();
    let b = clustered(m, d, 7, 1);
    let q = clustered(n, d, 5, 2);
    let res = knn(
        &pool,
        MatRef::new(&q, n, d, "q").unwrap(),
        MatRef::new(&b, m, d, "b").unwrap(),
        k,
    )
    .unwrap();
    let want = naive(&q, &b, d, k);
    for i in 0..n {
        for j in 0..k {
            let (ws, wi) = want[i][j];
            let (gs, gi) = (res.sims[i * k + j] as f64, res.idx[i * k + j]);
            assert!((ws - gs).abs() < 1e-5, "row {i} rank {j}: sim {gs} vs {ws}");
            // Indices agree unless the two candidates tie within float32 precision.
            if gi != wi {
                let alt = want[i]
                    .iter()
                    .find(|p| p.1 == gi)
                    .expect("returned index not among the true top-k");
                assert!((alt.0 - ws).abs() < 1e-5, "row {i}: index {gi} vs {wi}");
            }
        }
    }
}

#[test]
fn knn_matches_naive_multi_block() {
    // More than one base tile (512) and one query block.
    check_against_naive(300, 1300, 24, 10, 2);
}

#[test]
fn knn_threads_agree() {
    let b = clustered(900, 20, 9, 3);
    let q = clustered(200, 20, 4, 4);
    let run = |t| {
        let pool = thread_pool(Some(t)).unwrap();
        knn(
            &pool,
            MatRef::new(&q, 200, 20, "q").unwrap(),
            MatRef::new(&b, 900, 20, "b").unwrap(),
            7,
        )
        .unwrap()
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn knn_ties_prefer_lower_index() {
    let pool = thread_pool(Some(1)).unwrap();
    // Base rows 0, 2 and 3 are the same direction.
    let b = [1.0f32, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 0.0];
    let q = [1.0f32, 0.0];
    let r = knn(
        &pool,
        MatRef::new(&q, 1, 2, "q").unwrap(),
        MatRef::new(&b, 4, 2, "b").unwrap(),
        3,
    )
    .unwrap();
    assert_eq!(r.idx, vec![0, 2, 3]);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let pool = thread_pool(Some(1)).unwrap();
    let z = [0.0f32, 0.0, 1.0, 1.0];
    let err = inverse_norms(&pool, MatRef::new(&z, 2, 2, "base").unwrap(), "base").unwrap_err();
    assert!(matches!(err, Error::InvalidInput { arg: "base", .. }), "{err}");
    let nan = [1.0f32, f32::NAN];
    assert!(inverse_norms(&pool, MatRef::new(&nan, 1, 2, "x").unwrap(), "x").is_err());
    assert!(MatRef::new(&nan, 2, 2, "x").is_err());
    let b = [1.0f32, 0.0, 0.0, 1.0];
    let (bi, qi) = ([1.0f32, 1.0], [1.0f32]);
    let (mut s, mut ix) = (vec![0.0; 3], vec![0; 3]);
    let (q, bm) = (
        MatRef::new(&b[..2], 1, 2, "q").unwrap(),
        MatRef::new(&b, 2, 2, "b").unwrap(),
    );
    let err = knn_block(&pool, q, &qi, bm, &bi, None, 3, &mut s, &mut ix);
    assert!(matches!(err, Err(Error::InvalidInput { arg: "k", .. })));
    // Inverse norms that are not those of real rows, and outputs of the wrong size.
    let err = knn_block(&pool, q, &[f32::NAN], bm, &bi, None, 1, &mut s[..1], &mut ix[..1]);
    assert!(matches!(err, Err(Error::InvalidInput { arg: "norms", .. })));
    let search = Search::new(q, &qi, bm, &bi, None, 2).unwrap();
    let err = search.run(&pool, 0..1, &mut s, &mut ix[..2]);
    assert!(matches!(err, Err(Error::InvalidInput { arg: "sims", .. })));
    let err = search.run(&pool, 0..2, &mut s[..2], &mut ix[..2]);
    assert!(matches!(err, Err(Error::InvalidInput { arg: "rows", .. })));
    let mut w = vec![0.0; 1];
    let y = MatRef::new(&b[..2], 1, 2, "y").unwrap();
    let err = llm_weights_block(&pool, y, bm, MatRef::new(&[5], 1, 1, "n").unwrap(), 1e-3, 0..1, &mut w);
    assert!(matches!(err, Err(Error::InvalidInput { arg: "neighbors", .. })));
    // Neighbour rows must match y row for row.
    let two = MatRef::new(&[0i64, 1], 2, 1, "n").unwrap();
    let err = llm_weights_block(&pool, y, bm, two, 1e-3, 0..1, &mut w);
    assert!(matches!(err, Err(Error::InvalidInput { arg: "neighbors", .. })));
    let mut out = vec![0.0; 2];
    let err = combine_block(&pool, bm, two, &w, 1..3, &mut out);
    assert!(matches!(err, Err(Error::InvalidInput { arg: "rows", .. })));
    // More neighbours per row than an LLM solve takes: an error before any scratch is sized.
    let many = vec![0i64; crate::llm::MAX_K + 1];
    let mut w = vec![0.0; many.len()];
    let nb = MatRef::new(&many, 1, many.len(), "n").unwrap();
    let err = llm_weights_block(&pool, y, bm, nb, 1e-3, 0..1, &mut w).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { arg: "neighbors", .. }), "{err}");
    assert!(thread_pool(Some(0)).is_err());
    // An absurd pool size is refused before any thread starts.
    let err = thread_pool(Some(MAX_THREADS + 1)).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { arg: "num_threads", .. }), "{err}");
}

#[test]
fn singular_gram_without_reg_is_a_numerical_error() {
    let pool = thread_pool(Some(1)).unwrap();
    // k = 3 neighbours in 2-D: rank-deficient Gram matrix.
    let x = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
    let y = [0.5f32, 0.5];
    let (y, x) = (MatRef::new(&y, 1, 2, "y").unwrap(), MatRef::new(&x, 3, 2, "x").unwrap());
    let nb = MatRef::new(&[0i64, 1, 2], 1, 3, "n").unwrap();
    let mut w = vec![0.0; 3];
    let err = llm_weights_block(&pool, y, x, nb, 0.0, 0..1, &mut w);
    assert!(matches!(err, Err(Error::Numerical(_))), "{err:?}");
    // With the default ridge it is solvable and sums to one.
    llm_weights_block(&pool, y, x, nb, 1e-3, 0..1, &mut w).unwrap();
    assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn y_equal_to_a_neighbour_gets_its_weight() {
    let pool = thread_pool(Some(1)).unwrap();
    let x = [1.0f32, 0.0, 0.0, 1.0];
    let y = [1.0f32, 0.0];
    let mut w = vec![0.0; 2];
    let nb = MatRef::new(&[0i64, 1], 1, 2, "n").unwrap();
    llm_weights_block(
        &pool,
        MatRef::new(&y, 1, 2, "y").unwrap(),
        MatRef::new(&x, 2, 2, "x").unwrap(),
        nb,
        1e-3,
        0..1,
        &mut w,
    )
    .unwrap();
    assert!(w[0] > 0.99 && (w[0] + w[1] - 1.0).abs() < 1e-6, "{w:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn blocked_topk_equals_naive(n in 1usize..40, m in 2usize..1200, d in 1usize..12, k in 1usize..8, seed in 0u64..1000) {
        let k = k.min(m);
        let pool = thread_pool(Some(2)).unwrap();
        let b = clustered(m, d, 3, seed);
        let q = clustered(n, d, 2, seed + 7);
        let r = knn(&pool, MatRef::new(&q, n, d, "q").unwrap(), MatRef::new(&b, m, d, "b").unwrap(), k).unwrap();
        let want = naive(&q, &b, d, k);
        for i in 0..n {
            for j in 0..k {
                prop_assert!((want[i][j].0 - r.sims[i * k + j] as f64).abs() < 1e-5);
            }
            // Best first.
            for j in 1..k {
                prop_assert!(r.sims[i * k + j - 1] >= r.sims[i * k + j]);
            }
        }
    }

    #[test]
    fn weights_sum_to_one_and_reconstruct(n in 1usize..30, k in 1usize..20, d in 1usize..10, seed in 0u64..1000) {
        let pool = thread_pool(Some(2)).unwrap();
        let m = 40;
        let x = clustered(m, d, 4, seed);
        let y = clustered(n, d, 3, seed + 1);
        let nbrs: Vec<i64> = (0..n * k).map(|p| ((p * 7 + seed as usize) % m) as i64).collect();
        let nb = MatRef::new(&nbrs, n, k, "n").unwrap();
        let mut w = vec![0f32; n * k];
        llm_weights_block(&pool, MatRef::new(&y, n, d, "y").unwrap(), MatRef::new(&x, m, d, "x").unwrap(), nb, 1e-3, 0..n, &mut w).unwrap();
        for i in 0..n {
            let s: f32 = w[i * k..(i + 1) * k].iter().sum();
            prop_assert!((s - 1.0).abs() < 1e-4, "row {} sums to {}", i, s);
        }
        // combine with x_spec = x_gen reproduces the weighted sum
        let mut out = vec![0f32; n * d];
        combine_block(&pool, MatRef::new(&x, m, d, "x").unwrap(), nb, &w, 0..n, &mut out).unwrap();
        for i in 0..n {
            for c in 0..d {
                let want: f64 = (0..k).map(|j| w[i * k + j] as f64 * x[nbrs[i * k + j] as usize * d + c] as f64).sum();
                prop_assert!((want - out[i * d + c] as f64).abs() < 1e-4);
            }
        }
    }
}

#[test]
fn bias_reorders_candidates() {
    let pool = thread_pool(Some(1)).unwrap();
    let b = [1.0f32, 0.0, 1.0, 0.2, 0.0, 1.0];
    let q = [1.0f32, 0.05];
    let base = MatRef::new(&b, 3, 2, "b").unwrap();
    let qm = MatRef::new(&q, 1, 2, "q").unwrap();
    let qi = inverse_norms(&pool, qm, "q").unwrap();
    let bi = inverse_norms(&pool, base, "b").unwrap();
    let (mut s, mut ix) = (vec![0.0; 2], vec![0; 2]);
    knn_block(&pool, qm, &qi, base, &bi, None, 2, &mut s, &mut ix).unwrap();
    assert_eq!(ix, vec![0, 1]);
    // A hub penalty on row 0 promotes row 1.
    knn_block(&pool, qm, &qi, base, &bi, Some(&[-0.5, 0.0, 0.0]), 2, &mut s, &mut ix).unwrap();
    assert_eq!(ix, vec![1, 0]);
    let err = knn_block(&pool, qm, &qi, base, &bi, Some(&[0.0]), 2, &mut s, &mut ix);
    assert!(matches!(err, Err(Error::InvalidInput { arg: "bias", .. })));
}

/// Run one kernel through [`Search::with_kernel`].
fn run_kernel(kernel: Kernel, q: &[f32], b: &[f32], d: usize, k: usize, bias: Option<&[f32]>) -> (Vec<f32>, Vec<i64>) {
    let pool = thread_pool(Some(2)).unwrap();
    let (n, m) = (q.len() / d, b.len() / d);
    let qm = MatRef::new(q, n, d, "q").unwrap();
    let bm = MatRef::new(b, m, d, "b").unwrap();
    let qi = inverse_norms(&pool, qm, "q").unwrap();
    let bi = inverse_norms(&pool, bm, "b").unwrap();
    let (mut s, mut ix) = (vec![0f32; n * k], vec![0i64; n * k]);
    let search = Search::new(qm, &qi, bm, &bi, bias, k)
        .unwrap()
        .with_kernel(kernel)
        .unwrap();
    search.run(&pool, 0..n, &mut s, &mut ix).unwrap();
    (s, ix)
}

/// The screens this CPU runs (each re-ranks exactly in f64).
fn screens() -> Vec<Kernel> {
    Kernel::available_kernels()
        .into_iter()
        .filter(|&k| k != Kernel::Fp32)
        .collect()
}

/// Every kernel this CPU runs returns the naive f64 top-k (indices may differ
/// only between candidates that tie within `tol`). With `self_offset = Some(o)`
/// query row `i` is base row `o + i`, excluded as the Python layer does it (a
/// search of `k + 1`, then [`drop_self`]), which must equal the naive list without it.
fn check_kernels(q: &[f32], b: &[f32], d: usize, k: usize, self_offset: Option<usize>, bias: Option<&[f32]>, tol: f64) {
    let n = q.len() / d;
    let want = naive_ranked(q, b, d, self_offset, bias);
    for kernel in Kernel::available_kernels() {
        // The screens re-rank in f64: they must agree to float32 output precision.
        let tol = if kernel == Kernel::Fp32 { tol } else { 1e-7 };
        let (s, ix) = match self_offset {
            None => run_kernel(kernel, q, b, d, k, bias),
            Some(o) => {
                let (s, ix) = run_kernel(kernel, q, b, d, k + 1, bias);
                drop_self(&s, &ix, k + 1, o)
            }
        };
        for i in 0..n {
            for j in 0..k {
                let (ws, wi) = want[i][j];
                let (gs, gi) = (s[i * k + j] as f64, ix[i * k + j]);
                assert!((ws - gs).abs() < tol, "{kernel:?} row {i} rank {j}: sim {gs} vs {ws}");
                if gi != wi {
                    let alt = want[i].iter().find(|p| p.1 == gi).unwrap();
                    assert!(
                        (alt.0 - ws).abs() < tol,
                        "{kernel:?} row {i} rank {j}: index {gi} ({}) vs {wi} ({ws})",
                        alt.0
                    );
                }
                assert!(self_offset.is_none_or(|o| gi != (o + i) as i64));
            }
        }
    }
}

#[test]
fn screen_matches_naive_at_embedding_width() {
    // d = 300 and an odd width; more than one query chunk.
    for d in [300, 301] {
        let b = clustered(2100, d, 40, 11);
        let q = clustered(700, d, 30, 12);
        check_kernels(&q, &b, d, 10, None, None, 1e-5);
    }
}

#[test]
fn screen_crosses_base_passes_and_narrow_rows() {
    // A pass holds 10 MiB of packed rows: at d = 2000 that is 2624 rows, so
    // 6000 base rows take three passes (the last one partial). Then narrow rows.
    for (d, m, n) in [
        (2000, 6000, 30),
        (2001, 6000, 30),
        (1, 3000, 40),
        (2, 3000, 40),
        (3, 3000, 40),
        (8, 3000, 40),
    ] {
        let b = clustered(m, d, 25, 13);
        let q = clustered(n, d, 5, 14);
        check_kernels(&q, &b, d, 12, None, None, 1e-5);
    }
}

#[test]
fn screen_handles_near_ties_and_duplicates() {
    // Every base row is within ~1e-3 of one direction: all of them fall inside
    // the screen's margin (cut by exact score as they pile up), and exact
    // duplicates must tie by index.
    let d = 64;
    let centre = clustered(1, d, 1, 15);
    let noise = clustered(2000, d, 1, 16);
    let mut b: Vec<f32> = noise
        .iter()
        .enumerate()
        .map(|(p, &e)| centre[p % d] + 1e-3 * e)
        .collect();
    let first = b[..d].to_vec();
    b[7 * d..8 * d].copy_from_slice(&first);
    b[1999 * d..2000 * d].copy_from_slice(&first);
    let q: Vec<f32> = first.clone();
    check_kernels(&q, &b, d, 20, None, None, 1e-5);
    for kernel in screens() {
        let (_, ix) = run_kernel(kernel, &q, &b, d, 3, None);
        assert_eq!(ix, vec![0, 7, 1999], "{kernel:?}");
    }
}

#[test]
fn screen_with_bias_and_exclusion() {
    let d = 48;
    let b = clustered(1500, d, 20, 17);
    let bias: Vec<f32> = (0..1500).map(|j| -0.3 * ((j * 37 % 101) as f32 / 101.0)).collect();
    check_kernels(&b, &b, d, 9, Some(0), Some(&bias), 1e-5);
    check_kernels(&b[..100 * d], &b, d, 1, None, Some(&bias), 1e-5);
}

#[test]
fn screen_threads_agree_and_large_k() {
    let d = 40;
    let b = clustered(1000, d, 9, 18);
    let q = clustered(150, d, 4, 19);
    check_kernels(&q, &b, d, 1000, None, None, 1e-5);
    let pool1 = thread_pool(Some(1)).unwrap();
    let pool2 = thread_pool(Some(2)).unwrap();
    let qm = MatRef::new(&q, 150, d, "q").unwrap();
    let bm = MatRef::new(&b, 1000, d, "b").unwrap();
    let qi = inverse_norms(&pool1, qm, "q").unwrap();
    let bi = inverse_norms(&pool1, bm, "b").unwrap();
    for kernel in screens() {
        let run = |pool: &rayon::ThreadPool| {
            let (mut s, mut ix) = (vec![0f32; 150 * 7], vec![0i64; 150 * 7]);
            let search = Search::new(qm, &qi, bm, &bi, None, 7)
                .unwrap()
                .with_kernel(kernel)
                .unwrap();
            search.run(pool, 0..150, &mut s, &mut ix).unwrap();
            (s, ix)
        };
        assert_eq!(run(&pool1), run(&pool2), "{kernel:?}");
    }
}

#[test]
fn screen_bounds_candidates_when_everything_ties() {
    // Copies of one vector (and queries equal to it): every base row passes
    // the screen. 1800 copies: the candidate list is cut to the exact top-k
    // when it overflows; 20000 copies: the block gives up on the screen and
    // finishes with the f32 kernel. Either way the answer is the first k.
    let d = 16;
    let row = clustered(1, d, 1, 20);
    let q: Vec<f32> = row.iter().cycle().take(3 * d).copied().collect();
    for m in [1800, 20000] {
        let b: Vec<f32> = row.iter().cycle().take(m * d).copied().collect();
        for kernel in Kernel::available_kernels() {
            let (s, ix) = run_kernel(kernel, &q, &b, d, 5, None);
            assert_eq!(ix, [0, 1, 2, 3, 4].repeat(3), "m={m} {kernel:?}");
            assert!(s.iter().all(|&v| (v - 1.0).abs() < 1e-6));
            // Exclusion (k + 1, then drop the row itself) among exact ties.
            let (s, ix) = run_kernel(kernel, &b[..4 * d], &b, d, 4, None);
            let (_, ix) = drop_self(&s, &ix, 4, 0);
            assert_eq!(ix, vec![1, 2, 3, 0, 2, 3, 0, 1, 3, 0, 1, 2], "m={m} {kernel:?}");
        }
    }
}

#[test]
fn exclusion_by_one_more_neighbour_in_a_later_block() {
    // Query row i is base row 100 + i (a later block of the same vocabulary):
    // searching k + 1 and dropping the row itself gives the list without it.
    let (d, m, k) = (24, 900, 6);
    let b = clustered(m, d, 12, 21);
    check_kernels(&b[100 * d..250 * d], &b, d, k, Some(100), None, 1e-5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every kernel returns the naive f64 top-k for any shape, k and bias.
    #[test]
    fn screen_equals_naive(n in 1usize..30, m in 2usize..900, d in 1usize..70, k in 1usize..12,
                           centres in 1usize..6, use_bias in any::<bool>(), seed in 0u64..1000) {
        let k = k.min(m);
        let b = clustered(m, d, centres, seed);
        let q = clustered(n, d, centres, seed + 3);
        let bias: Vec<f32> = (0..m).map(|j| -0.05 * ((j * 13 % 7) as f32)).collect();
        check_kernels(&q, &b, d, k, None, use_bias.then_some(&bias[..]), 1e-5);
    }
}

#[test]
fn kernel_names_select_and_fail_clearly() {
    let best = Kernel::best();
    assert!(best.available());
    assert_eq!(Kernel::available_kernels()[0], best);
    assert_eq!(*Kernel::available_kernels().last().unwrap(), Kernel::Fp32);
    for name in ["", "auto", " AUTO "] {
        assert_eq!(Kernel::select(name, "VAR").unwrap(), best);
    }
    for kernel in Kernel::available_kernels() {
        assert_eq!(Kernel::select(kernel.name(), "VAR").unwrap(), kernel);
        assert_eq!(Kernel::select(&kernel.name().to_uppercase(), "VAR").unwrap(), kernel);
    }
    let err = Kernel::select("int4", "TASKSPEC_KNN_KERNEL").unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidInput {
            arg: "TASKSPEC_KNN_KERNEL",
            ..
        }
    ));
    let msg = err.to_string();
    for kernel in Kernel::ALL {
        assert!(msg.contains(kernel.name()), "{msg}");
    }
    // A kernel this CPU cannot run is refused by name and by Search::with_kernel.
    let pool = thread_pool(Some(1)).unwrap();
    let b = [1.0f32, 0.0, 0.0, 1.0];
    let bm = MatRef::new(&b, 2, 2, "b").unwrap();
    let bi = inverse_norms(&pool, bm, "b").unwrap();
    let search = Search::new(bm, &bi, bm, &bi, None, 1).unwrap();
    assert_eq!(search.kernel(), best);
    for kernel in Kernel::ALL.into_iter().filter(|k| !k.available()) {
        let err = Kernel::select(kernel.name(), "VAR").unwrap_err().to_string();
        assert!(err.contains("lacks"), "{err}");
        assert!(search.with_kernel(kernel).is_err());
    }
}

/// Decode a packed row of `kernel` (as query or base) into the vector the screen computes with.
fn decode(kernel: Kernel, words: &[u32], scale: f32, query: bool, d: usize) -> Vec<f64> {
    let mut out: Vec<f64> = match kernel {
        Kernel::Bf16 => words
            .iter()
            .flat_map(|&w| [w & 0xffff, w >> 16])
            .map(|h| f32::from_bits(h << 16) as f64)
            .collect(),
        _ => words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .map(|b| if query { b as i32 - 128 } else { b as i8 as i32 } as f64)
            .collect(),
    };
    out.truncate(d);
    out.iter_mut().for_each(|v| *v *= scale as f64);
    out
}

/// Pack rows with `kernel`'s screen (`query` or base side): codes and packed words.
fn pack_rows(kernel: Kernel, rows: &[f32], d: usize, query: bool) -> Vec<(crate::screen::Code, Vec<u32>, Vec<f64>)> {
    use crate::screen::{Bf16, Int8, Int8Avx2, Screen};
    let per_word = if kernel == Kernel::Bf16 { 2 } else { 4 };
    assert!(kernel.available());
    rows.chunks(d)
        .map(|row| {
            let norm = row.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
            let unit: Vec<f64> = row.iter().map(|&x| x as f64 / norm).collect();
            let mut words = vec![0u32; d.div_ceil(per_word)];
            let mut u = Vec::new();
            // SAFETY: the kernel is available (asserted above).
            let code = unsafe {
                match (kernel, query) {
                    (Kernel::Bf16, _) => Bf16::pack_query(row, &mut u, &mut words),
                    (_, true) => Int8::pack_query(row, &mut u, &mut words),
                    (Kernel::Int8Avx2, false) => Int8Avx2::pack_base(row, &mut u, &mut words),
                    (_, false) => Int8::pack_base(row, &mut u, &mut words),
                }
            };
            (code, words, unit)
        })
        .collect()
}

#[test]
fn screen_codes_bound_the_score_error() {
    // The packed rows satisfy the module's bound |q.b - q~.b~| <= e_q + (1 + e_q) e_b
    // with the recorded residuals, and the int8 accumulator start makes the
    // unsigned-by-signed byte sum the signed integer dot product exactly.
    use crate::screen::{Bf16, Int8, Int8Avx2, Screen};
    for d in [1, 2, 3, 5, 64, 301] {
        let mut b = clustered(60, d, 3, 30);
        // A spike: one large component makes the int8 scale coarse for that row.
        b[d - 1] = 400.0;
        let q = clustered(20, d, 2, 31);
        for kernel in [Kernel::Bf16, Kernel::Int8, Kernel::Int8Avx2] {
            if !kernel.available() {
                continue;
            }
            let bound = match kernel {
                Kernel::Bf16 => Bf16::resid_bound(d),
                Kernel::Int8 => Int8::resid_bound(d),
                _ => Int8Avx2::resid_bound(d),
            };
            let qs = pack_rows(kernel, &q, d, true);
            let bs = pack_rows(kernel, &b, d, false);
            for (rows, query) in [(&qs, true), (&bs, false)] {
                for (code, words, u) in rows {
                    let approx = decode(kernel, words, code.scale, query, d);
                    let resid = u
                        .iter()
                        .zip(&approx)
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum::<f64>()
                        .sqrt();
                    assert!(
                        (resid - code.resid).abs() <= 1e-12,
                        "{kernel:?} d={d}: {resid} vs {}",
                        code.resid
                    );
                    assert!(code.resid <= bound, "{kernel:?} d={d}: {} > {bound}", code.resid);
                }
            }
            for (cq, wq, uq) in &qs {
                let aq = decode(kernel, wq, cq.scale, true, d);
                for (cb, wb, ub) in &bs {
                    let ab = decode(kernel, wb, cb.scale, false, d);
                    let exact: f64 = uq.iter().zip(ub).map(|(x, y)| x * y).sum();
                    let screened: f64 = aq.iter().zip(&ab).map(|(x, y)| x * y).sum();
                    let err = (exact - screened).abs();
                    assert!(
                        err <= cq.resid + (1.0 + cq.resid) * cb.resid + 1e-12,
                        "{kernel:?} d={d}: {err}"
                    );
                    if kernel != Kernel::Bf16 {
                        let bytes = |w: &Vec<u32>| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
                        let (qb, bb) = (bytes(wq), bytes(wb));
                        assert!(kernel == Kernel::Int8 || bb.iter().all(|&y| (y as i8).abs() <= 63));
                        let acc: i64 = qb.iter().zip(&bb).map(|(&x, &y)| x as i64 * y as i8 as i64).sum();
                        let ints: i64 = qb
                            .iter()
                            .zip(&bb)
                            .map(|(&x, &y)| (x as i64 - 128) * y as i8 as i64)
                            .sum();
                        assert_eq!(acc + cb.init as i64, ints);
                    }
                }
            }
        }
    }
}

#[test]
fn screens_handle_spiky_rows_csls_bias_and_tiny_widths() {
    // Rows with one dominant component quantise coarsely in int8 (wide
    // windows); a CSLS-like bias of either sign; widths 1..5 and 65.
    for d in [1, 2, 3, 4, 5, 65] {
        let mut b = clustered(700, d, 6, 40);
        for j in (0..700).step_by(7) {
            b[j * d + (j % d)] *= 60.0;
        }
        let q = clustered(50, d, 4, 41);
        let bias: Vec<f32> = (0..700).map(|j| 0.4 * (((j * 29) % 13) as f32 / 13.0 - 0.5)).collect();
        check_kernels(&q, &b, d, 7, None, Some(&bias), 1e-5);
        check_kernels(&q, &b, d, 1, None, None, 1e-5);
    }
}

#[test]
fn int8_at_and_beyond_its_integer_range() {
    // d = 133144: the widest int8 rows (the accumulators' start values wrap,
    // the sums stay exact), with codes of +-127 everywhere (the largest sums).
    use crate::screen::{Int8, Screen};
    let rows = |d: usize| {
        let mut b = clustered(24, d, 3, 50);
        b[..d].iter_mut().for_each(|x| *x = x.signum());
        b.copy_within(..d, d);
        let mut q = clustered(2, d, 2, 51);
        q[..d].copy_from_slice(&b[..d]);
        (q, b)
    };
    let d = Int8::MAX_DIM;
    let (q, b) = rows(d);
    check_kernels(&q, &b, d, 3, None, None, 1e-5);
    // One more: 127^2 d no longer fits i32, so an int8 search runs the f32 kernel.
    let (q, b) = rows(d + 1);
    for kernel in [Kernel::Int8, Kernel::Int8Avx].into_iter().filter(|k| k.available()) {
        let fp32 = run_kernel(Kernel::Fp32, &q, &b, d + 1, 3, None);
        assert_eq!(run_kernel(kernel, &q, &b, d + 1, 3, None), fp32);
    }
}

/// Core clock in GHz, from chains of dependent integer adds (one per cycle;
/// the fastest of 20 short runs, so a run the scheduler interrupted is ignored).
#[cfg(target_arch = "x86_64")]
fn clock_ghz() -> f64 {
    (0..20).map(|_| add_chain_ghz(20_000_000)).fold(0.0, f64::max)
}

#[cfg(target_arch = "x86_64")]
fn add_chain_ghz(n: u64) -> f64 {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    for _ in 0..n / 8 {
        // SAFETY: register arithmetic only.
        unsafe {
            std::arch::asm!(
                "add {0}, 1", "add {0}, 1", "add {0}, 1", "add {0}, 1",
                "add {0}, 1", "add {0}, 1", "add {0}, 1", "add {0}, 1",
                inout(reg) x,
                options(nomem, nostack)
            )
        };
    }
    std::hint::black_box(x);
    n as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// Microkernel peak of each screen's register block with its data in L1
/// (`cargo test --release --lib microkernel_peaks -- --ignored --nocapture`):
/// prints `2 * MR * NR * d / time` as GOP/s and its share of the block's
/// roofline, `ops` per cycle times the measured clock. The `ops` assume two
/// vector multiply pipes (Zen 4/5, Ice Lake and later servers): 512-bit
/// `vpdpbusd` 2 x 64 multiply-adds per cycle, 512-bit `vdpbf16ps` and
/// 256-bit `vpdpbusd` 2 x 32, `vpmaddubsw` + `vpmaddwd` 32 per cycle.
#[test]
#[ignore]
#[cfg(target_arch = "x86_64")]
fn microkernel_peaks() {
    use crate::screen::{time_block, Bf16, Int8, Int8Avx, Int8Avx2, Screen};
    fn report<S: Screen>(name: &str, ops_per_cycle: f64, ghz: f64) {
        if !S::available() {
            println!("{name}: not available");
            return;
        }
        // d = 320: the panel (d / PER_WORD words x NR) and the query block stay in L1.
        let d = 320;
        let dp = d / S::PER_WORD;
        let reps = 20_000;
        time_block::<S>(dp, reps);
        let best = (0..30).map(|_| time_block::<S>(dp, reps)).fold(f64::INFINITY, f64::min);
        let gops = 2.0 * (S::MR * S::NR * d) as f64 / best / 1e9;
        let roof = ops_per_cycle * ghz;
        println!(
            "{name}: {}x{} block, d = {d}: {:.1} ns per block, {gops:.0} GOP/s on one core = {:.0}% of {roof:.0}",
            S::MR,
            S::NR,
            best * 1e9,
            100.0 * gops / roof
        );
    }
    let ghz = clock_ghz();
    println!("clock: {ghz:.2} GHz");
    report::<Int8>("int8", 256.0, ghz);
    report::<Bf16>("bf16", 128.0, ghz);
    report::<Int8Avx>("int8-avx", 128.0, ghz);
    report::<Int8Avx2>("int8-avx2", 64.0, ghz);
}
