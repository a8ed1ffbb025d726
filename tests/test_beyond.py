"""CSLS neighbours, adaptive k (margin) and hubness statistics."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts

from .test_engine import XS, X, Y, clustered, ref_weights


def ref_csls_neighbors(y, x, k, csls_k):
    def unit(a):
        a = a.astype(np.float64)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    cos = unit(y) @ unit(x).T
    r_t = np.sort(cos.T, axis=1)[:, ::-1][:, :csls_k].mean(axis=1)  # each source word's mean to targets
    return np.argsort(-(2 * cos - r_t[None, :]), axis=1, kind="stable")[:, :k]


def test_csls_neighbors_match_reference():
    _, nb, w = ts.llm_project(X, Y, XS, 5, metric="csls", csls_k=7, return_neighbors=True)
    assert (nb == ref_csls_neighbors(Y, X, 5, 7)).mean() > 0.99
    np.testing.assert_allclose(w, ref_weights(Y, X, nb), atol=5e-5, rtol=1e-3)


def test_csls_reduces_hubness():
    # A hub: one source word near the centre of everything.
    x = np.vstack([X, X.mean(axis=0, keepdims=True) * 1.0 + 1e-3])
    xs = np.vstack([XS, XS[:1]])
    cos_nb = ts.llm_project(x, Y, xs, 10, return_neighbors=True)[1]
    csls_nb = ts.llm_project(x, Y, xs, 10, metric="csls", return_neighbors=True)[1]
    h_cos, h_csls = ts.hubness(cos_nb, len(x)), ts.hubness(csls_nb, len(x))
    assert h_csls["top_share"] <= h_cos["top_share"]
    assert h_csls["max_in_degree"] < h_cos["max_in_degree"]


def test_margin_adaptive_k():
    spec, nb, w = ts.llm_project(X, Y, XS, 8, margin=0.02, return_neighbors=True)
    used = (nb >= 0).sum(axis=1)
    assert used.min() >= 1 and used.max() <= 8 and len(np.unique(used)) > 1
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(w[nb < 0] == 0)
    # Each row equals an ordinary LLM with its own k.
    for i in np.flatnonzero(used == used.max())[:3]:
        c = used[i]
        np.testing.assert_allclose(spec[i], ts.llm_project(X, Y[i : i + 1], XS, int(c))[0], atol=1e-5)
    # margin=0 keeps only the best neighbour (k=1) unless ties.
    np.testing.assert_array_equal(ts.llm_project(X, Y, XS, 8, margin=0.0), ts.llm_project(X, Y, XS, 1))


def test_margin_and_csls_with_exclude_self_and_hnsw():
    nb = ts.llm_project(X, X, XS, 4, margin=0.05, exclude_self=True, return_neighbors=True)[1]
    assert not (nb == np.arange(len(X))[:, None]).any()
    nb = ts.llm_project(X, X, XS, 4, metric="csls", exclude_self=True, return_neighbors=True)[1]
    assert not (nb == np.arange(len(X))[:, None]).any()
    spec = ts.llm_project(X, Y, XS, 4, margin=0.05, knn="hnsw")
    assert np.isfinite(spec).all()


def test_bad_options():
    with pytest.raises(ValueError, match="metric"):
        ts.llm_project(X, Y, XS, 3, metric="l2")
    with pytest.raises(ValueError, match="csls"):
        ts.llm_project(X, Y, XS, 3, metric="csls", knn="hnsw")
    with pytest.raises(ValueError, match="margin"):
        ts.llm_project(X, Y, XS, 3, margin=-1.0)
    with pytest.raises(ValueError, match="csls_k"):
        ts.llm_project(X, Y[:5], XS, 3, metric="csls", csls_k=50)


def test_hub_scores_and_hubness_values():
    y = clustered(50, 32, seed=5)
    r = ts.hub_scores(X, y, 3)
    assert r.shape == (len(X),) and np.all(r <= 1.0 + 1e-6)
    h = ts.hubness(np.array([[0, 1], [0, 2], [0, -1]]), 4, top=1)
    assert h["top_share"] == pytest.approx(3 / 5) and h["max_in_degree"] == 3 and h["unused_fraction"] == 0.25


def test_orthogonal_project_recovers_rotation():
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    np.testing.assert_allclose(ts.orthogonal_project(X, X @ q, Y), Y @ q, atol=1e-4)
    # It only rotates: norms are kept even when x_spec is a stretched map.
    s = ts.orthogonal_project(X, X @ (q * 3.0), Y)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), np.linalg.norm(Y, axis=1), rtol=1e-4)
    with pytest.raises(ValueError, match="x_spec"):
        ts.orthogonal_project(X, XS[:5], Y)


def test_llm_from_neighbors_reuses_one_search():
    sims, nb = ts.knn(Y, X, 8)
    for k in (1, 4, 8):
        got = ts.llm_from_neighbors(X, Y, XS, nb[:, :k])
        np.testing.assert_allclose(got[0], ts.llm_project(X, Y, XS, k), atol=1e-6)
    spec, nbm, _ = ts.llm_from_neighbors(X, Y, XS, nb, scores=sims, margin=0.02)
    np.testing.assert_allclose(spec, ts.llm_project(X, Y, XS, 8, margin=0.02), atol=1e-6)
    np.testing.assert_array_equal((nbm >= 0).sum(axis=1), ts.margin_counts(sims, 0.02))
    with pytest.raises(ValueError, match="scores"):
        ts.llm_from_neighbors(X, Y, XS, nb, margin=0.1)
