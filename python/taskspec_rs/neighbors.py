"""One neighbour path: the top-k source rows for each target row.

Everything in taskspec-rs that needs nearest neighbours — LLM projection, k
tuning on the source self-projection, adaptive-k margins, the analyses,
alignment and lexicon induction — calls :func:`knn`. It takes

* a **metric**: ``"cosine"``, or ``"csls"`` (cross-domain similarity local
  scaling: a hub penalty ``-r(b)/2`` added to every base row, see
  :func:`hub_scores`);
* an **exclusion per query** (``exclude[i]`` is a base row query ``i`` must not
  return; ``exclude_self=True`` is ``exclude = arange(n)``), applied the same
  way for every backend: search ``k + 1``, then drop the excluded row (or the
  last one when it is absent);
* a **backend**, looked up in :data:`BACKENDS`: ``"exact"`` (the Rust engine),
  ``"ivf"`` (an inverted file searched with the Rust engine, approximate),
  ``"hnsw"`` (hnswlib, approximate) or ``"torch"`` (blocked matrix products on
  a torch device such as a GPU).

Adding a backend is one function ``search(queries, base, k, bias, opts)`` in
:data:`BACKENDS`; a backend with an index also has one resolver of its
``index=`` argument in :data:`INDEXED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np

from . import _core, ann, ivf
from ._checks import (
    Progress,
    as_matrix,
    check_choice,
    check_k,
    check_num_threads,
    check_output_size,
    check_rows,
    check_same_dim,
    progress_callback,
)
from .ann import HnswIndex
from .ivf import IvfIndex

__all__ = ["BACKENDS", "INDEXED", "METRICS", "hub_scores", "hubness", "knn", "margin_counts"]

METRICS = ("cosine", "csls")

CSLS_NEEDS_BIAS = (
    "metric: 'csls' needs an exact search of each candidate (a per-row score bias, which the HNSW graph "
    "cannot apply); use backend='exact', 'ivf' or 'torch'"
)

#: What ``index=`` accepts: ``None``, a dict of index parameters, or a prebuilt index.
IndexSpec = Union[None, Mapping[str, Any], HnswIndex, IvfIndex]

#: Backends that take ``index=``: name -> ``resolve_index(spec, base, *, num_threads, progress) -> index``.
INDEXED: dict[str, Callable[..., Any]] = {"hnsw": ann.resolve_index, "ivf": ivf.resolve_index}


@dataclass
class SearchOptions:
    """Backend settings of one search (checked by :func:`knn`)."""

    index: IndexSpec = None
    device: Optional[str] = None
    num_threads: Optional[int] = None
    progress: Progress = False


def _exact(q: np.ndarray, b: np.ndarray, k: int, bias: Optional[np.ndarray], opts: SearchOptions):
    cb, close = progress_callback(opts.progress, "knn", q.shape[0])
    try:
        return _core.knn(q, b, k, base_bias=bias, num_threads=opts.num_threads, progress=cb)
    finally:
        close()


def _hnsw(q: np.ndarray, b: np.ndarray, k: int, bias: Optional[np.ndarray], opts: SearchOptions):
    if bias is not None:
        raise ValueError(CSLS_NEEDS_BIAS)
    index = INDEXED["hnsw"](opts.index, b, num_threads=opts.num_threads, progress=opts.progress)
    return index.search(q, k, num_threads=opts.num_threads)


def _ivf(q: np.ndarray, b: np.ndarray, k: int, bias: Optional[np.ndarray], opts: SearchOptions):
    index = INDEXED["ivf"](opts.index, b, num_threads=opts.num_threads, progress=opts.progress)
    return index.search(q, k, bias=bias, num_threads=opts.num_threads, progress=opts.progress)


def _torch(q: np.ndarray, b: np.ndarray, k: int, bias: Optional[np.ndarray], opts: SearchOptions):
    from .torch_backend import knn_torch

    cb, close = progress_callback(opts.progress, "knn", q.shape[0])
    try:
        return knn_torch(q, b, k, bias=bias, device=opts.device, progress=cb)
    finally:
        close()


#: Neighbour backends: name -> ``search(queries, base, k, bias, opts) -> (sims, indices)``.
#: Inputs are checked float32 matrices; ``bias`` (or ``None``) is added to every base row's score.
BACKENDS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "exact": _exact,
    "ivf": _ivf,
    "hnsw": _hnsw,
    "torch": _torch,
}


def knn(
    queries: Any,
    base: Any,
    k: int,
    *,
    metric: str = "cosine",
    csls_k: int = 10,
    hub_penalty: Any = None,
    exclude: Any = None,
    exclude_self: bool = False,
    backend: str = "exact",
    index: IndexSpec = None,
    device: Optional[str] = None,
    num_threads: Optional[int] = None,
    progress: Progress = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best base rows of every query, best first.

    Parameters
    ----------
    queries : array-like, shape (n, d)
        Query vectors (float32 or float64; any memory order).
    base : array-like, shape (m, d)
        Vectors searched.
    k : int
        Neighbours per query, ``1 <= k <= m`` (``m - 1`` with an exclusion).
    metric : {"cosine", "csls"}, keyword-only
        ``"cosine"`` ranks by ``cos(q, b)``. ``"csls"`` ranks by
        ``cos(q, b) - r(b) / 2`` where ``r(b)`` is the mean cosine of ``b`` to
        its ``csls_k`` nearest queries (:func:`hub_scores`); this is CSLS's
        ranking (its query term is constant per query). Full CSLS is
        ``2 * score - r(q)``.
    csls_k : int, keyword-only
        Neighbourhood size of the CSLS penalty.
    hub_penalty : array-like, shape (m,), optional, keyword-only
        A precomputed ``r(b)`` (e.g. over a whole target vocabulary, or cached
        across calls); by default it is computed over ``queries``.
    exclude : int array-like, shape (n,), optional, keyword-only
        ``exclude[i]`` is a base row query ``i`` never returns (``-1``: none).
    exclude_self : bool, keyword-only
        ``queries`` and ``base`` are one vocabulary: row ``i`` never returns
        ``i`` (also in the CSLS penalty).
    backend : {"exact", "ivf", "hnsw", "torch"}, keyword-only
        Exact search in Rust (candidates screened with bfloat16 dot products
        where the CPU has AVX512-BF16, re-ranked in float64; the answer is
        exact either way, see :func:`knn_kernel`), an approximate inverted
        file searched exactly list by list (:class:`~taskspec_rs.IvfIndex`,
        see ``docs/ANN.md``), an approximate HNSW graph, or blocked matrix
        products with torch on ``device``.
    index : dict, IvfIndex or HnswIndex, keyword-only
        For ``backend="ivf"``: index parameters (``nlist``, ``nprobe``,
        ``spill``, ``target_recall``, ``seed``) or a prebuilt
        :class:`~taskspec_rs.IvfIndex` over ``base``. For ``backend="hnsw"``: ``M``, ``ef_construction``,
        ``ef`` or a prebuilt :class:`~taskspec_rs.HnswIndex`.
    device : str, keyword-only
        For ``backend="torch"``: the torch device (default ``"cuda"``).
    num_threads : int, optional
        Worker threads; default ``TASKSPEC_NUM_THREADS`` or all cores.
    progress : bool or callable, keyword-only
        ``True`` draws a tqdm bar; a callable receives ``(done_rows, total_rows)``.

    Returns
    -------
    scores : ndarray of float32, shape (n, k)
        Cosine similarities (or CSLS ranking scores), best first; ties go to
        the lower index (exact search).
    indices : ndarray of int64, shape (n, k)
        Row indices into ``base``.
    """
    q = as_matrix(queries, "queries")
    b = as_matrix(base, "base")
    check_same_dim(q, b, "queries", "base")
    check_rows(q, "queries")
    check_rows(b, "base")
    excl = exclusion(exclude, exclude_self, q.shape[0], b.shape[0])
    limit = b.shape[0] - (excl is not None)
    k = check_k(k, limit, f"base has {b.shape[0]} rows" + (", one fewer with an exclusion" if excl is not None else ""))
    opts = _options(backend, index, device, num_threads, progress)
    check_choice(metric, METRICS, "metric")
    bias = None
    if metric == "csls":
        penalty = _hub_penalty(hub_penalty, b, q, csls_k, exclude_self, opts.num_threads)
        bias = np.ascontiguousarray(-0.5 * penalty, dtype=np.float32)
    return search(q, b, k, bias=bias, exclude=excl, backend=backend, opts=opts)


def search(
    q: np.ndarray,
    b: np.ndarray,
    k: int,
    *,
    bias: Optional[np.ndarray] = None,
    exclude: Optional[np.ndarray] = None,
    backend: str = "exact",
    opts: Optional[SearchOptions] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`knn` on already checked inputs (used inside the package, block by block)."""
    run = BACKENDS[backend]
    opts = opts or SearchOptions()
    check_output_size(q.shape[0], k + (exclude is not None))
    if exclude is None:
        return run(q, b, k, bias, opts)
    sims, idx = run(q, b, k + 1, bias, opts)
    keep = idx != exclude[:, None]
    keep[keep.all(axis=1), -1] = False  # the excluded row was not found: drop the (k+1)-th instead
    n = q.shape[0]
    return np.ascontiguousarray(sims[keep].reshape(n, k)), np.ascontiguousarray(idx[keep].reshape(n, k))


def _options(backend: str, index: Any, device: Optional[str], num_threads: Any, progress: Progress) -> SearchOptions:
    check_backend_options(backend, index, device)
    return SearchOptions(index=index, device=device, num_threads=check_num_threads(num_threads), progress=progress)


def check_backend_options(backend: str, index: Any, device: Any) -> None:
    """Check ``backend`` and refuse ``index=`` / ``device=`` given to a backend that does not take them."""
    check_choice(backend, tuple(BACKENDS), "backend")
    if index is not None and backend not in INDEXED:
        owner = "ivf" if isinstance(index, IvfIndex) or _ivf_params(index) else "hnsw"
        raise ValueError(
            f"index: {owner.upper()} parameters were given but the backend is not '{owner}'; pass backend='{owner}'"
        )
    if device is not None and backend != "torch":
        raise ValueError("device: a torch device was given but the backend is not 'torch'; pass backend='torch'")


def _ivf_params(index: Any) -> bool:
    return isinstance(index, Mapping) and bool(index) and set(index) <= set(ivf.DEFAULT_IVF)


def exclusion(exclude: Any, exclude_self: bool, n: int, m: int) -> Optional[np.ndarray]:
    """The checked per-query exclusion (``None``: none) of ``n`` queries over ``m`` base rows."""
    if exclude_self:
        if exclude is not None:
            raise ValueError("exclude: give either exclude or exclude_self, not both")
        if n != m:
            raise ValueError(f"exclude_self: needs queries and base to be the same vocabulary, got {n} and {m} rows")
        return np.arange(n, dtype=np.int64)
    if exclude is None:
        return None
    arr = np.asarray(exclude)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"exclude: expected an integer array of base rows, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"exclude: expected shape ({n},), one base row (or -1) per query, got {arr.shape}")
    if arr.size and (arr.min() < -1 or arr.max() >= m):
        raise ValueError(f"exclude: values must lie in -1..{m - 1}, got {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


def _hub_penalty(
    hub_penalty: Any, b: np.ndarray, q: np.ndarray, csls_k: int, exclude_self: bool, threads: Optional[int]
) -> np.ndarray:
    if hub_penalty is None:
        return hub_scores(b, q, csls_k, exclude_self=exclude_self, num_threads=threads)
    r = np.asarray(hub_penalty, dtype=np.float32)
    if r.shape != (b.shape[0],) or not np.isfinite(r).all():
        raise ValueError(f"hub_penalty: expected {b.shape[0]} finite values (one per base row), got shape {r.shape}")
    return r


def hub_scores(
    x_gen: Any, y_gen: Any, csls_k: int = 10, *, exclude_self: bool = False, num_threads: Optional[int] = None
) -> np.ndarray:
    """Mean cosine of each source word to its ``csls_k`` nearest target words (CSLS's ``r``).

    ``csls_k`` is clipped to the rows available. With ``exclude_self``
    (``y_gen`` is ``x_gen``) a word is not its own neighbour. Computed with
    the exact Rust kNN. Returns float32 of shape ``(m,)``.
    """
    x = as_matrix(x_gen, "x_gen")
    y = as_matrix(y_gen, "y_gen")
    check_k(csls_k, np.iinfo(np.int64).max, "any positive int", name="csls_k")
    csls_k = min(int(csls_k), y.shape[0] - bool(exclude_self))
    sims, _ = knn(x, y, csls_k, exclude_self=exclude_self, num_threads=num_threads)
    return np.ascontiguousarray(sims.mean(axis=1), dtype=np.float32)


def margin_counts(scores: np.ndarray, margin: float) -> np.ndarray:
    """Adaptive k: per row, the number of neighbours scoring within ``margin`` of the best (at least 1)."""
    return np.maximum((scores >= scores[:, :1] - margin).sum(axis=1), 1)


def hubness(neighbors: np.ndarray, n_source: int, *, top: int = 10) -> dict:
    """How concentrated neighbour use is on a few source words (hubs).

    Returns the share of all neighbour slots taken by the ``top`` most used
    source words, the largest in-degree, the fraction of source words never
    used, and the skewness of the k-occurrence distribution. Slots of ``-1``
    (unused, adaptive k) are ignored.
    """
    nb = np.asarray(neighbors)
    if nb.dtype.kind not in "iu":
        raise TypeError(f"neighbors: expected an integer array of source rows, got dtype {nb.dtype}")
    nb = nb[nb >= 0]
    if isinstance(n_source, bool) or not isinstance(n_source, (int, np.integer)) or n_source < 1:
        raise TypeError(f"n_source: expected a positive int, got {n_source!r}")
    if nb.size and nb.max() >= n_source:
        raise ValueError(f"n_source: {n_source} is not above the largest neighbour index {nb.max()}")
    if n_source > 2**31:
        raise ValueError(f"n_source: must be at most 2**31 (the number of source words), got {n_source}")
    counts = np.bincount(nb, minlength=n_source).astype(np.float64)
    share = float(np.sort(counts)[::-1][:top].sum() / max(counts.sum(), 1))
    sd = counts.std()
    skew = float(((counts - counts.mean()) ** 3).mean() / sd**3) if sd > 0 else 0.0
    return {
        "top_share": share,
        "max_in_degree": int(counts.max(initial=0)),
        "unused_fraction": float((counts == 0).mean()),
        "k_occurrence_skew": skew,
    }
