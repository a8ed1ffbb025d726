"""The torch backend (CPU tensors here; CUDA where present) and Ray sharding agree with the Rust engine."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts

from .test_engine import XS, X, Y, clustered, exclusions, ref_knn, ref_weights


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_torch_cpu_matches_rust(exclude_self, metric):
    pytest.importorskip("torch")
    y = X if exclude_self else Y
    ref = ts.LLMProjector(7, metric=metric).fit(X, XS).project(y, exclude_self=exclude_self)
    torch_proj = ts.LLMProjector(7, metric=metric, backend="torch", device="cpu").fit(X, XS)
    got = torch_proj.project(y, exclude_self=exclude_self)
    assert (got.neighbors == ref.neighbors).mean() > 0.99
    same = (got.neighbors == ref.neighbors).all(axis=1)
    np.testing.assert_allclose(got.weights[same], ref.weights[same], atol=1e-5)
    np.testing.assert_allclose(got.y_spec[same], ref.y_spec[same], atol=1e-4)
    if exclude_self:
        assert not (got.neighbors == np.arange(len(X))[:, None]).any()
    shortcut = ts.llm_project(X, XS, y, 7, exclude_self=exclude_self, metric=metric, backend="torch", device="cpu")
    np.testing.assert_array_equal(shortcut, got.y_spec)


def test_three_backends_same_neighbours():
    """On a small problem the exact, HNSW (beam wider than the base) and torch searches agree."""
    pytest.importorskip("torch")
    x = clustered(300, 16, seed=21)
    y = clustered(60, 16, seed=22)
    wide = {"M": 32, "ef_construction": 400, "ef": 400}
    for kwargs, q in (({}, y), ({"exclude_self": True}, x)):
        ref_s, ref_i = ref_knn(q, x, 5, **kwargs)
        exact = ts.knn(q, x, 5, **kwargs)
        hnsw = ts.knn(q, x, 5, backend="hnsw", index=wide, **kwargs)
        torch_ = ts.knn(q, x, 5, backend="torch", device="cpu", **kwargs)
        for s, i in (exact, hnsw, torch_):
            np.testing.assert_array_equal(i, ref_i)
            np.testing.assert_allclose(s, ref_s, atol=1e-5)
    excl = exclusions(len(y), len(x), ref_knn(y, x, 1)[1][:, 0])
    ref_i = ref_knn(y, x, 5, exclude=excl)[1]
    for backend, opts in (("exact", {}), ("hnsw", {"index": wide}), ("torch", {"device": "cpu"})):
        np.testing.assert_array_equal(ts.knn(y, x, 5, exclude=excl, backend=backend, **opts)[1], ref_i)
    # CSLS: exact and torch (HNSW has no per-row bias).
    np.testing.assert_array_equal(
        ts.knn(y, x, 5, metric="csls", backend="torch", device="cpu")[1], ts.knn(y, x, 5, metric="csls")[1]
    )
    # Whole projections, too.
    xs = np.random.default_rng(23).normal(size=(300, 6)).astype(np.float32)
    ref = ts.LLMProjector(5).fit(x, xs).project(y)
    for backend, opts in (("hnsw", {"index": wide}), ("torch", {"device": "cpu"})):
        got = ts.LLMProjector(5, backend=backend, **opts).fit(x, xs).project(y)
        np.testing.assert_array_equal(got.neighbors, ref.neighbors)
        np.testing.assert_allclose(got.weights, ref.weights, atol=1e-5)
        np.testing.assert_allclose(got.y_spec, ref.y_spec, atol=1e-4)


def test_torch_kernels_directly():
    pytest.importorskip("torch")
    from taskspec_rs.torch_backend import knn_torch, llm_project_torch

    bias = np.linspace(-0.1, 0.0, len(X)).astype(np.float32)
    seen = []
    sims, idx = knn_torch(Y, X, 6, bias=bias, device="cpu", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(Y), len(Y))
    unit = lambda a: a.astype(np.float64) / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    s = unit(Y) @ unit(X).T + bias
    ref_i = np.argsort(-s, axis=1, kind="stable")[:, :6]
    assert (idx == ref_i).mean() > 0.99
    np.testing.assert_allclose(sims, np.take_along_axis(s, ref_i, 1), atol=1e-5)
    nbrs = ts.knn(Y, X, 6)[1]
    spec, w = llm_project_torch(X, Y, XS, nbrs, reg=1e-3, device="cpu")
    ref_w = ref_weights(X, Y, nbrs)
    np.testing.assert_allclose(w, ref_w, atol=5e-5, rtol=1e-3)
    np.testing.assert_allclose(spec, np.einsum("nk,nke->ne", ref_w, XS[nbrs].astype(np.float64)), atol=1e-4)


def test_torch_bad_device_and_singular():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: CUDA"):
            ts.llm_project(X, XS, Y, 3, backend="torch", device="cuda")
        with pytest.raises(ValueError, match="device: CUDA"):
            ts.knn(Y, X, 3, backend="torch")  # the default device is cuda
    with pytest.raises(ValueError, match="device: a torch device was given"):
        ts.llm_project(X, XS, Y, 3, device="cpu", backend="hnsw")
    with pytest.raises(ValueError, match="device: a torch device was given"):
        ts.llm_project(X, XS, Y, 3, device="cpu")
    x = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    with pytest.raises(ts.NumericalError):
        ts.llm_project(x, x, np.array([[0.5, 0.5]], np.float32), 3, reg=0.0, backend="torch", device="cpu")


@pytest.mark.skipif(
    not __import__("importlib").util.find_spec("torch") or not __import__("torch").cuda.is_available(),
    reason="no CUDA device",
)
def test_torch_cuda_matches_rust():
    ref = ts.LLMProjector(7).fit(X, XS).project(Y)
    got = ts.LLMProjector(7, backend="torch", device="cuda").fit(X, XS).project(Y)
    assert (got.neighbors == ref.neighbors).mean() > 0.99
    assert np.isclose(got.y_spec, ref.y_spec, atol=1e-4).all(axis=1).mean() > 0.99
    np.testing.assert_array_equal(ts.llm_project(X, XS, Y, 7, backend="torch", device="cuda"), got.y_spec)
    np.testing.assert_array_equal(ts.knn(Y, X, 7, backend="torch", device="cuda")[1], got.neighbors)


@pytest.mark.slow
def test_ray_sharding_identical():
    ray = pytest.importorskip("ray")
    from taskspec_rs.distributed import llm_project_sharded

    try:
        got = llm_project_sharded(X, XS, Y, 6, shards=3, reg=1e-3)
        got_margin = llm_project_sharded(X, XS, Y, 6, shards=2, margin=0.02)
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(got, ts.llm_project(X, XS, Y, 6))
    np.testing.assert_array_equal(got_margin, ts.llm_project(X, XS, Y, 6, margin=0.02))
    for bad, match in (
        ({"exclude_self": True}, "exclude_self"),
        ({"metric": "csls"}, "csls"),
        ({"num_threads": 2}, "num_threads"),
        ({"shards": 0}, "shards"),
        ({"num_threads_per_shard": 10**6}, "num_threads"),
        ({"backend": "annoy"}, "backend"),
    ):
        with pytest.raises(ValueError, match=match):
            llm_project_sharded(X, XS, X, 3, **bad)
    assert not ray.is_initialized()  # rejected before Ray starts


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("chunked", [False, True])
def test_torch_screen_is_exact(half, chunked, monkeypatch):
    """The reduced-precision screen (float16 as on CUDA, or float32) gives the float64 top-k, proven or redone."""
    torch = pytest.importorskip("torch")
    from taskspec_rs import torch_backend as tb

    if chunked:  # the two-step selection of wide blocks, on small blocks
        monkeypatch.setattr(tb, "BASE_BLOCK", 512)
        monkeypatch.setattr(tb, "SCREEN_CHUNK", 8)
    x = clustered(2000, 40, seed=31)
    x[1000:1100] = x[0]  # 101 identical rows: near-ties the screen cannot separate
    y = np.concatenate([clustered(300, 40, seed=32), x[:5]])
    bias = np.linspace(-0.05, 0.0, len(x)).astype(np.float32)
    for b in (None, bias):
        base = tb._Base(torch, x, b, torch.device("cpu"), half=half)
        score, idx, proven = base.search(torch.from_numpy(y), 10, 12)
        ref_s, ref_i = ref_knn(y, x, 10) if b is None else (None, None)
        if b is None:
            p = proven.numpy()
            assert p[:300].mean() > 0.5 and not p[-5]  # the 101 copies of x[0] fill more than c slots
            np.testing.assert_array_equal(idx.numpy()[p], ref_i[p])
            np.testing.assert_allclose(score.numpy()[p], ref_s[p], atol=1e-6)
    # Through the backend: unproven rows are redone, then finished by the exact engine.
    monkeypatch.setattr(tb._Base, "__init__", _forced_half(tb._Base.__init__, half))
    for metric in ("cosine", "csls"):
        np.testing.assert_array_equal(
            ts.knn(y, x, 10, metric=metric, backend="torch", device="cpu")[1], ts.knn(y, x, 10, metric=metric)[1]
        )


def _forced_half(init, half):
    def wrapped(self, torch, b, bias, dev, half_=None):
        init(self, torch, b, bias, dev, half=half)

    return wrapped


def test_torch_screen_error_bound():
    """The float16 screen's bound covers the worst rounding seen on random unit rows (and float32's likewise)."""
    torch = pytest.importorskip("torch")
    from taskspec_rs.torch_backend import screen_error

    rng = np.random.default_rng(5)
    q = rng.standard_normal((200, 300)).astype(np.float32)
    b = rng.standard_normal((3000, 300)).astype(np.float32)
    q[:, 0] *= 100  # spiky rows: large components
    unit = lambda a: a.astype(np.float64) / np.linalg.norm(a.astype(np.float64), axis=1, keepdims=True)  # noqa: E731
    exact = unit(q) @ unit(b).T
    tq = torch.from_numpy(q)
    tb_ = torch.from_numpy(b)
    qs = tq / tq.norm(dim=1, keepdim=True)
    bs = tb_ / tb_.norm(dim=1, keepdim=True)
    for half, scr in ((True, (qs.half() @ bs.half().T).float()), (False, qs @ bs.T)):
        err = np.abs(scr.double().numpy() - exact).max()
        assert 0 < err < screen_error(300, half, 0.0) / 2
