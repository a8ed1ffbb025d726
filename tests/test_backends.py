"""The torch backend (CPU tensors here; CUDA where present) and Ray sharding agree with the Rust engine."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts

from .test_engine import XS, X, Y


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("metric", ["cosine", "csls"])
def test_torch_cpu_matches_rust(exclude_self, metric):
    pytest.importorskip("torch")
    y = X if exclude_self else Y
    ref = ts.llm_project(X, y, XS, 7, exclude_self=exclude_self, metric=metric, return_neighbors=True)
    got = ts.llm_project(X, y, XS, 7, exclude_self=exclude_self, metric=metric, device="cpu", return_neighbors=True)
    assert (got[1] == ref[1]).mean() > 0.99
    same = (got[1] == ref[1]).all(axis=1)
    np.testing.assert_allclose(got[2][same], ref[2][same], atol=1e-5)
    np.testing.assert_allclose(got[0][same], ref[0][same], atol=1e-4)


def test_torch_bad_device_and_singular():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: CUDA"):
            ts.llm_project(X, Y, XS, 3, device="cuda")
    with pytest.raises(ValueError, match="device: the torch backend"):
        ts.llm_project(X, Y, XS, 3, device="cpu", knn="hnsw")
    x = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    with pytest.raises(ts.NumericalError):
        ts.llm_project(x, np.array([[0.5, 0.5]], np.float32), x, 3, reg=0.0, device="cpu")


@pytest.mark.skipif(
    not __import__("importlib").util.find_spec("torch") or not __import__("torch").cuda.is_available(),
    reason="no CUDA device",
)
def test_torch_cuda_matches_rust():
    ref = ts.llm_project(X, Y, XS, 7)
    got = ts.llm_project(X, Y, XS, 7, device="cuda")
    assert np.isclose(got, ref, atol=1e-4).all(axis=1).mean() > 0.99


@pytest.mark.slow
def test_ray_sharding_identical():
    ray = pytest.importorskip("ray")
    from taskspec_rs.distributed import llm_project_sharded

    try:
        got = llm_project_sharded(X, Y, XS, 6, shards=3, return_neighbors=True, reg=1e-3)
    finally:
        ray.shutdown()
    ref = ts.llm_project(X, Y, XS, 6, return_neighbors=True)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="exclude_self"):
        llm_project_sharded(X, X, XS, 3, exclude_self=True)
