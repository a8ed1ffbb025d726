"""HNSW path and streaming output of llm_project."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts
from taskspec_rs.ann import HnswIndex

from .test_engine import XS, X, Y, clustered, exclusions, ref_knn


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def test_hnsw_knn_recall_and_order():
    _, exact = ts.knn(Y, X, 10)
    sims, idx = ts.knn(Y, X, 10, backend="hnsw", index={"M": 16, "ef": 100})
    assert idx.dtype == np.int64 and sims.dtype == np.float32
    assert recall(idx, exact) > 0.95
    assert np.all(np.diff(sims, axis=1) <= 1e-6)


def test_hnsw_index_search_directly():
    index = HnswIndex(X, num_threads=1)
    assert (index.size, index.dim) == X.shape
    sims, idx = index.search(Y, 10, ef=100)
    ref_s, ref_i = ref_knn(Y, X, 10)
    assert idx.dtype == np.int64 and sims.dtype == np.float32 and idx.shape == (len(Y), 10)
    assert recall(idx, ref_i) > 0.95
    # The similarities are the true cosines of the rows returned.
    xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    np.testing.assert_allclose(sims, np.einsum("nd,nkd->nk", yn, xn[idx]), atol=1e-5)
    with pytest.raises(ValueError, match="k: must be between 1 and 1500"):
        index.search(Y, 1501)
    with pytest.raises(ValueError, match="queries: has dimension 5"):
        index.search(Y[:, :5], 3)


def test_hnsw_exclude_self():
    idx = ts.knn(X, X, 5, backend="hnsw", exclude_self=True)[1]
    assert not (idx == np.arange(len(X))[:, None]).any()
    assert recall(idx, ts.knn(X, X, 5, exclude_self=True)[1]) > 0.95
    # Through a prebuilt index: the same exclusion, by knn (HnswIndex.search has none).
    index = HnswIndex(X, num_threads=1)
    idx2 = ts.knn(X, X, 5, backend="hnsw", index=index, exclude_self=True)[1]
    assert not (idx2 == np.arange(len(X))[:, None]).any()
    assert recall(idx2, ts.knn(X, X, 5, exclude_self=True)[1]) > 0.95


def test_hnsw_general_exclusion():
    excl = exclusions(len(Y), len(X), ref_knn(Y, X, 1)[1][:, 0], seed=2)
    idx = ts.knn(Y, X, 6, backend="hnsw", index={"ef": 200}, exclude=excl)[1]
    assert not (idx == excl[:, None]).any()
    assert recall(idx, ref_knn(Y, X, 6, exclude=excl)[1]) > 0.95


def test_index_reused_across_k_matches_exact_llm():
    index = HnswIndex(X, num_threads=1)
    for k in (1, 5):
        proj = ts.LLMProjector(k, backend="hnsw", index=index).fit(X, XS)
        assert proj.index_ is index  # built once, reused for every k and target
        res = proj.project(Y)
        # Same Rust solves as the exact path, fed with the approximate neighbours.
        np.testing.assert_allclose(res.weights, ts.llm_weights(X, Y, res.neighbors), atol=1e-6)
        approx = ts.llm_project(X, XS, Y, k, backend="hnsw", index=index)
        np.testing.assert_array_equal(approx, res.y_spec)
        exact = ts.llm_project(X, XS, Y, k)
        close = np.isclose(approx, exact, atol=1e-4).all(axis=1).mean()
        assert close > 0.9


def test_hnsw_bad_input():
    with pytest.raises(ValueError, match="index: unknown HNSW parameter"):
        ts.knn(Y, X, 3, backend="hnsw", index={"m": 3})
    with pytest.raises(TypeError, match="index: expected None, a dict"):
        ts.knn(Y, X, 3, backend="hnsw", index=[16])
    with pytest.raises(ValueError, match="M: must be a positive int"):
        ts.knn(Y, X, 3, backend="hnsw", index={"M": 0})
    with pytest.raises(ValueError, match="backend: must be one of"):
        ts.knn(Y, X, 3, backend="annoy")
    with pytest.raises(ValueError, match="index: HNSW parameters were given"):
        ts.llm_project(X, XS, Y, 3, index={"M": 8})
    with pytest.raises(ValueError, match="index: the HNSW index holds"):
        ts.llm_project(X[:100], XS[:100], Y, 3, backend="hnsw", index=HnswIndex(X))
    with pytest.raises(ValueError, match="index: the HNSW index holds"):
        ts.knn(Y, X[:100], 3, backend="hnsw", index=HnswIndex(X))
    with pytest.raises(ValueError, match="metric: 'csls' needs an exact search"):
        ts.knn(Y, X, 3, backend="hnsw", metric="csls")
    x = X.copy()
    x[4] = 0
    with pytest.raises(ValueError, match="x_gen: row 4 has zero norm"):
        ts.llm_project(x, XS, Y, 3, backend="hnsw")
    with pytest.raises(ValueError, match="base: row 4 has zero norm"):
        HnswIndex(x)


def test_streaming_into_memmap_equals_in_memory(tmp_path, monkeypatch):
    from taskspec_rs import project

    monkeypatch.setattr(project, "BLOCK_ROWS", 97)  # many blocks, ragged last one
    y = clustered(1000, 32, seed=9)
    y_mm = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float64, shape=y.shape)
    y_mm[:] = y
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=(1000, 12))
    seen = []
    res = ts.llm_project(X, XS, y_mm, 6, out=out, progress=lambda d, t: seen.append((d, t)))
    assert res is out
    np.testing.assert_array_equal(out, ts.llm_project(X, XS, y, 6))
    assert seen[-1] == (1000, 1000) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    # transform streams the same way.
    out2 = np.lib.format.open_memmap(tmp_path / "out2.npy", mode="w+", dtype=np.float32, shape=(1000, 12))
    assert ts.LLMProjector(6).fit(X, XS).transform(y_mm, out=out2) is out2
    np.testing.assert_array_equal(out2, out)
    with pytest.raises(ValueError, match="out: expected a writeable float32 array"):
        ts.llm_project(X, XS, y, 6, out=np.empty((3, 3), np.float32))


def test_exclude_self_across_blocks(monkeypatch):
    from taskspec_rs import project

    whole = ts.LLMProjector(4).fit(X, XS).project(X, exclude_self=True)
    monkeypatch.setattr(project, "BLOCK_ROWS", 128)
    res = ts.LLMProjector(4).fit(X, XS).project(X, exclude_self=True)
    assert not (res.neighbors == np.arange(len(X))[:, None]).any()
    # Blocks see the global row numbers: same answer as one block.
    np.testing.assert_array_equal(res.neighbors, whole.neighbors)
    np.testing.assert_array_equal(res.y_spec, whole.y_spec)
    np.testing.assert_array_equal(res.neighbors, ts.knn(X, X, 4, exclude_self=True)[1])
    nbrs_h = ts.LLMProjector(4, backend="hnsw").fit(X, XS).project(X, exclude_self=True).neighbors
    assert not (nbrs_h == np.arange(len(X))[:, None]).any()
    # A general exclusion is split with the blocks too.
    excl = np.roll(np.arange(len(X)), 1)
    nb = ts.LLMProjector(4).fit(X, XS).project(X, exclude=excl).neighbors
    assert not (nb == excl[:, None]).any()
    np.testing.assert_array_equal(nb, ts.knn(X, X, 4, exclude=excl)[1])
