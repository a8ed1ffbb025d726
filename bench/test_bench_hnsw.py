"""Approximate (HNSW) vs exact neighbours for llm_project: wall time and recall@10.

Default: 100k sources x 100k targets. Large (TASKSPEC_BENCH_LARGE=1): 300k
sources x 1M targets; exact search is then timed on the first 50k targets and
scaled linearly to all of them (its cost is exactly linear in the targets).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import taskspec_rs as ts
from conftest import DIM, LARGE, THREADS, K, embedding_like, record

N_SOURCE, N_TARGET = (300_000, 1_000_000) if LARGE else (100_000, 100_000)
EXACT_SAMPLE = 50_000


@pytest.fixture(scope="module")
def data():
    x = embedding_like(N_SOURCE, seed=11)
    y = embedding_like(N_TARGET, seed=12)
    xs = np.random.default_rng(13).standard_normal((N_SOURCE, 64), dtype=np.float32)
    return x, y, xs


@pytest.mark.benchmark(group="hnsw-vs-exact")
def test_hnsw_vs_exact(benchmark, data):
    x, y, xs = data
    m = min(EXACT_SAMPLE, N_TARGET)
    t0 = time.perf_counter()
    exact_nb = ts.knn(y[:m], x, K, num_threads=THREADS)[1]
    exact_s = (time.perf_counter() - t0) * N_TARGET / m

    def run():
        t = time.perf_counter()
        index = ts.HnswIndex(x, num_threads=THREADS)
        build = time.perf_counter() - t
        projector = ts.LLMProjector(K, backend="hnsw", index=index, num_threads=THREADS).fit(x, xs)
        nb = projector.project(y).neighbors
        return build, nb

    build, nb = benchmark.pedantic(run, rounds=1, iterations=1)
    total = benchmark.stats.stats.min
    recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(nb[:m], exact_nb)]))
    row = {
        "n_source": N_SOURCE,
        "n_target": N_TARGET,
        "d": DIM,
        "k": K,
        "hnsw_seconds": total,
        "hnsw_build_seconds": build,
        "exact_knn_seconds": exact_s,
        "exact_extrapolated": m < N_TARGET,
        "recall_at_10": recall,
    }
    record("hnsw", row)
    benchmark.extra_info.update(row)
    print(f"\nHNSW {total:.1f}s (build {build:.1f}s) vs exact kNN {exact_s:.1f}s; recall@10 {recall:.3f}")
    assert recall >= 0.95
