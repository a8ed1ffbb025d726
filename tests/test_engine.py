"""The Rust engine against an independent float64 numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts
from hypothesis import given, settings
from hypothesis import strategies as st


def clustered(n: int, d: int, *, centres: int = 8, spread: float = 0.35, seed: int = 0) -> np.ndarray:
    """Rows around a few centres: neighbourhoods with structure, unlike pure noise."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d))
    return (c[rng.integers(0, centres, n)] + spread * rng.normal(size=(n, d))).astype(np.float32)


def ref_knn(q: np.ndarray, b: np.ndarray, k: int, exclude_self: bool = False, exclude=None):
    """Brute-force float64 cosine top-k; ``exclude[i]`` (or ``i`` with ``exclude_self``) is never returned."""
    q = q.astype(np.float64)
    b = b.astype(np.float64)
    s = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    if exclude_self:
        exclude = np.arange(len(q))
    if exclude is not None:
        rows = np.flatnonzero(np.asarray(exclude) >= 0)
        s[rows, np.asarray(exclude)[rows]] = -np.inf
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, 1), idx


def ref_weights(x: np.ndarray, y: np.ndarray, nbrs: np.ndarray, reg: float = 1e-3) -> np.ndarray:
    """Reconstruction weights of each ``y`` row from its ``nbrs`` rows of ``x`` (same order as ``ts.llm_weights``)."""
    out = np.empty(nbrs.shape)
    for i in range(len(y)):
        z = y[i].astype(np.float64) - x[nbrs[i]].astype(np.float64)
        c = z @ z.T
        tr = np.trace(c)
        c += (reg * tr if tr > 0 else reg) * np.eye(len(nbrs[i]))
        a = np.linalg.solve(c, np.ones(len(nbrs[i])))
        out[i] = a / a.sum()
    return out


def assert_knn_close(sims, idx, ref_s, ref_i):
    assert sims.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_allclose(sims, ref_s, atol=2e-6)
    # Indices agree except where two candidates tie within float32 precision.
    mismatch = idx != ref_i
    assert mismatch.mean() < 0.01
    assert np.all(np.abs(ref_s[mismatch] - sims[mismatch]) < 2e-6)


X = clustered(1500, 32, seed=1)
Y = clustered(400, 32, seed=2)
XS = np.random.default_rng(3).normal(size=(1500, 12)).astype(np.float32)


@pytest.fixture(params=ts.knn_kernels())
def kernel(request, monkeypatch):
    """Run a test with each exact-kNN kernel this CPU runs (the screens and fp32; tests/test_kernels.py tests each)."""
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", request.param)
    return ts.knn_kernel()


@pytest.mark.parametrize("k", [1, 5, 40])
def test_knn_matches_reference(k, kernel):
    assert_knn_close(*ts.knn(Y, X, k), *ref_knn(Y, X, k))


def test_knn_kernel_selection(monkeypatch):
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", "fp32")
    assert ts.knn_kernel() == "fp32"
    monkeypatch.delenv("TASKSPEC_KNN_KERNEL")
    assert ts.knn_kernel() == ts.knn_kernels()[0]


def test_kernels_agree_at_embedding_width(monkeypatch):
    """fp32 and the default kernel return the exact top-k at d=300; a screen re-ranks in float64."""
    x = clustered(6000, 300, centres=40, spread=0.6, seed=7)
    y = clustered(700, 300, centres=40, spread=0.6, seed=8)
    ref_s, ref_i = ref_knn(y, x, 10)
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", "fp32")
    s32, i32 = ts.knn(y, x, 10)
    assert_knn_close(s32, i32, ref_s, ref_i)
    monkeypatch.delenv("TASKSPEC_KNN_KERNEL")
    s, i = ts.knn(y, x, 10)
    if ts.knn_kernel() != "fp32":
        np.testing.assert_allclose(s, ref_s, atol=1e-7)
        np.testing.assert_array_equal(i, ref_i)
    else:
        assert_knn_close(s, i, ref_s, ref_i)


def test_knn_exclude_self(kernel):
    sims, idx = ts.knn(X, X, 6, exclude_self=True)
    assert not (idx == np.arange(len(X))[:, None]).any()
    assert_knn_close(sims, idx, *ref_knn(X, X, 6, exclude_self=True))


def test_knn_float64_and_fortran_order_give_same_result():
    a = ts.knn(Y, X, 7)
    b = ts.knn(np.asfortranarray(Y.astype(np.float64)), np.asfortranarray(X), 7)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)


def exclusions(n: int, m: int, nearest: np.ndarray, seed: int = 0) -> np.ndarray:
    """A per-query exclusion mixing the query's nearest base row, a random row and ``-1`` (none)."""
    rng = np.random.default_rng(seed)
    excl = rng.integers(0, m, n)
    excl[::3] = nearest[::3]
    excl[1::5] = -1
    return excl


def test_knn_general_exclusion_matches_brute_force(kernel):
    excl = exclusions(len(Y), len(X), ref_knn(Y, X, 1)[1][:, 0])
    for k in (1, 6):
        sims, idx = ts.knn(Y, X, k, exclude=excl)
        assert not (idx == excl[:, None]).any()
        assert_knn_close(sims, idx, *ref_knn(Y, X, k, exclude=excl))
    # -1 everywhere excludes nothing: the plain top-k.
    none = ts.knn(Y, X, 6, exclude=np.full(len(Y), -1))
    plain = ts.knn(Y, X, 6)
    np.testing.assert_array_equal(none[1], plain[1])
    np.testing.assert_array_equal(none[0], plain[0])
    # exclude_self is exclude=arange(n).
    a = ts.knn(X, X, 4, exclude_self=True)
    b = ts.knn(X, X, 4, exclude=np.arange(len(X)))
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


def test_thread_counts_give_identical_results(kernel):
    one = ts.LLMProjector(10, num_threads=1).fit(X, XS).project(Y)
    two = ts.LLMProjector(10, num_threads=2).fit(X, XS).project(Y)
    for name in ("y_spec", "neighbors", "weights"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))


@pytest.mark.parametrize("k", [1, 10, 48])  # 48 > dim 32: singular without the ridge
def test_llm_project_matches_reference(k, kernel):
    res = ts.LLMProjector(k).fit(X, XS).project(Y)
    assert isinstance(res, ts.Projection)
    y_spec, nbrs, w = res.y_spec, res.neighbors, res.weights
    assert nbrs.dtype == np.int64 and w.dtype == np.float32 and nbrs.shape == w.shape == (len(Y), k)
    _, ref_i = ref_knn(Y, X, k)
    assert (nbrs == ref_i).mean() > 0.99
    ref_w = ref_weights(X, Y, nbrs)
    np.testing.assert_allclose(w, ref_w, atol=5e-5, rtol=1e-3)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    ref_spec = np.einsum("nk,nke->ne", ref_w, XS[nbrs].astype(np.float64))
    np.testing.assert_allclose(y_spec, ref_spec, atol=1e-4, rtol=1e-3)
    assert y_spec.shape == (len(Y), XS.shape[1]) and y_spec.dtype == np.float32
    if k == 1:
        np.testing.assert_array_equal(y_spec, XS[nbrs[:, 0]])
    # The one-call shortcut and transform give the same y_spec.
    np.testing.assert_array_equal(ts.llm_project(X, XS, Y, k), y_spec)
    np.testing.assert_array_equal(ts.LLMProjector(k).fit(X, XS).transform(Y), y_spec)


def test_llm_project_exclude_self_tunes_on_source():
    res = ts.LLMProjector(5).fit(X, XS).project(X, exclude_self=True)
    assert not (res.neighbors == np.arange(len(X))[:, None]).any()
    assert (res.neighbors == ref_knn(X, X, 5, exclude_self=True)[1]).mean() > 0.99
    np.testing.assert_allclose(res.weights, ref_weights(X, X, res.neighbors), atol=5e-5, rtol=1e-3)
    assert np.isfinite(res.y_spec).all()
    np.testing.assert_array_equal(ts.llm_project(X, XS, X, 5, exclude_self=True), res.y_spec)


def test_projection_with_general_exclusion():
    """A per-target exclusion (not only self): the excluded source row is never used."""
    excl = exclusions(len(Y), len(X), ref_knn(Y, X, 1)[1][:, 0], seed=1)
    proj = ts.LLMProjector(5).fit(X, XS)
    res = proj.project(Y, exclude=excl)
    assert not (res.neighbors == excl[:, None]).any()
    _, ref_i = ref_knn(Y, X, 5, exclude=excl)
    assert (res.neighbors == ref_i).mean() > 0.99
    np.testing.assert_array_equal(res.neighbors, ts.knn(Y, X, 5, exclude=excl)[1])
    ref_w = ref_weights(X, Y, res.neighbors)
    np.testing.assert_allclose(res.weights, ref_w, atol=5e-5, rtol=1e-3)
    ref_spec = np.einsum("nk,nke->ne", ref_w, XS[res.neighbors].astype(np.float64))
    np.testing.assert_allclose(res.y_spec, ref_spec, atol=1e-4, rtol=1e-3)
    np.testing.assert_array_equal(proj.transform(Y, exclude=excl), res.y_spec)


def test_llm_weights_reference_and_y_equal_to_neighbour():
    nbrs = ts.knn(Y, X, 8)[1]
    np.testing.assert_allclose(ts.llm_weights(X, Y, nbrs), ref_weights(X, Y, nbrs), atol=5e-5, rtol=1e-3)
    # A target identical to a source word: regularisation keeps it solvable, weight ~1 on it.
    w = ts.llm_weights(X, X[:3], ts.knn(X[:3], X, 4)[1])
    assert np.all(w[:, 0] > 0.95) and np.isfinite(w).all()


def test_llm_weights_without_reg_singular_raises():
    x = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    with pytest.raises(ts.NumericalError, match="singular"):
        ts.llm_weights(x, np.array([[0.5, 0.5]]), np.array([[0, 1, 2]]), reg=0.0)
    assert issubclass(ts.NumericalError, RuntimeError)


def test_lp_project_matches_lstsq():
    y_spec = ts.lp_project(X, XS, Y)
    w = np.linalg.lstsq(X.astype(np.float64), XS.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(y_spec, Y.astype(np.float64) @ w, atol=1e-4, rtol=1e-3)
    np.testing.assert_array_equal(ts.LinearProjector("lstsq").fit(X, XS).transform(Y), y_spec)
    # Exact when x_spec is a linear map of x_gen.
    m = np.random.default_rng(4).normal(size=(32, 12))
    np.testing.assert_allclose(ts.lp_project(X, X @ m, Y), Y @ m, atol=1e-3, rtol=1e-3)


def test_progress_callback_reports_completion():
    seen = []
    ts.llm_project(X, XS, Y, 3, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(Y), len(Y))


def test_zero_copy_input_is_not_modified():
    x = X.copy()
    ts.llm_project(x, XS, Y, 4)
    np.testing.assert_array_equal(x, X)


def test_build_is_release():
    assert ts.build_profile() == "release"
    assert ts.__version__


# ----------------------------------------------------------------------------- bad input

BAD = [
    (lambda: ts.knn(Y[:, :5], X, 3), ValueError, "dimension"),
    (lambda: ts.knn(Y, X, 0), ValueError, "k: must be between 1 and 1500"),
    (lambda: ts.knn(Y, X, 1501), ValueError, "k: must be between"),
    (lambda: ts.knn(X, X, 1500, exclude_self=True), ValueError, "one fewer"),
    (lambda: ts.knn(Y, X, 1500, exclude=np.full(len(Y), -1)), ValueError, "k: must be between 1 and 1499"),
    (lambda: ts.knn(Y, X, 2.5), TypeError, "k: expected"),
    (lambda: ts.knn(Y, X, 3, exclude_self=True), ValueError, "exclude_self"),
    (lambda: ts.knn(Y, X, 3, exclude=np.zeros(len(Y))), TypeError, "exclude: expected an integer array"),
    (lambda: ts.knn(Y, X, 3, exclude=np.zeros(5, np.int64)), ValueError, r"exclude: expected shape \(400,\)"),
    (lambda: ts.knn(Y, X, 3, exclude=np.full(len(Y), 1500)), ValueError, r"exclude: values must lie in -1\.\.1499"),
    (lambda: ts.knn(Y, X, 3, exclude=np.full(len(Y), -2)), ValueError, "exclude: values must lie"),
    (lambda: ts.knn(X, X, 3, exclude=np.arange(len(X)), exclude_self=True), ValueError, "exclude: give either"),
    (lambda: ts.knn(Y.astype(np.int32), X, 3), TypeError, "queries: expected a floating-point"),
    (lambda: ts.knn(np.array([[1, 2], [3]], dtype=object), X, 3), TypeError, "queries"),
    (lambda: ts.knn([[1.0, 2.0], [3.0]], X, 3), ValueError, "queries"),
    (lambda: ts.knn(Y[0], X, 3), ValueError, "queries: expected a 2-D"),
    (lambda: ts.knn(np.empty((0, 32), np.float32), X, 3), ValueError, "non-empty"),
    (lambda: ts.knn(Y, X, 3, num_threads=0), ValueError, "num_threads"),
    (lambda: ts.knn(Y, X, 3, num_threads=-2), ValueError, "num_threads"),
    (lambda: ts.knn(Y, X, 3, num_threads=2.0), TypeError, "num_threads"),
    (lambda: ts.knn(Y, X, 3, backend="annoy"), ValueError, "backend: must be one of"),
    (lambda: ts.knn(Y, X, 3, metric="l2"), ValueError, "metric: must be one of"),
    (lambda: ts.knn(Y, X, 3, index={"M": 8}), ValueError, "index: HNSW parameters were given"),
    (lambda: ts.knn(Y, X, 3, device="cpu"), ValueError, "device: a torch device was given"),
    (lambda: ts.knn(Y, X, 3, metric="csls", hub_penalty=np.ones(5)), ValueError, "hub_penalty: expected 1500"),
    (lambda: ts.llm_project(X[:, :5], XS, Y), ValueError, "y_gen: has dimension 32 but x_gen has 5"),
    (lambda: ts.llm_project(X, XS[:10], Y), ValueError, "x_spec: has 10 rows"),
    (lambda: ts.llm_project(X, XS, Y, reg=-1.0), ValueError, "reg"),
    (lambda: ts.llm_project(X, XS, Y, exclude_self=True), ValueError, "exclude_self"),
    (lambda: ts.llm_project(X, XS, Y, 3, backend="annoy"), ValueError, "backend: must be one of"),
    (lambda: ts.LLMProjector(3).fit(X, XS).project(Y, exclude=np.zeros(3, np.int64)), ValueError, "exclude:"),
    (lambda: ts.LLMProjector(1500).fit(X, XS).project(X, exclude_self=True), ValueError, "one fewer"),
    (lambda: ts.llm_weights(X, Y, np.full((len(Y), 3), 1500)), ValueError, "neighbors: indices"),
    (lambda: ts.llm_weights(X, Y, np.zeros((len(Y), 3)) + 0.5), TypeError, "neighbors"),
    (lambda: ts.llm_weights(X, Y, np.zeros((3, 3), np.int64)), ValueError, "neighbors: expected shape"),
    (lambda: ts.llm_from_neighbors(X, XS, Y, np.full((len(Y), 3), -1)), ValueError, "neighbors: indices"),
    (lambda: ts.lp_project(X, XS[:7], Y), ValueError, "x_spec"),
    (lambda: ts.LinearProjector("pca"), ValueError, "kind: must be one of"),
]


@pytest.mark.parametrize("call,exc,msg", BAD)
def test_bad_input_raises_clear_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_taskspec_error_is_exported():
    assert issubclass(ts.TaskspecError, Exception)
    from taskspec_rs.errors import NumericalError, TaskspecError

    assert TaskspecError is ts.TaskspecError and NumericalError is ts.NumericalError


def test_swapped_source_and_target_are_rejected_naming_x_spec():
    """The old order ``(x_gen, y_gen, x_spec)`` puts the 400 target rows where the 1500 source rows belong."""
    nb = ts.knn(Y, X, 3)[1]
    calls = [
        lambda: ts.llm_project(X, Y, XS, 3),
        lambda: ts.LLMProjector(3).fit(X, Y),
        lambda: ts.llm_from_neighbors(X, Y, XS, nb),
        lambda: ts.lp_project(X, Y, XS),
        lambda: ts.orthogonal_project(X, Y, XS),
        lambda: ts.LinearProjector().fit(X, Y),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="x_spec: has 400 rows but x_gen has 1500"):
            call()
    # llm_weights(x_gen, y_gen, neighbors): the old order (y_gen, x_gen, ...) no longer fits the neighbours.
    with pytest.raises(ValueError, match="neighbors"):
        ts.llm_weights(Y, X, nb)


def test_transform_before_fit_raises():
    for call in (
        lambda: ts.LLMProjector(3).transform(Y),
        lambda: ts.LLMProjector(3).project(Y),
        lambda: ts.LinearProjector().transform(Y),
    ):
        with pytest.raises(ValueError, match="call fit"):
            call()


def test_huge_num_threads_rejected_quickly():
    """No pool of a million threads is attempted: every entry point checks num_threads first."""
    import time

    huge = 10**6
    calls = [
        lambda: ts.knn(Y, X, 3, num_threads=huge),
        lambda: ts.knn(Y, X, 3, num_threads=1025),
        lambda: ts.knn(Y, X, 3, metric="csls", num_threads=huge),
        lambda: ts.knn(Y, X, 3, backend="hnsw", num_threads=huge),
        lambda: ts.llm_project(X, XS, Y, 3, num_threads=huge),
        lambda: ts.LLMProjector(3, num_threads=huge),
        lambda: ts.llm_weights(X, Y, np.zeros((len(Y), 2), np.int64), num_threads=huge),
        lambda: ts.llm_from_neighbors(X, XS, Y, np.zeros((len(Y), 2), np.int64), num_threads=huge),
        lambda: ts.hub_scores(X, Y, 3, num_threads=huge),
        lambda: ts.HnswIndex(X, num_threads=huge),
    ]
    for call in calls:
        t = time.perf_counter()
        with pytest.raises(ValueError, match="num_threads: must be None or an int between 1 and 1024"):
            call()
        assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("where", ["queries", "base"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_rejected(where, value):
    q, b = Y.copy(), X.copy()
    (q if where == "queries" else b)[7, 3] = value
    with pytest.raises(ValueError, match=rf"{where}: row 7 contains NaN or inf"):
        ts.knn(q, b, 3)


@pytest.mark.parametrize("arg", ["x_gen", "y_gen", "x_spec"])
def test_non_finite_rejected_in_projection(arg):
    inputs = {"x_gen": X.copy(), "y_gen": Y.copy(), "x_spec": XS.copy()}
    inputs[arg][5, 0] = np.nan
    msg = f"{arg}: row 5 contains NaN or inf"
    with pytest.raises(ValueError, match=msg):
        ts.llm_project(inputs["x_gen"], inputs["x_spec"], inputs["y_gen"], 3)
    with pytest.raises(ValueError, match=arg):
        ts.lp_project(inputs["x_gen"], inputs["x_spec"], inputs["y_gen"])


def test_zero_vectors_rejected_with_rule():
    x = X.copy()
    x[11] = 0
    with pytest.raises(ValueError, match="x_gen: row 11 has zero norm"):
        ts.llm_project(x, XS, Y, 3)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    m=st.integers(2, 60),
    d=st.integers(1, 9),
    k=st.integers(1, 70),
    seed=st.integers(0, 10_000),
    with_exclude=st.booleans(),
)
def test_knn_any_shape_is_correct_or_rejected(n, m, d, k, seed, with_exclude):
    q = clustered(n, d, centres=3, seed=seed)
    b = clustered(m, d, centres=3, seed=seed + 1)
    excl = np.random.default_rng(seed).integers(-1, m, n) if with_exclude else None
    if k > m - with_exclude:
        with pytest.raises(ValueError, match="k:"):
            ts.knn(q, b, k, exclude=excl)
        return
    sims, idx = ts.knn(q, b, k, exclude=excl)
    ref_s, _ = ref_knn(q, b, k, exclude=excl)
    np.testing.assert_allclose(sims, ref_s, atol=5e-6)
    assert np.all(np.diff(sims, axis=1) <= 0)
    if excl is not None:
        assert not (idx == excl[:, None]).any()


def test_heavy_work_releases_the_gil():
    import threading
    import time

    x = clustered(20_000, 64, seed=11)
    y = clustered(4_000, 64, seed=12)
    done = threading.Event()
    ticks = 0

    calls = 0

    def work():  # at least 0.2 s of engine work, however fast the kernel on this CPU
        nonlocal calls
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.2:
            ts.knn(y, x, 10, num_threads=1)
            calls += 1
        done.set()

    t = threading.Thread(target=work)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks += 1  # only advances while the worker does not hold the GIL
        time.sleep(0.001)
    t.join()
    elapsed = time.perf_counter() - start
    assert elapsed > 0.2 and calls >= 1
    # the main thread kept running during the calls: at least one tick per 20 ms of engine work
    assert ticks >= 10 and ticks >= elapsed / 0.02


def test_knn_refuses_outputs_larger_than_the_machine(monkeypatch):
    """The engine allocates its (n, k) outputs first: a request beyond the machine's memory is a MemoryError."""
    import os

    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 4}  # a 16 KiB machine
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    with pytest.raises(MemoryError, match="k: 200 queries x k=10 neighbours need"):
        ts.knn(Y[:200], X, 10)
    sims, idx = ts.knn(Y[:10], X, 10)  # 1.2 KiB of output
    assert idx.shape == (10, 10)
