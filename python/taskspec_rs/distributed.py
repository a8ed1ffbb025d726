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
from .project import LLMProjector

__all__ = ["llm_project_sharded"]


def _shard(x, xs, y, k, options):
    return LLMProjector(k, **options).fit(x, xs).transform(y)


def llm_project_sharded(
    x_gen: Any,
    x_spec: Any,
    y_gen: Any,
    k: int = 10,
    *,
    shards: int = 4,
    num_threads_per_shard: Optional[int] = 1,
    **options: Any,
) -> np.ndarray:
    """:func:`~taskspec_rs.llm_project` with target rows split over ``shards`` Ray tasks.

    Parameters
    ----------
    x_gen, x_spec, y_gen, k
        As in :func:`~taskspec_rs.llm_project`.
    shards : int, keyword-only
        Number of target-row shards (Ray tasks).
    num_threads_per_shard : int, optional, keyword-only
        Threads each task uses (``num_cpus`` requested from Ray).
    **options
        Other options of :class:`~taskspec_rs.LLMProjector` (``reg``,
        ``margin``, ``backend``, ``index`` as a dict of index parameters).
        ``metric="csls"`` is not supported: its hub penalty needs every
        target word, which a shard does not hold.

    Returns
    -------
    y_spec : ndarray of float32, shape (n, e)
    """
    from ._extras import require

    ray = require("ray", "llm_project_sharded")
    for bad in ("progress", "num_threads", "exclude_self", "out"):
        if bad in options:
            raise ValueError(f"{bad}: not supported by llm_project_sharded")
    if options.get("metric") == "csls":
        raise ValueError("metric: 'csls' is not supported when sharding")
    if isinstance(shards, bool) or not isinstance(shards, int) or shards <= 0:
        raise ValueError(f"shards: must be a positive int, got {shards!r}")
    threads = check_num_threads(num_threads_per_shard) or 1
    LLMProjector(k, **options)  # check the options before starting Ray
    x, xs, y = as_matrix(x_gen, "x_gen"), as_matrix(x_spec, "x_spec"), as_matrix(y_gen, "y_gen")
    if not ray.is_initialized():
        ray.init(num_cpus=max(shards * threads, 1), include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=threads)(_shard)
    refs = [ray.put(a) for a in (x, xs)]
    bounds = np.linspace(0, len(y), min(shards, len(y)) + 1).astype(int)
    opts = dict(options, num_threads=threads)
    futures = [remote.remote(refs[0], refs[1], y[a:b], k, opts) for a, b in zip(bounds, bounds[1:]) if b > a]
    return np.concatenate(ray.get(futures))
