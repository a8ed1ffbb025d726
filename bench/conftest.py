"""Shared data and settings of the benchmark suite.

Default sizes finish in a few minutes on 2 cores; ``TASKSPEC_BENCH_LARGE=1``
selects the large sizes named in docs/PERFORMANCE.md. Every peer runs in the
same process on the same data with ``THREADS`` threads.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

LARGE = os.environ.get("TASKSPEC_BENCH_LARGE", "") not in ("", "0")
THREADS = int(os.environ.get("TASKSPEC_BENCH_THREADS", "2"))
DIM = 300
K = 10
RESULTS = Path(os.environ.get("TASKSPEC_BENCH_OUT", Path(__file__).parent / "results"))


def clustered(n: int, d: int = DIM, *, centres: int = 500, seed: int = 0) -> np.ndarray:
    """Embedding-like rows: noisy points around many centres, float32."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d), dtype=np.float32)
    out = rng.standard_normal((n, d), dtype=np.float32)
    out *= 0.6
    for s in range(0, n, 100_000):
        out[s : s + 100_000] += c[rng.integers(0, centres, min(100_000, n - s))]
    return out


def embedding_like(
    n: int, d: int = DIM, *, latent: int = 64, centres: int = 2000, spread: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Rows with the low intrinsic dimension of real word embeddings, float32.

    A mixture of ``centres`` Gaussians in a ``latent``-dimensional space,
    mapped linearly to ``d`` dimensions, plus small isotropic noise. Isotropic
    300-d noise (``clustered``) is a worst case no word-embedding space looks
    like; approximate search is benchmarked on this instead. The same
    ``seed`` gives the same space (map and centres), so sources and targets
    drawn with different ``sample`` seeds share it.
    """
    space = np.random.default_rng(1000)
    proj = space.standard_normal((latent, d), dtype=np.float32) / np.sqrt(latent)
    c = space.standard_normal((centres, latent), dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        z = c[rng.integers(0, centres, m)] + spread * rng.standard_normal((m, latent), dtype=np.float32)
        out[s : s + m] = z @ proj + 0.05 * rng.standard_normal((m, d), dtype=np.float32)
    return out


@pytest.fixture(scope="session", autouse=True)
def _limit_threads():
    import taskspec_rs
    from threadpoolctl import threadpool_limits

    assert taskspec_rs.build_profile() == "release", "benchmarks need a release build (pip install .)"
    with threadpool_limits(THREADS):
        yield


def record(name: str, row: dict) -> None:
    """Append one measured row to ``RESULTS/<name>.jsonl`` (read by make_report.py)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{name}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def pytest_collection_modifyitems(items):
    """Benchmarks may run long: lift the test suite's deadlock timeout for them."""
    for item in items:
        item.add_marker(pytest.mark.timeout(7200))
