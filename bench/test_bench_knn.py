"""Exact cosine kNN: each taskspec-rs kernel vs faiss IndexFlatIP vs numpy matmul+argpartition.

Every kernel this CPU runs (``ts.knn_kernels()``) is forced in turn with ``TASKSPEC_KNN_KERNEL`` and
timed on the same data as faiss in the same run; ``test_knn_ratios`` (last) prints each one's time
over faiss's and records them in ``knn_ratios.jsonl``. Nothing here asserts a speed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import taskspec_rs as ts
from conftest import DIM, LARGE, THREADS, K, clustered, record

N = 40_000  # the figure: 40k x 40k, d=300, k=10
ROUNDS = int(os.environ.get("TASKSPEC_BENCH_ROUNDS", 3 if LARGE else 1))
KERNELS = ts.knn_kernels()
SECONDS: dict[str, float] = {}  # impl -> best time of this run


@pytest.fixture(scope="module")
def data():
    return clustered(N, seed=1), clustered(N, seed=2)


def _impl_name(kernel: str) -> str:
    """The default kernel keeps the row name "taskspec_rs.knn" (make_report.py's reference row)."""
    if kernel == KERNELS[0]:
        return "taskspec_rs.knn"
    return "taskspec_rs.knn, f32 kernel" if kernel == "fp32" else f"taskspec_rs.knn, {kernel} kernel"


def _blas() -> str | None:
    """The BLAS faiss calls (its bundled OpenBLAS may mis-detect a new CPU: OPENBLAS_CORETYPE overrides)."""
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i.get("internal_api") == "openblas" and "faiss" in i.get("filepath", "")]
    return f"openblas {libs[0]['version']} {libs[0]['architecture']}" if libs else None


def _run(benchmark, name, fn, kernel=None, **extra):
    result = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    t = benchmark.stats.stats.min
    SECONDS[name] = t
    record(
        "knn",
        {
            "impl": name,
            "n": N,
            "m": N,
            "d": DIM,
            "k": K,
            "threads": THREADS,
            "seconds": t,
            "gflops": 2 * N * N * DIM / t / 1e9,
            "kernel": kernel,
            **extra,
        },
    )
    return result


@pytest.mark.benchmark(group="knn-exact-40k")
@pytest.mark.parametrize("kernel", KERNELS)
def test_knn_taskspec(benchmark, data, kernel, monkeypatch):
    """Each kernel forced by name; the first of ``ts.knn_kernels()`` is the default."""
    q, b = data
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", kernel)
    assert ts.knn_kernel() == kernel
    sims, idx = _run(benchmark, _impl_name(kernel), lambda: ts.knn(q, b, K, num_threads=THREADS), kernel)
    assert idx.shape == (N, K)
    monkeypatch.delenv("TASKSPEC_KNN_KERNEL")
    np.testing.assert_allclose(sims[:500], ts.knn(q[:500], b, K)[0], atol=1e-5)


@pytest.mark.benchmark(group="knn-exact-40k")
def test_knn_faiss(benchmark, data):
    from peers import faiss_knn

    pytest.importorskip("faiss")
    q, b = data
    sims, idx = _run(benchmark, "faiss IndexFlatIP", lambda: faiss_knn(q, b, K, THREADS), blas=_blas())
    ours = ts.knn(q[:500], b, K)[0]
    np.testing.assert_allclose(sims[:500], ours, atol=1e-4)


@pytest.mark.benchmark(group="knn-exact-40k")
def test_knn_numpy(benchmark, data):
    from peers import numpy_knn

    q, b = data
    sims, _ = _run(benchmark, "numpy matmul+argpartition", lambda: numpy_knn(q, b, K))
    np.testing.assert_allclose(sims[:500], ts.knn(q[:500], b, K)[0], atol=1e-4)


def test_knn_ratios():
    """Each kernel's speed-up over faiss IndexFlatIP measured in this run (printed and recorded)."""
    faiss_t = SECONDS.get("faiss IndexFlatIP")
    if faiss_t is None:
        pytest.skip("faiss was not timed in this run")
    print(f"\nexact kNN {N} x {N}, d={DIM}, k={K}, {THREADS} threads; faiss IndexFlatIP {faiss_t:.3f} s ({_blas()})")
    for kernel in KERNELS:
        t = SECONDS.get(_impl_name(kernel))
        if t is not None:
            print(f"  {kernel:9s} {t:7.3f} s  {faiss_t / t:5.2f}x faiss")
            record("knn_ratios", {"kernel": kernel, "seconds": t, "faiss_seconds": faiss_t, "speedup": faiss_t / t})
