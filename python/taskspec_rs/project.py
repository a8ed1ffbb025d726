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

import numbers
from typing import Any, Callable, Optional, Union

import numpy as np

from . import _core
from ._core import NumericalError

__all__ = ["knn", "llm_weights", "llm_project", "lp_project", "NumericalError"]

Progress = Union[bool, Callable[[int, int], Any], None]


def _matrix(a: Any, name: str) -> np.ndarray:
    """Return ``a`` as a 2-D C-contiguous float32 array or raise naming ``name``."""
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except ValueError as exc:  # ragged nested sequences
            raise ValueError(f"{name}: expected a 2-D array of equal-length rows ({exc})") from None
    if arr.dtype == object:
        raise TypeError(
            f"{name}: expected a float32/float64 array, got dtype object "
            "(ragged rows or non-numeric entries?)"
        )
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name}: expected a floating-point array (float32 or float64), got dtype {arr.dtype}; "
            f"convert with {name}.astype(numpy.float32)"
        )
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (words x dims), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: must be non-empty, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _num_threads(num_threads: Optional[int]) -> Optional[int]:
    if num_threads is None:
        return None
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads: expected a positive int or None, got {num_threads!r}")
    if num_threads <= 0:
        raise ValueError(f"num_threads: must be a positive int or None, got {num_threads}")
    return int(num_threads)


def _k(k: Any, limit: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k: expected a positive int, got {k!r}")
    if not 1 <= k <= limit:
        raise ValueError(f"k: must be between 1 and {limit} ({what}), got {k}")
    return int(k)


def _reg(reg: Any) -> float:
    if isinstance(reg, bool) or not isinstance(reg, numbers.Real):
        raise TypeError(f"reg: expected a non-negative float, got {reg!r}")
    reg = float(reg)
    if not np.isfinite(reg) or reg < 0:
        raise ValueError(f"reg: must be a finite number >= 0, got {reg}")
    return reg


def _progress(progress: Progress, desc: str, total: int) -> tuple[Optional[Callable], Callable]:
    """Turn ``progress`` (bool or callable) into a callback and a closer."""
    if progress is None or progress is False:
        return None, lambda: None
    if callable(progress):
        return progress, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="word")

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


def knn(
    queries: Any,
    base: Any,
    k: int,
    *,
    exclude_self: bool = False,
    num_threads: Optional[int] = None,
    progress: Progress = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours by cosine similarity.

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
    num_threads : int, optional
        Worker threads; default ``TASKSPEC_NUM_THREADS`` or all cores.
    progress : bool or callable, optional
        ``True`` draws a tqdm bar; a callable receives ``(done_rows, total_rows)``.

    Returns
    -------
    similarities : ndarray of float32, shape (n, k)
        Cosine similarities, best first; ties broken by the lower index.
    indices : ndarray of int64, shape (n, k)
        Row indices into ``base``.
    """
    q = _matrix(queries, "queries")
    b = _matrix(base, "base")
    if q.shape[1] != b.shape[1]:
        raise ValueError(
            f"base: has dimension {b.shape[1]} but queries have {q.shape[1]}; "
            "both must live in the same space"
        )
    exclude_self = bool(exclude_self)
    if exclude_self and q.shape[0] != b.shape[0]:
        raise ValueError(
            "exclude_self: needs queries and base to be the same vocabulary, "
            f"got {q.shape[0]} and {b.shape[0]} rows"
        )
    limit = b.shape[0] - 1 if exclude_self else b.shape[0]
    k = _k(k, limit, f"base has {b.shape[0]} rows" + (", one fewer with exclude_self" if exclude_self else ""))
    cb, close = _progress(progress, "knn", q.shape[0])
    try:
        return _core.knn(
            q, b, k, exclude_self=exclude_self, num_threads=_num_threads(num_threads), progress=cb
        )
    finally:
        close()


def _neighbors(neighbors: Any, n_rows: int, n_source: int) -> np.ndarray:
    arr = np.asarray(neighbors)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"neighbors: expected an integer array of source row indices, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != n_rows or arr.shape[1] == 0:
        raise ValueError(f"neighbors: expected shape ({n_rows}, k) with k >= 1, got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_source):
        raise ValueError(
            f"neighbors: indices must lie in 0..{n_source - 1} (rows of x_gen), "
            f"got values in {arr.min()}..{arr.max()}"
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
    y = _matrix(y_gen, "y_gen")
    x = _matrix(x_gen, "x_gen")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x_gen: has dimension {x.shape[1]} but y_gen has {y.shape[1]}")
    nb = _neighbors(neighbors, y.shape[0], x.shape[0])
    return _core.llm_weights(y, x, nb, reg=_reg(reg), num_threads=_num_threads(num_threads))


def _check_projection(x: np.ndarray, y: np.ndarray, xs: np.ndarray) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"y_gen: has dimension {y.shape[1]} but x_gen has {x.shape[1]}; "
            "the general embeddings of both languages must share one space"
        )
    if xs.shape[0] != x.shape[0]:
        raise ValueError(
            f"x_spec: has {xs.shape[0]} rows but x_gen has {x.shape[0]}; "
            "row i of both must be the same source word"
        )


def llm_project(
    x_gen: Any,
    y_gen: Any,
    x_spec: Any,
    k: int = 10,
    *,
    reg: float = 1e-3,
    exclude_self: bool = False,
    num_threads: Optional[int] = None,
    return_neighbors: bool = False,
    progress: Progress = False,
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
        General embeddings of the target vocabulary (same space).
    x_spec : array-like, shape (m, e)
        Task-specific source embeddings; row ``i`` is the word of ``x_gen[i]``.
    k : int
        Neighbours per target word, ``1 <= k <= m`` (``m - 1`` with ``exclude_self``).
    reg : float, keyword-only
        Gram regulariser (see :func:`llm_weights`).
    exclude_self : bool, keyword-only
        Project the source vocabulary onto itself (``y_gen`` is ``x_gen``):
        word ``i`` never uses itself as a neighbour. Used to tune ``k``.
    num_threads : int, optional
    return_neighbors : bool, keyword-only
        Also return the neighbour indices and weights.
    progress : bool or callable, keyword-only

    Returns
    -------
    y_spec : ndarray of float32, shape (n, e)
        Or ``(y_spec, neighbors int64 (n, k), weights float32 (n, k))``.
    """
    x = _matrix(x_gen, "x_gen")
    y = _matrix(y_gen, "y_gen")
    xs = _matrix(x_spec, "x_spec")
    _check_projection(x, y, xs)
    exclude_self = bool(exclude_self)
    if exclude_self and y.shape[0] != x.shape[0]:
        raise ValueError(
            "exclude_self: needs y_gen to be the source vocabulary itself (same rows as x_gen), "
            f"got {y.shape[0]} and {x.shape[0]} rows"
        )
    m = x.shape[0]
    limit = m - 1 if exclude_self else m
    k = _k(k, limit, f"x_gen has {m} rows" + (", one fewer with exclude_self" if exclude_self else ""))
    cb, close = _progress(progress, "llm_project", y.shape[0])
    try:
        y_spec, nbrs, weights = _core.llm_project(
            x,
            y,
            xs,
            k,
            reg=_reg(reg),
            exclude_self=exclude_self,
            num_threads=_num_threads(num_threads),
            progress=cb,
        )
    finally:
        close()
    if return_neighbors:
        return y_spec, nbrs, weights
    return y_spec


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
    x = _matrix(x_gen, "x_gen")
    xs = _matrix(x_spec, "x_spec")
    y = _matrix(y_gen, "y_gen")
    _check_projection(x, y, xs)
    d, e = x.shape[1], xs.shape[1]
    gram = np.zeros((d, d))
    cross = np.zeros((d, e))
    for s in range(0, x.shape[0], block_rows):
        xb = x[s : s + block_rows].astype(np.float64)
        sb = xs[s : s + block_rows].astype(np.float64)
        if not (np.isfinite(xb).all() and np.isfinite(sb).all()):
            bad = "x_gen" if not np.isfinite(xb).all() else "x_spec"
            raise ValueError(f"{bad}: contains NaN or inf (rows {s}..{s + len(xb) - 1})")
        gram += xb.T @ xb
        cross += xb.T @ sb
    w = np.linalg.lstsq(gram, cross, rcond=None)[0]
    out = np.empty((y.shape[0], e), dtype=np.float32)
    for s in range(0, y.shape[0], block_rows):
        yb = y[s : s + block_rows].astype(np.float64)
        if not np.isfinite(yb).all():
            raise ValueError(f"y_gen: contains NaN or inf (rows {s}..{s + len(yb) - 1})")
        out[s : s + len(yb)] = yb @ w
    return out
