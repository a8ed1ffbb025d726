"""Scale run: llm_project with the HNSW path on 200k sources x 2M targets x 300 dims.

Only with TASKSPEC_BENCH_LARGE=1 (takes several minutes). Target vectors and
the output live in memory-mapped .npy files; llm_project streams target rows
through them block by block, so resident memory stays bounded.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np
import pytest
import taskspec_rs as ts
from conftest import DIM, LARGE, THREADS, K, embedding_like, record

N_SOURCE = int(os.environ.get("TASKSPEC_SCALE_SOURCES", 200_000))
N_TARGET = int(os.environ.get("TASKSPEC_SCALE_TARGETS", 2_000_000))


@pytest.mark.skipif(not LARGE, reason="set TASKSPEC_BENCH_LARGE=1 for the 200k x 2M scale run")
def test_scale_run_hnsw(tmp_path):
    x = embedding_like(N_SOURCE, seed=31)
    xs = np.random.default_rng(32).standard_normal((N_SOURCE, DIM), dtype=np.float32)
    y = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float32, shape=(N_TARGET, DIM))
    for s in range(0, N_TARGET, 200_000):
        y[s : s + 200_000] = embedding_like(min(200_000, N_TARGET - s), seed=33 + s)
    y.flush()
    del y
    y = np.load(tmp_path / "y.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp_path / "y_spec.npy", mode="w+", dtype=np.float32, shape=(N_TARGET, DIM))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    index = ts.HnswIndex(x, num_threads=THREADS, progress=True)
    build = time.perf_counter() - t0
    ts.llm_project(x, xs, y, K, backend="hnsw", index=index, out=out, num_threads=THREADS, progress=True)
    out.flush()
    total = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Spot-check a sample against the exact path.
    rows = np.random.default_rng(0).choice(N_TARGET, 2000, replace=False)
    rows.sort()
    exact = ts.llm_project(x, xs, np.asarray(y[rows]), K, num_threads=THREADS)
    agree = float(np.isclose(out[rows], exact, atol=1e-3).all(axis=1).mean())
    row = {
        "n_source": N_SOURCE,
        "n_target": N_TARGET,
        "d": DIM,
        "k": K,
        "seconds": total,
        "build_seconds": build,
        "peak_rss_mib_before": rss0,
        "peak_rss_mib": rss1,
        "exact_agreement": agree,
    }
    record("scale", row)
    print(f"\nscale run: {row}")
    assert np.isfinite(out[rows]).all() and agree > 0.8
