"""Cross-task embedding projection: exact cosine kNN, LLM and LP.

Notation follows Sakuma & Yoshinaga (CoNLL 2019): ``x_gen`` / ``y_gen`` are
the general (cross-lingual) embeddings of the source / target vocabulary,
``x_spec`` the task-specific source embeddings learnt by the classifier and
``y_spec`` the projected task-specific target embeddings.

Every function converts its inputs once (``np.ascontiguousarray(a,
dtype=float32)``; C-contiguous float32 input is used without copying),
validates them and raises :class:`ValueError` / :class:`TypeError` naming the
argument. The heavy work runs in Rust without the GIL.

Zero vectors: cosine similarity is undefined for a zero-norm row, so any
zero row in ``x_gen`` or ``y_gen`` (or in ``knn``'s ``queries``/``base``) is
rejected with a :class:`ValueError` naming the row; drop such rows first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np

from . import _core
from ._checks import (
    Progress,
    as_matrix,
    check_k,
    check_num_threads,
    check_reg,
    check_rows,
    progress_callback,
    rows_source,
)
from ._core import NumericalError
from .ann import HnswIndex, resolve_index

__all__ = ["NumericalError", "knn", "llm_project", "llm_weights", "lp_project"]

#: Target rows handled per call of the core (bounds the temporary memory).
BLOCK_ROWS = 65536


def knn(
    queries: Any,
    base: Any,
    k: int,
    *,
    exclude_self: bool = False,
    method: str = "exact",
    hnsw: Union[None, Mapping[str, Any], HnswIndex] = None,
    num_threads: Optional[int] = None,
    progress: Progress = False,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by cosine similarity.

    Parameters
    ----------
    queries : array-like, shape (n, d)
        Query vectors (float32 or float64; any memory order).
    base : array-like, shape (m, d)
        Vectors searched.
    k : int
        Neighbours per query, ``1 <= k <= m`` (``m - 1`` with ``exclude_self``).
    exclude_self : bool, keyword-only
        ``queries`` and ``base`` are the same vocabulary (same row count);
        row ``i`` never returns ``i``.
    method : {"exact", "hnsw"}, keyword-only
        Exact blocked search in Rust, or an approximate HNSW graph (hnswlib).
        Exact search screens candidates with bfloat16 dot products where the
        CPU has AVX512-BF16 and re-ranks them in float64 (the answer is exact
        either way); :func:`knn_kernel` names the kernel in use, and
        ``TASKSPEC_KNN_KERNEL=fp32`` forces the float32 GEMM kernel.
    hnsw : dict or HnswIndex, keyword-only
        For ``method="hnsw"``: index parameters (``M``, ``ef_construction``,
        ``ef``) or a prebuilt :class:`~taskspec_rs.HnswIndex` over ``base``.
    num_threads : int, optional
        Worker threads; default ``TASKSPEC_NUM_THREADS`` or all cores.
    progress : bool or callable, keyword-only
        ``True`` draws a tqdm bar; a callable receives ``(done_rows, total_rows)``.

    Returns
    -------
    similarities : ndarray of float32, shape (n, k)
        Cosine similarities, best first; ties broken by the lower index (exact).
    indices : ndarray of int64, shape (n, k)
        Row indices into ``base``.
    """
    q = as_matrix(queries, "queries")
    b = as_matrix(base, "base")
    if q.shape[1] != b.shape[1]:
        raise ValueError(
            f"base: has dimension {b.shape[1]} but queries have {q.shape[1]}; both must live in the same space"
        )
    exclude_self = bool(exclude_self)
    if exclude_self and q.shape[0] != b.shape[0]:
        raise ValueError(
            f"exclude_self: needs queries and base to be the same vocabulary, got {q.shape[0]} and {b.shape[0]} rows"
        )
    limit = b.shape[0] - 1 if exclude_self else b.shape[0]
    k = check_k(k, limit, f"base has {b.shape[0]} rows" + (", one fewer with exclude_self" if exclude_self else ""))
    threads = check_num_threads(num_threads)
    _check_method(method, hnsw)
    if method == "hnsw":
        index, ef = resolve_index(hnsw, b, num_threads=threads, progress=progress)
        return index.search(q, k, ef=ef, exclude_self=exclude_self, num_threads=threads)
    cb, close = progress_callback(progress, "knn", q.shape[0])
    try:
        return _core.knn(q, b, k, exclude_self=exclude_self, num_threads=threads, progress=cb)
    finally:
        close()


def _check_method(method: str, hnsw: Any) -> None:
    if method not in ("exact", "hnsw"):
        raise ValueError(f"method/knn: must be 'exact' or 'hnsw', got {method!r}")
    if method == "exact" and hnsw is not None:
        raise ValueError("hnsw: index parameters were given but the search is exact; pass knn='hnsw' (method='hnsw')")


def _neighbors(neighbors: Any, n_rows: int, n_source: int) -> np.ndarray:
    arr = np.asarray(neighbors)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"neighbors: expected an integer array of source row indices, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != n_rows or arr.shape[1] == 0:
        raise ValueError(f"neighbors: expected shape ({n_rows}, k) with k >= 1, got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_source):
        raise ValueError(
            f"neighbors: indices must lie in 0..{n_source - 1} (rows of x_gen), got values in {arr.min()}..{arr.max()}"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def llm_weights(
    y_gen: Any,
    x_gen: Any,
    neighbors: Any,
    *,
    reg: float = 1e-3,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """Locally linear reconstruction weights.

    For each row ``i``, the weights ``alpha`` (summing to 1) that best
    reconstruct ``y_gen[i]`` from ``x_gen[neighbors[i]]``: solve
    ``(C + r I) alpha = 1`` with ``C_jl = (y - x_j).(y - x_l)`` and
    ``r = reg * trace(C)`` (``reg`` when the trace is 0), then normalise.
    Accumulated in float64, as scikit-learn's ``barycenter_weights``.

    Parameters
    ----------
    y_gen : array-like, shape (n, d)
    x_gen : array-like, shape (m, d)
    neighbors : int array-like, shape (n, k)
        Row indices into ``x_gen``.
    reg : float, keyword-only
        Ridge relative to the trace; ``0`` disables it (a singular Gram
        matrix then raises :class:`NumericalError`).
    num_threads : int, optional

    Returns
    -------
    ndarray of float32, shape (n, k)
    """
    y = as_matrix(y_gen, "y_gen")
    x = as_matrix(x_gen, "x_gen")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x_gen: has dimension {x.shape[1]} but y_gen has {y.shape[1]}")
    nb = _neighbors(neighbors, y.shape[0], x.shape[0])
    return _core.llm_weights(y, x, nb, reg=check_reg(reg), num_threads=check_num_threads(num_threads))


def _check_projection(x: np.ndarray, y: np.ndarray, xs: np.ndarray) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"y_gen: has dimension {y.shape[1]} but x_gen has {x.shape[1]}; "
            "the general embeddings of both languages must share one space"
        )
    if xs.shape[0] != x.shape[0]:
        raise ValueError(
            f"x_spec: has {xs.shape[0]} rows but x_gen has {x.shape[0]}; row i of both must be the same source word"
        )


def llm_project(
    x_gen: Any,
    y_gen: Any,
    x_spec: Any,
    k: int = 10,
    *,
    reg: float = 1e-3,
    exclude_self: bool = False,
    knn: str = "exact",
    hnsw: Union[None, Mapping[str, Any], HnswIndex] = None,
    metric: str = "cosine",
    csls_k: int = 10,
    margin: Optional[float] = None,
    device: Optional[str] = None,
    num_threads: Optional[int] = None,
    return_neighbors: bool = False,
    progress: Progress = False,
    out: Optional[np.ndarray] = None,
):
    """Locally linear mapping (LLM) of task-specific embeddings.

    ``y_spec[i] = sum_j alpha_ij x_spec[nbr_ij]`` where ``nbr_i`` are the
    ``k`` source words nearest (cosine, general space) to target word ``i``
    and ``alpha_i`` are its :func:`llm_weights`.

    Parameters
    ----------
    x_gen : array-like, shape (m, d)
        General embeddings of the source vocabulary.
    y_gen : array-like, shape (n, d)
        General embeddings of the target vocabulary (same space). May be a
        memory-mapped array: it is read in blocks of target rows.
    x_spec : array-like, shape (m, e)
        Task-specific source embeddings; row ``i`` is the word of ``x_gen[i]``.
    k : int
        Neighbours per target word, ``1 <= k <= m`` (``m - 1`` with ``exclude_self``).
    reg : float, keyword-only
        Gram regulariser (see :func:`llm_weights`).
    exclude_self : bool, keyword-only
        Project the source vocabulary onto itself (``y_gen`` is ``x_gen``):
        word ``i`` never uses itself as a neighbour. Used to tune ``k``.
    knn : {"exact", "hnsw"}, keyword-only
        Neighbour search: exact (Rust; see :func:`knn`) or approximate (HNSW).
    hnsw : dict or HnswIndex, keyword-only
        HNSW parameters (``M``, ``ef_construction``, ``ef``) or a prebuilt
        :class:`~taskspec_rs.HnswIndex` over ``x_gen`` (reuse it across ``k``).
    metric : {"cosine", "csls"}, keyword-only
        Neighbour ranking. ``"csls"`` (cross-domain similarity local scaling)
        ranks source word ``x`` for target ``y`` by ``2 cos(y, x) - r(x)``,
        where ``r(x)`` is the mean cosine of ``x`` to its ``csls_k`` nearest
        target words: it penalises hubs, source words near everything.
        Exact search only.
    csls_k : int, keyword-only
        Neighbourhood size of the CSLS penalty.
    margin : float, optional, keyword-only
        Adaptive k: target word ``i`` keeps only the neighbours whose score is
        within ``margin`` of its best one (at least 1, at most ``k``). Unused
        slots get neighbour ``-1`` and weight 0 in the returned arrays.
    device : str, optional, keyword-only
        Run the search and solves with torch on this device (``"cuda"``,
        ``"cuda:1"``, ``"cpu"``) instead of the Rust engine; exact search only.
    num_threads : int, optional
    return_neighbors : bool, keyword-only
        Also return the neighbour indices and weights.
    progress : bool or callable, keyword-only
    out : ndarray of float32, shape (n, e), optional
        Preallocated (e.g. ``numpy.memmap``) output written block by block,
        so that huge target vocabularies run in bounded memory.

    Returns
    -------
    y_spec : ndarray of float32, shape (n, e)
        Or ``(y_spec, neighbors int64 (n, k), weights float32 (n, k))``.
    """
    x = as_matrix(x_gen, "x_gen")
    xs = as_matrix(x_spec, "x_spec")
    y_src = rows_source(y_gen, "y_gen")
    n = y_src.shape[0]
    _check_projection(x, y_src, xs)
    exclude_self = bool(exclude_self)
    if exclude_self and n != x.shape[0]:
        raise ValueError(
            "exclude_self: needs y_gen to be the source vocabulary itself (same rows as x_gen), "
            f"got {n} and {x.shape[0]} rows"
        )
    m = x.shape[0]
    limit = m - 1 if exclude_self else m
    k = check_k(k, limit, f"x_gen has {m} rows" + (", one fewer with exclude_self" if exclude_self else ""))
    reg = check_reg(reg)
    threads = check_num_threads(num_threads)
    _check_method(knn, hnsw)
    e = xs.shape[1]
    if out is None:
        out = np.empty((n, e), dtype=np.float32)
    elif not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (n, e) and out.flags.writeable):
        raise ValueError(f"out: expected a writeable float32 array of shape ({n}, {e})")
    nbrs = np.empty((n, k), dtype=np.int64) if return_neighbors else None
    weights = np.empty((n, k), dtype=np.float32) if return_neighbors else None
    if metric not in ("cosine", "csls"):
        raise ValueError(f"metric: must be 'cosine' or 'csls', got {metric!r}")
    if margin is not None and (isinstance(margin, bool) or not np.isfinite(margin) or margin < 0):
        raise ValueError(f"margin: must be None or a finite number >= 0, got {margin!r}")
    index = ef = None
    bias = None
    if knn == "hnsw":
        if metric == "csls":
            raise ValueError("metric: 'csls' needs exact search; use knn='exact'")
        check_rows(x, "x_gen")
        index, ef = resolve_index(hnsw, x, num_threads=threads, progress=progress)
    if metric == "csls":
        bias = -0.5 * hub_scores(x, as_matrix(y_src, "y_gen"), csls_k, exclude_self=exclude_self, num_threads=threads)
    cb, close = progress_callback(progress, "llm_project", n)
    if device is not None:
        if index is not None or margin is not None:
            raise ValueError("device: the torch backend supports exact search without margin only")
        from .torch_backend import llm_project_torch

        y_all = as_matrix(y_src, "y_gen")
        check_rows(x, "x_gen")
        check_rows(y_all, "y_gen")
        if not np.isfinite(xs).all():
            raise ValueError("x_spec: contains NaN or inf")
        try:
            res = llm_project_torch(
                x, y_all, xs, k, reg=reg, exclude_self=exclude_self, bias=bias, device=device, progress=cb
            )
        except RuntimeError as exc:
            if "singular" in str(exc):
                raise NumericalError(f"a Gram matrix is singular; use reg > 0 ({exc})") from None
            raise
        finally:
            close()
        out[:] = res[0]
        return (out, res[1], res[2]) if return_neighbors else out
    try:
        for s in range(0, n, BLOCK_ROWS):
            yb = as_matrix(y_src[s : s + BLOCK_ROWS], "y_gen")
            block_cb = None if cb is None else (lambda done, _t, s=s: cb(s + done, n))
            if index is None and margin is None:
                yb_spec, nb, wb = _core.llm_project(
                    x,
                    yb,
                    xs,
                    k,
                    reg=reg,
                    exclude_self=exclude_self,
                    row_offset=s,
                    base_bias=bias,
                    num_threads=threads,
                    progress=block_cb,
                )
            else:
                if index is None:
                    sb, nb = (
                        _core.knn(yb, x, k, exclude_self=False, base_bias=bias, num_threads=threads)
                        if not exclude_self
                        else _self_knn(yb, x, k, s, bias, threads)
                    )
                else:
                    sb, nb = index.search(yb, k, ef=ef, exclude_self=exclude_self, row_offset=s, num_threads=threads)
                yb_spec, nb, wb = _project_neighbors(x, yb, xs, nb, sb, margin, reg, threads)
                if block_cb:
                    block_cb(len(yb), len(yb))
            out[s : s + len(yb)] = yb_spec
            if return_neighbors:
                nbrs[s : s + len(yb)] = nb
                weights[s : s + len(yb)] = wb
    finally:
        close()
    if return_neighbors:
        return out, nbrs, weights
    return out


def _self_knn(yb, x, k, offset, bias, threads):
    """kNN of source rows ``offset..`` among all source rows, never returning the row itself."""
    sb, nb = _core.knn(yb, x, k + 1, base_bias=bias, num_threads=threads)
    own = np.arange(offset, offset + len(yb))[:, None]
    keep = nb != own
    keep[keep.all(axis=1), -1] = False
    return sb[keep].reshape(len(yb), k), nb[keep].reshape(len(yb), k)


def margin_counts(scores: np.ndarray, margin: float) -> np.ndarray:
    """Adaptive k: per row, the number of neighbours scoring within ``margin`` of the best (at least 1)."""
    return np.maximum((scores >= scores[:, :1] - margin).sum(axis=1), 1)


def _project_neighbors(x, yb, xs, nb, sb, margin, reg, threads):
    """LLM from given neighbours; with ``margin``, each row keeps its neighbours within it of the best."""
    if margin is None:
        yb_spec, wb = _core.llm_project_neighbors(x, yb, xs, np.ascontiguousarray(nb), reg=reg, num_threads=threads)
        return yb_spec, nb, wb
    k = nb.shape[1]
    counts = margin_counts(sb, margin)
    yb_spec = np.empty((len(yb), xs.shape[1]), np.float32)
    wb = np.zeros((len(yb), k), np.float32)
    nb = nb.copy()
    for c in np.unique(counts):
        rows = np.flatnonzero(counts == c)
        spec, w = _core.llm_project_neighbors(
            x, np.ascontiguousarray(yb[rows]), xs, np.ascontiguousarray(nb[rows, :c]), reg=reg, num_threads=threads
        )
        yb_spec[rows] = spec
        wb[rows, :c] = w
        nb[rows, c:] = -1
    return yb_spec, nb, wb


def llm_from_neighbors(
    x_gen: Any,
    y_gen: Any,
    x_spec: Any,
    neighbors: Any,
    *,
    scores: Any = None,
    margin: Optional[float] = None,
    reg: float = 1e-3,
    num_threads: Optional[int] = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LLM from precomputed neighbours (one search reused for several k or margins).

    Parameters
    ----------
    x_gen, y_gen, x_spec
        As in :func:`llm_project`.
    neighbors : int array-like, shape (n, k)
        Row indices into ``x_gen``, best first (e.g. from :func:`knn`).
    scores : array-like, shape (n, k), optional
        Their similarities, best first; needed with ``margin``.
    margin : float, optional
        Adaptive k as in :func:`llm_project`.

    Returns
    -------
    (y_spec float32 (n, e), neighbors int64 (n, k), weights float32 (n, k))
        With ``margin``, unused neighbour slots are -1 with weight 0.
    """
    x, xs, y = _projection_inputs(x_gen, x_spec, y_gen)
    nb = _neighbors(neighbors, y.shape[0], x.shape[0])
    sb = None
    if margin is not None:
        if scores is None:
            raise ValueError("scores: the neighbours' similarities are needed with margin")
        sb = np.asarray(scores, dtype=np.float32)
        if sb.shape != nb.shape:
            raise ValueError(f"scores: expected shape {nb.shape}, got {sb.shape}")
        if isinstance(margin, bool) or not np.isfinite(margin) or margin < 0:
            raise ValueError(f"margin: must be None or a finite number >= 0, got {margin!r}")
    return _project_neighbors(x, y, xs, nb, sb, margin, check_reg(reg), check_num_threads(num_threads))


def hub_scores(
    x_gen: Any, y_gen: Any, csls_k: int = 10, *, exclude_self: bool = False, num_threads: Optional[int] = None
) -> np.ndarray:
    """Mean cosine of each source word to its ``csls_k`` nearest target words (CSLS's ``r_T``).

    With ``exclude_self`` (``y_gen`` is ``x_gen``) a word is not its own neighbour.
    Computed with the Rust exact kNN. Returns float32 of shape ``(m,)``.
    """
    x = as_matrix(x_gen, "x_gen")
    y = as_matrix(y_gen, "y_gen")
    limit = y.shape[0] - 1 if exclude_self else y.shape[0]
    csls_k = check_k(csls_k, limit, f"csls_k: y_gen has {y.shape[0]} rows")
    sims, _ = _core.knn(x, y, csls_k, exclude_self=exclude_self, num_threads=check_num_threads(num_threads))
    return np.ascontiguousarray(sims.mean(axis=1), dtype=np.float32)


def hubness(neighbors: np.ndarray, n_source: int, *, top: int = 10) -> dict:
    """How concentrated neighbour use is on a few source words (hubs).

    Returns the share of all neighbour slots taken by the ``top`` most used
    source words, the largest in-degree, the fraction of source words never
    used, and the skewness of the k-occurrence distribution.
    """
    nb = np.asarray(neighbors)
    nb = nb[nb >= 0]
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


def _projection_inputs(x_gen: Any, x_spec: Any, y_gen: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked matrices of a projection: ``(x_gen, x_spec, y_gen)`` as 2-D arrays of matching widths."""
    x = as_matrix(x_gen, "x_gen")
    xs = as_matrix(x_spec, "x_spec")
    y = as_matrix(y_gen, "y_gen")
    _check_projection(x, y, xs)
    return x, xs, y


def _products(
    x: np.ndarray, xs: np.ndarray, block_rows: int, *, with_gram: bool = True
) -> tuple[Optional[np.ndarray], np.ndarray]:
    """``(x^T x, x^T xs)`` in float64, accumulated over row blocks (checks finiteness).

    ``with_gram=False`` skips ``x^T x`` (returned as ``None``).
    """
    d, e = x.shape[1], xs.shape[1]
    gram = np.zeros((d, d)) if with_gram else None
    cross = np.zeros((d, e))
    for s in range(0, x.shape[0], block_rows):
        xb = x[s : s + block_rows].astype(np.float64)
        sb = xs[s : s + block_rows].astype(np.float64)
        for name, blk in (("x_gen", xb), ("x_spec", sb)):
            if not np.isfinite(blk).all():
                raise ValueError(f"{name}: contains NaN or inf (rows {s}..{s + len(blk) - 1})")
        if gram is not None:
            gram += xb.T @ xb
        cross += xb.T @ sb
    return gram, cross


def _apply(y: np.ndarray, w: np.ndarray, block_rows: int) -> np.ndarray:
    out = np.empty((y.shape[0], w.shape[1]), dtype=np.float32)
    for s in range(0, y.shape[0], block_rows):
        yb = y[s : s + block_rows].astype(np.float64)
        if not np.isfinite(yb).all():
            raise ValueError(f"y_gen: contains NaN or inf (rows {s}..{s + len(yb) - 1})")
        out[s : s + len(yb)] = yb @ w
    return out


def lp_project(x_gen: Any, x_spec: Any, y_gen: Any, *, block_rows: int = 65536) -> np.ndarray:
    """Linear projection (LP): least-squares ``W`` with ``x_gen W ≈ x_spec``, applied to ``y_gen``.

    ``W`` is the minimum-norm least-squares solution, computed in float64
    from the normal equations accumulated over row blocks, so memory stays
    bounded by ``d x (d + e)`` whatever the vocabulary size.

    Parameters
    ----------
    x_gen : array-like, shape (m, d)
    x_spec : array-like, shape (m, e)
    y_gen : array-like, shape (n, d)

    Returns
    -------
    y_spec : ndarray of float32, shape (n, e)
    """
    x, xs, y = _projection_inputs(x_gen, x_spec, y_gen)
    gram, cross = _products(x, xs, block_rows)
    return _apply(y, np.linalg.lstsq(gram, cross, rcond=None)[0], block_rows)


def orthogonal_project(x_gen: Any, x_spec: Any, y_gen: Any, *, block_rows: int = 65536) -> np.ndarray:
    """Orthogonal projection (Procrustes): ``W`` with orthonormal rows/columns minimising ``|x_gen W - x_spec|``.

    ``W = U V^T`` from the SVD ``x_gen^T x_spec = U S V^T``. Unlike LP it can
    only rotate (and reflect) the general space, so it cannot collapse or
    stretch directions the task never saw; applied to ``y_gen``.

    Parameters
    ----------
    x_gen : array-like, shape (m, d)
    x_spec : array-like, shape (m, e)
    y_gen : array-like, shape (n, d)

    Returns
    -------
    y_spec : ndarray of float32, shape (n, e)
    """
    x, xs, y = _projection_inputs(x_gen, x_spec, y_gen)
    _, cross = _products(x, xs, block_rows, with_gram=False)
    u, _, vt = np.linalg.svd(cross, full_matrices=False)
    return _apply(y, u @ vt, block_rows)
