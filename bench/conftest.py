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

import pytest

sys.path.insert(0, str(Path(__file__).parent))

LARGE = os.environ.get("TASKSPEC_BENCH_LARGE", "") not in ("", "0")
THREADS = int(os.environ.get("TASKSPEC_BENCH_THREADS", "2"))
K = 10
RESULTS = Path(os.environ.get("TASKSPEC_BENCH_OUT", Path(__file__).parent / "results"))

from datagen import DIM, clustered, embedding_like  # noqa: E402,F401  (re-exported for the bench files)


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
