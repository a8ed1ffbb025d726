"""Exact cosine kNN: taskspec-rs vs faiss IndexFlatIP vs numpy matmul+argpartition."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts
from conftest import DIM, LARGE, THREADS, K, clustered, record

N = 40_000  # the figure: 40k x 40k, d=300, k=10
ROUNDS = 3 if LARGE else 1


@pytest.fixture(scope="module")
def data():
    return clustered(N, seed=1), clustered(N, seed=2)


def _run(benchmark, name, fn):
    result = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    t = benchmark.stats.stats.min
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
            "kernel": ts.knn_kernel() if name.startswith("taskspec_rs") else None,
        },
    )
    return result


@pytest.mark.benchmark(group="knn-exact-40k")
def test_knn_taskspec(benchmark, data):
    q, b = data
    sims, idx = _run(benchmark, "taskspec_rs.knn", lambda: ts.knn(q, b, K, num_threads=THREADS))
    assert idx.shape == (N, K)


@pytest.mark.benchmark(group="knn-exact-40k")
def test_knn_taskspec_f32_kernel(benchmark, data, monkeypatch):
    """The portable f32 GEMM kernel, used where the CPU lacks AVX512-BF16."""
    q, b = data
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", "fp32")
    sims, _ = _run(benchmark, "taskspec_rs.knn, f32 kernel", lambda: ts.knn(q, b, K, num_threads=THREADS))
    monkeypatch.delenv("TASKSPEC_KNN_KERNEL")
    np.testing.assert_allclose(sims[:500], ts.knn(q[:500], b, K)[0], atol=1e-5)


@pytest.mark.benchmark(group="knn-exact-40k")
def test_knn_faiss(benchmark, data):
    from peers import faiss_knn

    pytest.importorskip("faiss")
    q, b = data
    sims, idx = _run(benchmark, "faiss IndexFlatIP", lambda: faiss_knn(q, b, K, THREADS))
    ours = ts.knn(q[:500], b, K)[0]
    np.testing.assert_allclose(sims[:500], ours, atol=1e-4)


@pytest.mark.benchmark(group="knn-exact-40k")
def test_knn_numpy(benchmark, data):
    from peers import numpy_knn

    q, b = data
    sims, _ = _run(benchmark, "numpy matmul+argpartition", lambda: numpy_knn(q, b, K))
    np.testing.assert_allclose(sims[:500], ts.knn(q[:500], b, K)[0], atol=1e-4)
