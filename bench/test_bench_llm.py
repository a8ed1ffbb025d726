"""llm_project, 10k targets x 100k sources, d=300, k=10, against its peers."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts
from conftest import DIM, THREADS, K, clustered, record

N_TARGET, N_SOURCE = 10_000, 100_000


@pytest.fixture(scope="module")
def data():
    x = clustered(N_SOURCE, seed=3)
    y = clustered(N_TARGET, seed=4)
    x_spec = np.random.default_rng(5).standard_normal((N_SOURCE, DIM), dtype=np.float32)
    ref = ts.llm_project(x, x_spec, y, K, num_threads=THREADS)
    return x, x_spec, y, ref


def _run(benchmark, name, fn, ref):
    out = benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
    record(
        "llm",
        {
            "impl": name,
            "n_target": N_TARGET,
            "n_source": N_SOURCE,
            "d": DIM,
            "k": K,
            "threads": THREADS,
            "seconds": benchmark.stats.stats.min,
            "kernel": ts.knn_kernel() if name.startswith("taskspec_rs") else None,
        },
    )
    # Same projection up to neighbour ties and float32 rounding.
    assert np.isclose(out, ref, atol=1e-3).all(axis=1).mean() > 0.99


@pytest.mark.benchmark(group="llm-10k-x-100k")
def test_llm_taskspec(benchmark, data):
    x, xs, y, ref = data
    _run(benchmark, "taskspec_rs.llm_project", lambda: ts.llm_project(x, xs, y, K, num_threads=THREADS), ref)


@pytest.mark.benchmark(group="llm-10k-x-100k")
def test_llm_taskspec_f32_kernel(benchmark, data, monkeypatch):
    """The portable f32 GEMM kernel, used where the CPU lacks AVX512-BF16."""
    x, xs, y, ref = data
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", "fp32")
    _run(
        benchmark, "taskspec_rs.llm_project, f32 kernel", lambda: ts.llm_project(x, xs, y, K, num_threads=THREADS), ref
    )


@pytest.mark.benchmark(group="llm-10k-x-100k")
def test_llm_faiss_numpy(benchmark, data):
    pytest.importorskip("faiss")
    from peers import faiss_llm

    x, xs, y, ref = data
    _run(benchmark, "faiss kNN + numpy solves", lambda: faiss_llm(x, xs, y, K, THREADS), ref)


@pytest.mark.benchmark(group="llm-10k-x-100k")
def test_llm_paper_numpy(benchmark, data):
    from peers import paper_llm

    x, xs, y, ref = data
    _run(benchmark, "paper algorithm (numpy)", lambda: paper_llm(x, xs, y, K), ref)


@pytest.mark.benchmark(group="llm-10k-x-100k")
def test_llm_sklearn(benchmark, data):
    pytest.importorskip("sklearn")
    from peers import sklearn_llm

    x, xs, y, ref = data
    _run(
        benchmark, "scikit-learn NearestNeighbors + barycenter_weights", lambda: sklearn_llm(x, xs, y, K, THREADS), ref
    )
