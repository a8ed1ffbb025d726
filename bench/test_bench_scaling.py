"""llm_project time against source vocabulary size (10k targets, d=300, k=10)."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts
from conftest import DIM, LARGE, THREADS, K, embedding_like, record

N_TARGET = 10_000
SOURCES = [10_000, 30_000, 100_000, 300_000, 1_000_000] if LARGE else [10_000, 30_000, 100_000]
PAPER_MAX = 100_000  # the full-sort algorithm beyond this takes many minutes

_cache: dict = {}


def data(m: int):
    if m not in _cache:
        _cache.clear()
        x = embedding_like(m, seed=21)
        _cache[m] = (
            x,
            np.random.default_rng(23).standard_normal((m, DIM), dtype=np.float32),
            embedding_like(N_TARGET, seed=22),
        )
    return _cache[m]


def impls():
    def exact(x, xs, y):
        return ts.llm_project(x, xs, y, K, num_threads=THREADS)

    def hnsw(x, xs, y):  # index build included
        return ts.llm_project(x, xs, y, K, backend="hnsw", num_threads=THREADS)

    def faiss_numpy(x, xs, y):
        from peers import faiss_llm

        return faiss_llm(x, xs, y, K, THREADS)

    def paper(x, xs, y):
        from peers import paper_llm

        return paper_llm(x, xs, y, K)

    return {"taskspec-rs exact": exact, "taskspec-rs hnsw": hnsw, "faiss + numpy": faiss_numpy, "paper (numpy)": paper}


@pytest.mark.parametrize("impl", list(impls()))
@pytest.mark.parametrize("m", SOURCES)
def test_scaling(benchmark, m, impl):
    if impl == "paper (numpy)" and m > PAPER_MAX:
        pytest.skip("the paper's full-sort algorithm takes many minutes at this size")
    if impl == "faiss + numpy":
        pytest.importorskip("faiss")
    benchmark.group = f"scaling-{m}"
    x, xs, y = data(m)
    benchmark.pedantic(impls()[impl], args=(x, xs, y), rounds=1, iterations=1)
    record("scaling", {"impl": impl, "n_source": m, "n_target": N_TARGET, "seconds": benchmark.stats.stats.min})
