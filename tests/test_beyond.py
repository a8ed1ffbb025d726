"""CSLS neighbours, adaptive k (margin) and hubness statistics."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts

from .test_engine import XS, X, Y, clustered, ref_weights


def unit(a):
    a = a.astype(np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def ref_hub_scores(x, y, csls_k):
    """Each source word's mean cosine to its ``csls_k`` nearest targets (float64)."""
    cos = unit(x) @ unit(y).T
    return np.sort(cos, axis=1)[:, ::-1][:, :csls_k].mean(axis=1)


def ref_csls_neighbors(y, x, k, csls_k):
    cos = unit(y) @ unit(x).T
    r_t = ref_hub_scores(x, y, csls_k)
    return np.argsort(-(2 * cos - r_t[None, :]), axis=1, kind="stable")[:, :k]


def test_csls_neighbors_match_reference():
    res = ts.LLMProjector(5, metric="csls", csls_k=7).fit(X, XS).project(Y)
    ref = ref_csls_neighbors(Y, X, 5, 7)
    assert (res.neighbors == ref).mean() > 0.99
    np.testing.assert_allclose(res.weights, ref_weights(X, Y, res.neighbors), atol=5e-5, rtol=1e-3)
    # knn(metric="csls") ranks the same way; its scores are cos - r/2.
    sims, idx = ts.knn(Y, X, 5, metric="csls", csls_k=7)
    assert (idx == ref).mean() > 0.99
    expected = np.take_along_axis(unit(Y) @ unit(X).T, idx, 1) - 0.5 * ref_hub_scores(X, Y, 7)[idx]
    np.testing.assert_allclose(sims, expected, atol=2e-5)
    # A precomputed penalty gives the same answer.
    r = ts.hub_scores(X, Y, 7)
    np.testing.assert_array_equal(ts.knn(Y, X, 5, metric="csls", hub_penalty=r)[1], idx)


def test_csls_reduces_hubness():
    # A hub: one source word near the centre of everything.
    x = np.vstack([X, X.mean(axis=0, keepdims=True) * 1.0 + 1e-3])
    xs = np.vstack([XS, XS[:1]])
    cos_nb = ts.LLMProjector(10).fit(x, xs).project(Y).neighbors
    csls_nb = ts.LLMProjector(10, metric="csls").fit(x, xs).project(Y).neighbors
    h_cos, h_csls = ts.hubness(cos_nb, len(x)), ts.hubness(csls_nb, len(x))
    assert h_csls["top_share"] <= h_cos["top_share"]
    assert h_csls["max_in_degree"] < h_cos["max_in_degree"]


def test_margin_adaptive_k():
    res = ts.LLMProjector(8, margin=0.02).fit(X, XS).project(Y)
    spec, nb, w = res.y_spec, res.neighbors, res.weights
    used = (nb >= 0).sum(axis=1)
    assert used.min() >= 1 and used.max() <= 8 and len(np.unique(used)) > 1
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(w[nb < 0] == 0)
    # Used slots come first, and their count is margin_counts of the scores.
    assert np.all(nb[np.arange(len(nb)), used - 1] >= 0)
    np.testing.assert_array_equal(used, ts.margin_counts(ts.knn(Y, X, 8)[0], 0.02))
    # Each row equals an ordinary LLM with its own k.
    for i in np.flatnonzero(used == used.max())[:3]:
        c = used[i]
        np.testing.assert_allclose(spec[i], ts.llm_project(X, XS, Y[i : i + 1], int(c))[0], atol=1e-5)
    np.testing.assert_array_equal(ts.llm_project(X, XS, Y, 8, margin=0.02), spec)
    # margin=0 keeps only the best neighbour (k=1) unless ties.
    np.testing.assert_array_equal(ts.llm_project(X, XS, Y, 8, margin=0.0), ts.llm_project(X, XS, Y, 1))


def test_margin_and_csls_with_exclude_self_and_hnsw():
    nb = ts.LLMProjector(4, margin=0.05).fit(X, XS).project(X, exclude_self=True).neighbors
    assert not (nb == np.arange(len(X))[:, None]).any()
    nb = ts.LLMProjector(4, metric="csls").fit(X, XS).project(X, exclude_self=True).neighbors
    assert not (nb == np.arange(len(X))[:, None]).any()
    spec = ts.llm_project(X, XS, Y, 4, margin=0.05, backend="hnsw")
    assert np.isfinite(spec).all()
    res = ts.LLMProjector(4, margin=0.05, backend="hnsw").fit(X, XS).project(X, exclude_self=True)
    assert not (res.neighbors == np.arange(len(X))[:, None]).any()
    assert np.all(res.weights[res.neighbors < 0] == 0)


def test_bad_options():
    with pytest.raises(ValueError, match="metric"):
        ts.llm_project(X, XS, Y, 3, metric="l2")
    with pytest.raises(ValueError, match="csls"):
        ts.llm_project(X, XS, Y, 3, metric="csls", backend="hnsw")
    with pytest.raises(ValueError, match="margin"):
        ts.llm_project(X, XS, Y, 3, margin=-1.0)
    with pytest.raises(ValueError, match="csls_k"):
        ts.llm_project(X, XS, Y, 3, metric="csls", csls_k=0)
    with pytest.raises(ValueError, match="csls_k"):
        ts.hub_scores(X, Y, 0)


def test_csls_k_is_clipped_to_the_rows_available():
    y = Y[:5]
    np.testing.assert_array_equal(ts.hub_scores(X, y, 50), ts.hub_scores(X, y, 5))
    np.testing.assert_array_equal(
        ts.llm_project(X, XS, y, 3, metric="csls", csls_k=50), ts.llm_project(X, XS, y, 3, metric="csls", csls_k=5)
    )
    np.testing.assert_array_equal(
        ts.hub_scores(X, X, 5000, exclude_self=True), ts.hub_scores(X, X, 1499, exclude_self=True)
    )


def test_hub_scores_and_hubness_values():
    y = clustered(50, 32, seed=5)
    r = ts.hub_scores(X, y, 3)
    assert r.shape == (len(X),) and r.dtype == np.float32 and np.all(r <= 1.0 + 1e-6)
    np.testing.assert_allclose(r, ref_hub_scores(X, y, 3), atol=1e-5)
    # exclude_self: a word is not its own neighbour.
    cos = unit(X) @ unit(X).T
    np.fill_diagonal(cos, -np.inf)
    ref_self = np.sort(cos, axis=1)[:, ::-1][:, :4].mean(axis=1)
    np.testing.assert_allclose(ts.hub_scores(X, X, 4, exclude_self=True), ref_self, atol=1e-5)
    h = ts.hubness(np.array([[0, 1], [0, 2], [0, -1]]), 4, top=1)
    assert h["top_share"] == pytest.approx(3 / 5) and h["max_in_degree"] == 3 and h["unused_fraction"] == 0.25


def test_orthogonal_project_recovers_rotation():
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    np.testing.assert_allclose(ts.orthogonal_project(X, X @ q, Y), Y @ q, atol=1e-4)
    np.testing.assert_allclose(ts.LinearProjector("orthogonal").fit(X, X @ q).transform(Y), Y @ q, atol=1e-4)
    np.testing.assert_allclose(ts.procrustes(X, X @ q), q, atol=1e-5)
    assert ts.procrustes(X, (X @ q).astype(np.float32)).dtype == np.float32
    assert ts.procrustes(X, X @ q).dtype == np.float64
    # It only rotates: norms are kept even when x_spec is a stretched map.
    s = ts.orthogonal_project(X, X @ (q * 3.0), Y)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), np.linalg.norm(Y, axis=1), rtol=1e-4)
    with pytest.raises(ValueError, match="x_spec"):
        ts.orthogonal_project(X, XS[:5], Y)
    with pytest.raises(ValueError, match="y: expected the same shape as x"):
        ts.procrustes(X, Y)


def test_llm_from_neighbors_reuses_one_search():
    sims, nb = ts.knn(Y, X, 8)
    for k in (1, 4, 8):
        got = ts.llm_from_neighbors(X, XS, Y, nb[:, :k])
        assert isinstance(got, ts.Projection)
        np.testing.assert_allclose(got.y_spec, ts.llm_project(X, XS, Y, k), atol=1e-6)
        np.testing.assert_array_equal(got.neighbors, nb[:, :k])
        np.testing.assert_allclose(got.weights, ts.llm_weights(X, Y, nb[:, :k]), atol=1e-6)
    res = ts.llm_from_neighbors(X, XS, Y, nb, scores=sims, margin=0.02)
    np.testing.assert_allclose(res.y_spec, ts.llm_project(X, XS, Y, 8, margin=0.02), atol=1e-6)
    np.testing.assert_array_equal((res.neighbors >= 0).sum(axis=1), ts.margin_counts(sims, 0.02))
    with pytest.raises(ValueError, match="scores"):
        ts.llm_from_neighbors(X, XS, Y, nb, margin=0.1)
    with pytest.raises(ValueError, match="scores: expected shape"):
        ts.llm_from_neighbors(X, XS, Y, nb, scores=sims[:, :3], margin=0.1)
