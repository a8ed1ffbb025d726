"""HNSW path and streaming output of llm_project."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts
from taskspec_rs.ann import HnswIndex

from .test_engine import XS, X, Y, clustered


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def test_hnsw_knn_recall_and_order():
    _, exact = ts.knn(Y, X, 10)
    sims, idx = ts.knn(Y, X, 10, method="hnsw", hnsw={"M": 16, "ef": 100})
    assert idx.dtype == np.int64 and sims.dtype == np.float32
    assert recall(idx, exact) > 0.95
    assert np.all(np.diff(sims, axis=1) <= 1e-6)


def test_hnsw_exclude_self():
    idx = ts.knn(X, X, 5, method="hnsw", exclude_self=True)[1]
    assert not (idx == np.arange(len(X))[:, None]).any()
    assert recall(idx, ts.knn(X, X, 5, exclude_self=True)[1]) > 0.95


def test_index_reused_across_k_matches_exact_llm():
    index = HnswIndex(X, num_threads=1)
    for k in (1, 5):
        approx, nb, w = ts.llm_project(X, Y, XS, k, knn="hnsw", hnsw=index, return_neighbors=True)
        # Same Rust solves as the exact path, fed with the approximate neighbours.
        np.testing.assert_allclose(w, ts.llm_weights(Y, X, nb), atol=1e-6)
        exact = ts.llm_project(X, Y, XS, k)
        close = np.isclose(approx, exact, atol=1e-4).all(axis=1).mean()
        assert close > 0.9


def test_hnsw_bad_input():
    with pytest.raises(ValueError, match="hnsw: unknown parameter"):
        ts.knn(Y, X, 3, method="hnsw", hnsw={"m": 3})
    with pytest.raises(ValueError, match="method/knn"):
        ts.knn(Y, X, 3, method="annoy")
    with pytest.raises(ValueError, match="hnsw: index parameters were given"):
        ts.llm_project(X, Y, XS, 3, hnsw={"M": 8})
    with pytest.raises(ValueError, match="hnsw: the index holds"):
        ts.llm_project(X[:100], Y, XS[:100], 3, knn="hnsw", hnsw=HnswIndex(X))
    x = X.copy()
    x[4] = 0
    with pytest.raises(ValueError, match="x_gen: row 4 has zero norm"):
        ts.llm_project(x, Y, XS, 3, knn="hnsw")


def test_streaming_into_memmap_equals_in_memory(tmp_path, monkeypatch):
    from taskspec_rs import project

    monkeypatch.setattr(project, "BLOCK_ROWS", 97)  # many blocks, ragged last one
    y = clustered(1000, 32, seed=9)
    y_mm = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float64, shape=y.shape)
    y_mm[:] = y
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=(1000, 12))
    seen = []
    res = ts.llm_project(X, y_mm, XS, 6, out=out, progress=lambda d, t: seen.append((d, t)))
    assert res is out
    np.testing.assert_array_equal(out, ts.llm_project(X, y, XS, 6))
    assert seen[-1] == (1000, 1000) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    with pytest.raises(ValueError, match="out: expected a writeable float32 array"):
        ts.llm_project(X, y, XS, 6, out=np.empty((3, 3), np.float32))


def test_exclude_self_across_blocks(monkeypatch):
    from taskspec_rs import project

    monkeypatch.setattr(project, "BLOCK_ROWS", 128)
    nbrs = ts.llm_project(X, X, XS, 4, exclude_self=True, return_neighbors=True)[1]
    assert not (nbrs == np.arange(len(X))[:, None]).any()
    nbrs_h = ts.llm_project(X, X, XS, 4, exclude_self=True, knn="hnsw", return_neighbors=True)[1]
    assert not (nbrs_h == np.arange(len(X))[:, None]).any()
