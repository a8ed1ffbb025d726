"""Every exact-kNN kernel this CPU runs against a float64 numpy reference, and kernel selection.

The screens (``int8``, ``bf16``, ``int8-avx``, ``int8-avx2``) re-rank their candidates in float64, so they must return
the reference top-k up to float32 rounding of the scores; ``fp32`` may swap candidates that tie within
float32 precision. ``TASKSPEC_KNN_KERNEL`` forces a kernel (see tests/test_engine.py for the end-to-end
projector tests run with each kernel).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import taskspec_rs as ts
from taskspec_rs import _core

KERNELS = ts.knn_kernels()
SCREENS = [k for k in KERNELS if k != "fp32"]


@pytest.fixture(params=KERNELS)
def kernel(request, monkeypatch):
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", request.param)
    assert ts.knn_kernel() == request.param
    return request.param


def reference(q: np.ndarray, b: np.ndarray, k: int, bias: np.ndarray | None = None):
    """Float64 cosine (+ bias) top-k, best first, ties by lower index; also the full score matrix."""
    q64 = q.astype(np.float64)
    b64 = b.astype(np.float64)
    s = (q64 / np.linalg.norm(q64, axis=1, keepdims=True)) @ (b64 / np.linalg.norm(b64, axis=1, keepdims=True)).T
    if bias is not None:
        s += bias.astype(np.float64)
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, 1), idx, s


def check(q, b, k, bias=None, near_tie=1e-6):
    """The active kernel's answer: scores within 1e-5, indices equal except between near-ties."""
    sims, idx = _core.knn(np.ascontiguousarray(q), np.ascontiguousarray(b), k, base_bias=bias)
    ref_s, ref_i, full = reference(q, b, k, bias)
    assert sims.shape == idx.shape == (len(q), k)
    np.testing.assert_allclose(sims, ref_s, atol=1e-5, rtol=0)
    rows, cols = np.nonzero(idx != ref_i)
    # A different index must score (in float64) within near_tie of the reference's at that rank.
    np.testing.assert_allclose(full[rows, idx[rows, cols]], ref_s[rows, cols], atol=near_tie, rtol=0)
    assert np.all(np.diff(sims, axis=1) <= 0)
    assert all(len(set(r)) == k for r in idx.tolist())
    return sims, idx


def gaussian(n, d, seed):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def embedding_like(n, d, seed, latent=16, centres=30):
    """Low intrinsic dimension and clusters, with a few heavy components (as real embeddings have)."""
    rng = np.random.default_rng(seed)
    proj = np.random.default_rng(99).standard_normal((latent, d))
    c = np.random.default_rng(98).standard_normal((centres, latent)) * 2
    x = (c[rng.integers(0, centres, n)] + rng.standard_normal((n, latent))) @ proj
    x[:, : max(1, d // 50)] *= 6  # a few dominant dimensions
    return (x + 0.05 * rng.standard_normal((n, d))).astype(np.float32)


@pytest.mark.parametrize("d", [1, 3, 7, 33, 65, 300, 301])
def test_random_data_any_width(kernel, d):
    check(gaussian(150, d, 1), gaussian(1300, d, 2), 10)


@pytest.mark.parametrize("d", [2, 64, 129, 300])
def test_embedding_like_data(kernel, d):
    base = embedding_like(2500, d, 3)
    check(embedding_like(300, d, 4), base, 10)
    # Queries drawn from the base itself: their own row is the exact top-1.
    _, idx = check(base[:200], base, 5)
    if kernel != "fp32":
        np.testing.assert_array_equal(idx[:, 0], np.arange(200))


@pytest.mark.parametrize("k", [1, 2, 64, 700])
def test_k_small_and_large(kernel, k):
    check(embedding_like(120, 48, 5), embedding_like(800, 48, 6), k)


def test_duplicated_rows_tie_by_lower_index(kernel):
    """Exact duplicates tie exactly; many near-duplicates fill the screen's window (the near-tie fallback)."""
    rng = np.random.default_rng(7)
    d = 40
    base = embedding_like(3000, d, 8)
    base[1000:2500] = base[5] + 1e-4 * rng.standard_normal((1500, d)).astype(np.float32)
    base[[17, 400, 2999]] = base[5]
    q = np.vstack([base[5], base[:50]])
    sims, idx = check(q, base, 12)
    if kernel != "fp32":
        np.testing.assert_array_equal(idx[0, :4], [5, 17, 400, 2999])
    # Every base row the same vector: the answer is the first k rows.
    same = np.repeat(base[:1], 5000, axis=0)
    sims, idx = _core.knn(same[:3].copy(), same, 6)
    np.testing.assert_array_equal(idx, np.tile(np.arange(6), (3, 1)))
    np.testing.assert_allclose(sims, 1.0, atol=1e-6)


@pytest.mark.parametrize("scale", [0.05, 0.8])
def test_csls_bias(kernel, scale):
    b = embedding_like(1500, 64, 9)
    q = embedding_like(200, 64, 10)
    bias = (scale * np.random.default_rng(11).uniform(-1, 1, len(b))).astype(np.float32)
    check(q, b, 10, bias)
    check(q, b, 1, bias)


def test_csls_metric_through_the_public_api(kernel):
    x = embedding_like(900, 32, 12)
    y = embedding_like(300, 32, 13)
    sims, idx = ts.knn(y, x, 5, metric="csls")
    r = ts.hub_scores(x, y, 10)
    ref_s, ref_i, _ = reference(y, x, 5, (-r / 2).astype(np.float32))
    np.testing.assert_allclose(sims, ref_s, atol=1e-5)
    assert (idx == ref_i).mean() > 0.99


def test_kernels_agree_bit_for_bit_where_they_re_rank(monkeypatch):
    """The screens re-rank in float64: their answers are identical, whatever screened them."""
    q, b = embedding_like(400, 300, 14), embedding_like(3000, 300, 15)
    answers = {}
    for name in SCREENS:
        monkeypatch.setenv("TASKSPEC_KNN_KERNEL", name)
        answers[name] = ts.knn(q, b, 10)
    for name, (s, i) in answers.items():
        np.testing.assert_array_equal(i, answers[SCREENS[0]][1], err_msg=name)
        np.testing.assert_array_equal(s, answers[SCREENS[0]][0], err_msg=name)


def test_kernel_listing(monkeypatch):
    monkeypatch.delenv("TASKSPEC_KNN_KERNEL", raising=False)
    assert KERNELS[-1] == "fp32" and len(set(KERNELS)) == len(KERNELS)
    assert set(KERNELS) <= {"int8", "bf16", "int8-avx", "int8-avx2", "fp32"}
    assert ts.knn_kernel() == KERNELS[0]
    for auto in ("auto", "", "AUTO"):
        monkeypatch.setenv("TASKSPEC_KNN_KERNEL", auto)
        assert ts.knn_kernel() == KERNELS[0]
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", " Fp32 ")
    assert ts.knn_kernel() == "fp32"


@pytest.mark.parametrize("name", ["int4", "bf16-screen", "fast"])
def test_unknown_kernel_is_a_value_error(monkeypatch, name):
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", name)
    with pytest.raises(ValueError, match="TASKSPEC_KNN_KERNEL") as err:
        ts.knn(gaussian(3, 4, 0), gaussian(5, 4, 1), 2)
    for valid in ("auto", "int8", "bf16", "int8-avx", "int8-avx2", "fp32"):
        assert valid in str(err.value)
    with pytest.raises(ValueError, match="TASKSPEC_KNN_KERNEL"):
        ts.knn_kernel()
    with pytest.raises(ValueError, match="TASKSPEC_KNN_KERNEL"):
        ts.llm_project(gaussian(6, 4, 0), gaussian(6, 3, 1), gaussian(2, 4, 2), 2)


@pytest.mark.parametrize("name", sorted({"int8", "bf16", "int8-avx", "int8-avx2"} - set(KERNELS)))
def test_kernel_this_cpu_lacks_is_a_value_error(monkeypatch, name):
    monkeypatch.setenv("TASKSPEC_KNN_KERNEL", name)
    with pytest.raises(ValueError, match="lacks"):
        ts.knn(gaussian(3, 4, 0), gaussian(5, 4, 1), 2)


def test_kernel_forced_at_process_start():
    """The variable is read at every call, so a fresh process set by its environment runs that kernel;
    a bad name fails with a ValueError (never a crash)."""
    code = (
        "import numpy as np, taskspec_rs as ts\n"
        "x = np.random.default_rng(0).standard_normal((300, 20)).astype(np.float32)\n"
        "print(ts.knn_kernel(), ts.knn(x[:5], x, 3)[1][:, 0].tolist())\n"
    )
    for name in KERNELS:
        env = {**os.environ, "TASKSPEC_KNN_KERNEL": name}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split()[0] == name
        assert "[0, 1, 2, 3, 4]" in out.stdout
    env = {**os.environ, "TASKSPEC_KNN_KERNEL": "avx9000"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "ValueError: TASKSPEC_KNN_KERNEL" in out.stderr
