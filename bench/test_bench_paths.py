"""Time against vocabulary size for every neighbour path: kNN of n target words among n source words.

d = 300, k = 10, embedding-like data, ``THREADS`` threads. Paths: the exact engine with each kernel this
CPU runs (``ts.knn_kernels()``, forced with ``TASKSPEC_KNN_KERNEL``), the IVF path (index build included),
faiss ``IndexFlatIP`` and faiss ``IndexIVFFlat`` (build included, ``nprobe`` doubled until recall@10 >= 0.95).
Default sizes n = 10^4, 3*10^4, 10^5; ``TASKSPEC_BENCH_LARGE=1`` adds 3*10^5 and 10^6. Above
``FULL_MAX`` the exact paths are timed on a sample of ``SAMPLE`` targets and scaled to all n (their cost is
linear in the targets; the row says so); the approximate paths always run in full, and their recall@10 is
measured on the sample against the exact answer. ``bench/make_report.py`` draws ``docs/paths.png`` from
``paths.jsonl``, with the GPU figures of ``docs/data/gpu_check_h200.json``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import taskspec_rs as ts
from conftest import DIM, LARGE, THREADS, K, embedding_like, record

SIZES = [10_000, 30_000, 100_000] + ([300_000, 1_000_000] if LARGE else [])
FULL_MAX = 100_000
SAMPLE = 20_000
RECALL = 0.95
_data: dict = {}
_truth: dict = {}


def data(n: int):
    if n not in _data:
        _data.clear()
        _data[n] = embedding_like(n, seed=31), embedding_like(n, seed=32)
    return _data[n]


def truth(n: int) -> np.ndarray:
    """Exact neighbours of the sampled targets (the first ``min(n, SAMPLE)``)."""
    if n not in _truth:
        x, y = data(n)
        _truth[n] = ts.knn(y[: min(n, SAMPLE)], x, K, num_threads=THREADS)[1]
    return _truth[n]


def recall(idx: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(idx, ref)]))


def faiss_ivf(x: np.ndarray, y: np.ndarray, ref: np.ndarray):
    """faiss IndexIVFFlat (nlist = 4 sqrt(n), trained on 64 rows per list): build, then the smallest power-of-two
    nprobe reaching ``RECALL`` on the sample; returns (seconds of build + that search, recall, nprobe)."""
    import faiss
    from peers import normalise

    faiss.omp_set_num_threads(THREADS)
    t0 = time.perf_counter()
    xn, yn = normalise(x), normalise(y)
    nlist = int(4 * np.sqrt(len(x)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    index.train(xn[rng.choice(len(xn), min(len(xn), 64 * nlist), replace=False)])
    index.add(xn)
    build = time.perf_counter() - t0
    nprobe = 1
    while True:
        index.nprobe = nprobe
        r = recall(index.search(yn[: len(ref)], K)[1], ref)
        if r >= RECALL or nprobe >= nlist:
            break
        nprobe *= 2
    t0 = time.perf_counter()
    idx = index.search(yn, K)[1]
    return build + time.perf_counter() - t0, recall(idx[: len(ref)], ref), nprobe


def exact_path(kernel: str):
    def run(x, y, monkeypatch):
        monkeypatch.setenv("TASKSPEC_KNN_KERNEL", kernel)
        return ts.knn(y, x, K, num_threads=THREADS)[1]

    return run


def faiss_flat(x, y, monkeypatch):
    from peers import faiss_knn

    return faiss_knn(y, x, K, THREADS)[1]


EXACT = {f"exact {k}": exact_path(k) for k in ts.knn_kernels()} | {"faiss IndexFlatIP": faiss_flat}


@pytest.mark.parametrize(("n", "path"), [(n, p) for n in SIZES for p in EXACT])
def test_exact_paths(n, path, monkeypatch):
    if path.startswith("faiss"):
        pytest.importorskip("faiss")
    x, y = data(n)
    m = n if n <= FULL_MAX else SAMPLE
    t0 = time.perf_counter()
    idx = EXACT[path](x, y[:m], monkeypatch)
    seconds = (time.perf_counter() - t0) * n / m
    assert recall(idx[: min(m, SAMPLE)], truth(n)[:m]) >= 0.999
    record("paths", {"path": path, "n": n, "seconds": seconds, "recall": 1.0, "sampled_targets": m if m < n else None})


@pytest.mark.parametrize(("n", "path"), [(n, p) for n in SIZES for p in ("ivf", "faiss IndexIVFFlat")])
def test_approximate_paths(n, path):
    x, y = data(n)
    ref = truth(n)
    extra = {}
    if path == "ivf":
        t0 = time.perf_counter()
        idx = ts.knn(y, x, K, backend="ivf", num_threads=THREADS)[1]
        seconds, r = time.perf_counter() - t0, recall(idx[: len(ref)], ref)
    else:
        pytest.importorskip("faiss")
        seconds, r, extra["nprobe"] = faiss_ivf(x, y, ref)
    record("paths", {"path": path, "n": n, "seconds": seconds, "recall": r, "sampled_targets": None, **extra})
    print(f"\n{path} n={n:,}: {seconds:.2f} s, recall@10 {r:.3f}")
    assert r >= RECALL
