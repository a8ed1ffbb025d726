"""Sharded projection: ``llm_project`` split by target rows over Ray workers.

Projection is independent per target word, so target rows are cut into
shards, each projected by a Ray task against the same source arrays (put in
Ray's object store once), and the shards are concatenated in order. Results
are identical to a single-process :func:`taskspec_rs.llm_project` call.

Ray is optional (``pip install "taskspec-rs[distributed]"``); connect to a
cluster with ``ray.init(address=...)`` before calling, or let this module
start a local one.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._checks import as_matrix, check_num_threads
from .project import llm_project

__all__ = ["llm_project_sharded"]


def _shard(x, y, xs, k, kwargs):
    return llm_project(x, y, xs, k, return_neighbors=True, **kwargs)


def llm_project_sharded(
    x_gen: Any,
    y_gen: Any,
    x_spec: Any,
    k: int = 10,
    *,
    shards: int = 4,
    num_threads_per_shard: Optional[int] = 1,
    return_neighbors: bool = False,
    **kwargs: Any,
):
    """:func:`~taskspec_rs.llm_project` with target rows split over ``shards`` Ray tasks.

    Parameters
    ----------
    x_gen, y_gen, x_spec, k
        As in :func:`~taskspec_rs.llm_project`.
    shards : int, keyword-only
        Number of target-row shards (Ray tasks).
    num_threads_per_shard : int, optional, keyword-only
        Threads each task uses (``num_cpus`` requested from Ray).
    return_neighbors : bool, keyword-only
    **kwargs
        Other keyword options of ``llm_project`` (``reg``, ``metric``,
        ``margin``, ``knn``, ``hnsw`` parameters as a dict). ``exclude_self``
        is not supported (shards do not hold the whole source vocabulary's
        row numbering); project the source onto itself in one process.
    """
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("llm_project_sharded needs Ray: pip install 'taskspec-rs[distributed]'") from None
    if kwargs.get("exclude_self"):
        raise ValueError("exclude_self: not supported when sharding; call llm_project in one process")
    for bad in ("out", "progress", "num_threads"):
        if bad in kwargs:
            raise ValueError(f"{bad}: not supported by llm_project_sharded")
    if isinstance(shards, bool) or not isinstance(shards, int) or shards <= 0:
        raise ValueError(f"shards: must be a positive int, got {shards!r}")
    threads = check_num_threads(num_threads_per_shard) or 1
    x = as_matrix(x_gen, "x_gen")
    y = as_matrix(y_gen, "y_gen")
    xs = as_matrix(x_spec, "x_spec")
    if kwargs.get("metric") == "csls":
        # The hub penalty needs every target word: compute it once here.
        raise ValueError("metric: 'csls' is not supported when sharding")
    if not ray.is_initialized():
        ray.init(num_cpus=max(shards * threads, 1), include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=threads)(_shard)
    refs = [ray.put(a) for a in (x, xs)]
    bounds = np.linspace(0, len(y), min(shards, len(y)) + 1).astype(int)
    opts = dict(kwargs, num_threads=threads)
    futures = [remote.remote(refs[0], y[a:b], refs[1], k, opts) for a, b in zip(bounds, bounds[1:]) if b > a]
    parts = ray.get(futures)
    y_spec = np.concatenate([p[0] for p in parts])
    if return_neighbors:
        return y_spec, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    return y_spec
