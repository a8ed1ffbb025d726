"""Cross-task embedding projection: LLM, LP and orthogonal maps.

Notation follows Sakuma & Yoshinaga (CoNLL 2019): ``x_gen`` / ``y_gen`` are
the general (cross-lingual) embeddings of the source / target vocabulary,
``x_spec`` the task-specific source embeddings learnt by the classifier and
``y_spec`` the projected task-specific target embeddings.

Every projection has one shape, as a scikit-learn transformer: fitted on the
source, ``fit(x_gen, x_spec)``, then applied to each target language,
``transform(y_gen)``. The fitted object keeps what every language and every
``k`` reuse (the checked source matrices, an IVF or HNSW index). The functions
:func:`llm_project`, :func:`lp_project` and :func:`orthogonal_project` are
one-call shortcuts taking ``(x_gen, x_spec, y_gen)`` in that order.

Inputs are converted once (C-contiguous float32 input is used without
copying) and validated here, raising :class:`ValueError` / :class:`TypeError`
naming the argument; the heavy work runs in Rust without the GIL. Zero
vectors: cosine similarity is undefined for a zero-norm row, so a zero row in
``x_gen`` or ``y_gen`` is rejected with an error naming the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _core
from ._checks import (
    MAX_LLM_K,
    Progress,
    as_matrix,
    check_choice,
    check_k,
    check_margin,
    check_num_threads,
    check_reg,
    check_rows,
    check_same_dim,
    progress_callback,
    rows_source,
)
from .neighbors import (
    CSLS_NEEDS_BIAS,
    INDEXED,
    METRICS,
    IndexSpec,
    SearchOptions,
    check_backend_options,
    exclusion,
    hub_scores,
    margin_counts,
    search,
)

__all__ = [
    "LLMProjector",
    "LinearProjector",
    "Projection",
    "llm_from_neighbors",
    "llm_project",
    "llm_weights",
    "lp_project",
    "orthogonal_project",
    "procrustes",
]

#: Target rows handled per call of the core (bounds the temporary memory).
BLOCK_ROWS = 65536
#: The IVF search prepares each list it probes once per call: it takes blocks this many times larger.
IVF_BLOCK_FACTOR = 4


@dataclass(frozen=True)
class Projection:
    """The result of an LLM projection.

    Attributes
    ----------
    y_spec : ndarray of float32, shape (n, e)
        Task-specific target embeddings.
    neighbors : ndarray of int64, shape (n, k)
        Source rows used for each target row, best first (``-1``: unused slot
        under an adaptive-k ``margin``).
    weights : ndarray of float32, shape (n, k)
        Their reconstruction weights (0 for unused slots); each row sums to 1.
    """

    y_spec: np.ndarray
    neighbors: np.ndarray
    weights: np.ndarray


def _check_x_spec(x: np.ndarray, xs: np.ndarray) -> None:
    if xs.shape[0] != x.shape[0]:
        raise ValueError(
            f"x_spec: has {xs.shape[0]} rows but x_gen has {x.shape[0]}; row i of both must be the same source word"
        )
    bad = np.flatnonzero(~np.isfinite(xs).all(axis=1))
    if bad.size:
        raise ValueError(f"x_spec: row {bad[0]} contains NaN or inf; clean the input or drop the row")


def _source(x_gen: Any, x_spec: Any) -> tuple[np.ndarray, np.ndarray]:
    """The checked source matrices of a fit: ``x_gen`` (no NaN/zero rows) and ``x_spec`` (same rows)."""
    x = as_matrix(x_gen, "x_gen")
    xs = as_matrix(x_spec, "x_spec")
    _check_x_spec(x, xs)
    check_rows(x, "x_gen")
    return x, xs


def _target_block(y_src: np.ndarray, s: int, e: int, x: np.ndarray) -> np.ndarray:
    yb = as_matrix(y_src[s:e], "y_gen")
    check_same_dim(x, yb, "x_gen", "y_gen")
    check_rows(yb, "y_gen")
    return yb


def _neighbor_indices(neighbors: Any, n_rows: int, n_source: int) -> np.ndarray:
    arr = np.asarray(neighbors)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"neighbors: expected an integer array of source row indices, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != n_rows or arr.shape[1] == 0:
        raise ValueError(f"neighbors: expected shape ({n_rows}, k) with k >= 1, got {arr.shape}")
    if arr.min() < 0 or arr.max() >= n_source:
        raise ValueError(
            f"neighbors: indices must lie in 0..{n_source - 1} (rows of x_gen), got values in {arr.min()}..{arr.max()}"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


class LLMProjector:
    """Locally linear mapping (LLM): ``y_spec[i] = sum_j alpha_ij x_spec[nbr_ij]``.

    ``nbr_i`` are the ``k`` source words nearest to target word ``i`` in the
    general space and ``alpha_i`` the weights (summing to 1) that best
    reconstruct ``y_gen[i]`` from ``x_gen[nbr_i]`` (:func:`llm_weights`).

    Parameters
    ----------
    k : int
        Neighbours per target word.
    reg : float, keyword-only
        Gram regulariser, relative to its trace (see :func:`llm_weights`).
    metric : {"cosine", "csls"}, keyword-only
        Neighbour ranking (see :func:`taskspec_rs.knn`); the CSLS penalty of a
        source word is its mean cosine to its ``csls_k`` nearest target words.
    csls_k : int, keyword-only
    margin : float, optional, keyword-only
        Adaptive k: target word ``i`` keeps only the neighbours whose score is
        within ``margin`` of its best one (at least 1, at most ``k``).
    backend : {"exact", "ivf", "hnsw", "torch"}, keyword-only
        Neighbour search (see :func:`taskspec_rs.knn`). ``"torch"`` also does
        the Gram solves with torch on ``device``.
    index : dict, IvfIndex or HnswIndex, keyword-only
        Index parameters or a prebuilt index over ``x_gen`` (``backend="ivf"``
        or ``"hnsw"``); built once in :meth:`fit` and reused for every target
        and ``k``.
    device : str, keyword-only
        Torch device for ``backend="torch"`` (default ``"cuda"``).
    num_threads : int, optional
    progress : bool or callable, keyword-only

    Attributes
    ----------
    x_gen_, x_spec_ : ndarray
        The checked source matrices (set by :meth:`fit`).
    index_ : IvfIndex, HnswIndex or None
        The index over ``x_gen_`` (``backend="ivf"`` or ``"hnsw"``).
    """

    def __init__(
        self,
        k: int = 10,
        *,
        reg: float = 1e-3,
        metric: str = "cosine",
        csls_k: int = 10,
        margin: Optional[float] = None,
        backend: str = "exact",
        index: IndexSpec = None,
        device: Optional[str] = None,
        num_threads: Optional[int] = None,
        progress: Progress = False,
    ) -> None:
        self.k = check_k(k, MAX_LLM_K, "neighbours per word of an LLM projection")
        self.reg = check_reg(reg)
        self.metric = check_choice(metric, METRICS, "metric")
        self.csls_k = check_k(csls_k, np.iinfo(np.int64).max, "any positive int", name="csls_k")
        self.margin = check_margin(margin)
        check_backend_options(backend, index, device)
        if backend == "hnsw" and metric == "csls":
            raise ValueError(CSLS_NEEDS_BIAS)
        self.backend, self.index, self.device = backend, index, device
        self.num_threads = check_num_threads(num_threads)
        self.progress = progress

    def fit(self, x_gen: Any, x_spec: Any) -> LLMProjector:
        """Keep the source: general ``x_gen`` (m, d) and task-specific ``x_spec`` (m, e), row i the same word."""
        self.x_gen_, self.x_spec_ = _source(x_gen, x_spec)
        self.index_ = None
        if self.backend in INDEXED:
            resolve = INDEXED[self.backend]
            self.index_ = resolve(self.index, self.x_gen_, num_threads=self.num_threads, progress=self.progress)
        return self

    def transform(
        self, y_gen: Any, *, exclude: Any = None, exclude_self: bool = False, out: Optional[np.ndarray] = None
    ) -> np.ndarray:
        """``y_spec`` for the target general vectors ``y_gen`` (see :meth:`project`)."""
        return self.project(y_gen, exclude=exclude, exclude_self=exclude_self, out=out).y_spec

    def project(
        self, y_gen: Any, *, exclude: Any = None, exclude_self: bool = False, out: Optional[np.ndarray] = None
    ) -> Projection:
        """Project ``y_gen`` (n, d); returns ``y_spec`` with the neighbours and weights used.

        Parameters
        ----------
        y_gen : array-like, shape (n, d)
            Target general vectors (same space as ``x_gen``). May be a
            memory-mapped array: it is read in blocks of target rows.
        exclude : int array-like, shape (n,), optional
            ``exclude[i]`` is a source row target ``i`` must not use (``-1``:
            none), e.g. the word itself when projecting the source vocabulary
            onto itself to tune ``k``.
        exclude_self : bool
            ``y_gen`` is ``x_gen``: row ``i`` never uses row ``i``.
        out : ndarray of float32, shape (n, e), optional
            Preallocated (e.g. ``numpy.memmap``) output written block by block,
            so that huge target vocabularies run in bounded memory.
        """
        x, xs = self._fitted()
        y_src = rows_source(y_gen, "y_gen")
        n, m = y_src.shape[0], x.shape[0]
        excl = exclusion(exclude, exclude_self, n, m)
        what = f"x_gen has {m} rows" + (", one fewer with an exclusion" if excl is not None else "")
        k = check_k(self.k, m - (excl is not None), what)
        out = _output(out, n, xs.shape[1])
        bias = self._bias(y_src, exclude_self)
        nbrs, weights = np.empty((n, k), np.int64), np.empty((n, k), np.float32)
        cb, close = progress_callback(self.progress, "llm_project", n)
        try:
            step = BLOCK_ROWS * (IVF_BLOCK_FACTOR if self.backend == "ivf" else 1)
            for s in range(0, n, step):
                e = min(s + step, n)
                yb = _target_block(y_src, s, e, x)
                block_excl = None if excl is None else excl[s:e]
                out[s:e], nbrs[s:e], weights[s:e] = self._project_block(yb, k, bias, block_excl, s, n, cb)
        finally:
            close()
        return Projection(out, nbrs, weights)

    def from_neighbors(self, y_gen: Any, neighbors: Any, *, scores: Any = None) -> Projection:
        """Project ``y_gen`` from precomputed neighbours (one search reused for several k or margins).

        ``neighbors`` (n, k) are rows of ``x_gen``, best first (e.g. from
        :func:`taskspec_rs.knn`); ``scores`` are their scores, needed with a
        ``margin``. The projector's ``k`` and backend are not used; the Gram
        solves run in Rust (or with torch for ``backend="torch"``).
        """
        x, xs = self._fitted()
        y = _target_block(rows_source(y_gen, "y_gen"), 0, None, x)
        nb = _neighbor_indices(neighbors, y.shape[0], x.shape[0])
        sb = None
        if self.margin is not None:
            if scores is None:
                raise ValueError("scores: the neighbours' scores are needed with margin")
            sb = np.asarray(scores, dtype=np.float32)
            if sb.shape != nb.shape:
                raise ValueError(f"scores: expected shape {nb.shape}, got {sb.shape}")
        return _from_neighbors(x, xs, y, nb, sb, self.margin, self.reg, self.num_threads, self._solver_device())

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "x_gen_"):
            raise ValueError("LLMProjector: call fit(x_gen, x_spec) before projecting")
        return self.x_gen_, self.x_spec_

    def _bias(self, y_src: np.ndarray, exclude_self: bool) -> Optional[np.ndarray]:
        if self.metric != "csls":
            return None
        y_all = as_matrix(y_src, "y_gen")
        r = hub_scores(self.x_gen_, y_all, self.csls_k, exclude_self=exclude_self, num_threads=self.num_threads)
        return np.ascontiguousarray(-0.5 * r, dtype=np.float32)

    def _project_block(self, yb, k, bias, excl, start, total, cb):
        x, xs = self.x_gen_, self.x_spec_
        block_cb = None if cb is None else (lambda done, _t: cb(start + done, total))
        if self.backend == "exact" and excl is None and self.margin is None:
            return _core.llm_project(
                x, yb, xs, k, reg=self.reg, base_bias=bias, num_threads=self.num_threads, progress=block_cb
            )
        opts = SearchOptions(index=self.index_, device=self.device, num_threads=self.num_threads)
        sb, nb = search(yb, x, k, bias=bias, exclude=excl, backend=self.backend, opts=opts)
        res = _from_neighbors(x, xs, yb, nb, sb, self.margin, self.reg, self.num_threads, self._solver_device())
        if block_cb:
            block_cb(len(yb), len(yb))
        return res.y_spec, res.neighbors, res.weights

    def _solver_device(self) -> Optional[str]:
        """The torch device the Gram solves run on (``None``: the Rust engine)."""
        return (self.device or "cuda") if self.backend == "torch" else None


def _output(out: Optional[np.ndarray], n: int, e: int) -> np.ndarray:
    if out is None:
        return np.empty((n, e), dtype=np.float32)
    if not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (n, e) and out.flags.writeable):
        raise ValueError(f"out: expected a writeable float32 array of shape ({n}, {e})")
    return out


def _solve(x, yb, xs, nb, reg, threads, device) -> tuple[np.ndarray, np.ndarray]:
    """``(y_spec, weights)`` from given neighbours, by the Rust engine or by torch on ``device``."""
    if device is None:
        return _core.llm_project_neighbors(x, yb, xs, np.ascontiguousarray(nb), reg=reg, num_threads=threads)
    from .torch_backend import llm_project_torch

    return llm_project_torch(x, yb, xs, np.ascontiguousarray(nb), reg=reg, device=device)


def _from_neighbors(x, xs, yb, nb, sb, margin, reg, threads, device=None) -> Projection:
    """LLM from given neighbours; with ``margin``, each row keeps its neighbours within it of the best."""
    if margin is None:
        spec, w = _solve(x, yb, xs, nb, reg, threads, device)
        return Projection(spec, nb, w)
    k = nb.shape[1]
    counts = margin_counts(sb, margin)
    spec = np.empty((len(yb), xs.shape[1]), np.float32)
    w = np.zeros((len(yb), k), np.float32)
    nb = nb.copy()
    for c in np.unique(counts):
        rows = np.flatnonzero(counts == c)
        spec[rows], w[rows, :c] = _solve(x, np.ascontiguousarray(yb[rows]), xs, nb[rows, :c], reg, threads, device)
        nb[rows, c:] = -1
    return Projection(spec, nb, w)


def llm_project(
    x_gen: Any,
    x_spec: Any,
    y_gen: Any,
    k: int = 10,
    *,
    exclude_self: bool = False,
    out: Optional[np.ndarray] = None,
    **options: Any,
) -> np.ndarray:
    """Locally linear mapping in one call: ``LLMProjector(k, **options).fit(x_gen, x_spec)`` applied to ``y_gen``.

    Parameters
    ----------
    x_gen : array-like, shape (m, d)
        General embeddings of the source vocabulary.
    x_spec : array-like, shape (m, e)
        Task-specific source embeddings; row ``i`` is the word of ``x_gen[i]``.
    y_gen : array-like, shape (n, d)
        General embeddings of the target vocabulary (same space).
    k : int
        Neighbours per target word.
    exclude_self : bool, keyword-only
        ``y_gen`` is ``x_gen``: word ``i`` never uses itself (to tune ``k``).
    out : ndarray of float32, shape (n, e), optional, keyword-only
        Preallocated output (e.g. a ``numpy.memmap``).
    **options
        ``reg``, ``metric``, ``csls_k``, ``margin``, ``backend``, ``index``,
        ``device``, ``num_threads``, ``progress`` of :class:`LLMProjector`.

    Returns
    -------
    y_spec : ndarray of float32, shape (n, e)
        For the neighbours and weights, use :meth:`LLMProjector.project`.
    """
    projector = LLMProjector(k, **options).fit(x_gen, x_spec)
    return projector.project(y_gen, exclude_self=exclude_self, out=out).y_spec


def llm_weights(
    x_gen: Any, y_gen: Any, neighbors: Any, *, reg: float = 1e-3, num_threads: Optional[int] = None
) -> np.ndarray:
    """Locally linear reconstruction weights.

    For each row ``i``, the weights ``alpha`` (summing to 1) that best
    reconstruct ``y_gen[i]`` from ``x_gen[neighbors[i]]``: solve
    ``(C + r I) alpha = 1`` with ``C_jl = (y - x_j).(y - x_l)`` and
    ``r = reg * trace(C)`` (``reg`` when the trace is 0), then normalise.
    Accumulated in float64, as scikit-learn's ``barycenter_weights``.

    Parameters
    ----------
    x_gen : array-like, shape (m, d)
    y_gen : array-like, shape (n, d)
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
    x = as_matrix(x_gen, "x_gen")
    y = as_matrix(y_gen, "y_gen")
    check_same_dim(x, y, "x_gen", "y_gen")
    for arr, name in ((x, "x_gen"), (y, "y_gen")):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or inf; clean the input")
    nb = _neighbor_indices(neighbors, y.shape[0], x.shape[0])
    return _core.llm_weights(y, x, nb, reg=check_reg(reg), num_threads=check_num_threads(num_threads))


def llm_from_neighbors(
    x_gen: Any,
    x_spec: Any,
    y_gen: Any,
    neighbors: Any,
    *,
    scores: Any = None,
    margin: Optional[float] = None,
    reg: float = 1e-3,
    num_threads: Optional[int] = None,
) -> Projection:
    """LLM from precomputed neighbours (one search reused for several k or margins).

    Parameters
    ----------
    x_gen, x_spec, y_gen
        As in :func:`llm_project`.
    neighbors : int array-like, shape (n, k)
        Row indices into ``x_gen``, best first (e.g. from :func:`taskspec_rs.knn`).
    scores : array-like, shape (n, k), optional
        Their scores, best first; needed with ``margin``.
    margin : float, optional
        Adaptive k as in :class:`LLMProjector`.

    Returns
    -------
    Projection
        With ``margin``, unused neighbour slots are -1 with weight 0.
    """
    projector = LLMProjector(reg=reg, margin=margin, num_threads=num_threads).fit(x_gen, x_spec)
    return projector.from_neighbors(y_gen, neighbors, scores=scores)


# ---------------------------------------------------------------------------
# Global linear maps
# ---------------------------------------------------------------------------


def _cross_products(
    x: np.ndarray, xs: np.ndarray, block_rows: int, *, with_gram: bool
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


def _orthogonal(cross: np.ndarray) -> np.ndarray:
    """Procrustes: ``U V^T`` from the SVD ``cross = U S V^T`` (the orthogonal ``W`` maximising ``tr(W^T cross)``)."""
    u, _, vt = np.linalg.svd(cross, full_matrices=False)
    return u @ vt


class LinearProjector:
    """A global linear map ``W`` with ``x_gen W ≈ x_spec``, applied to ``y_gen``.

    Parameters
    ----------
    kind : {"lstsq", "orthogonal"}
        ``"lstsq"`` (LP): the minimum-norm least-squares ``W``, from the normal
        equations accumulated in float64 over row blocks. ``"orthogonal"``:
        Procrustes, ``W = U V^T`` from the SVD ``x_gen^T x_spec = U S V^T``;
        it can only rotate (and reflect) the general space.
    block_rows : int, keyword-only
        Rows per accumulation block (memory stays bounded by ``d x (d + e)``).

    Attributes
    ----------
    W_ : ndarray of float64, shape (d, e)
    """

    KINDS = ("lstsq", "orthogonal")

    def __init__(self, kind: str = "lstsq", *, block_rows: int = 65536) -> None:
        self.kind = check_choice(kind, self.KINDS, "kind")
        self.block_rows = check_k(block_rows, 2**31, "rows per accumulation block", name="block_rows")

    def fit(self, x_gen: Any, x_spec: Any) -> LinearProjector:
        x = as_matrix(x_gen, "x_gen")
        xs = as_matrix(x_spec, "x_spec")
        _check_x_spec(x, xs)
        gram, cross = _cross_products(x, xs, self.block_rows, with_gram=self.kind == "lstsq")
        self.W_ = np.linalg.lstsq(gram, cross, rcond=None)[0] if gram is not None else _orthogonal(cross)
        return self

    def transform(self, y_gen: Any) -> np.ndarray:
        if not hasattr(self, "W_"):
            raise ValueError("LinearProjector: call fit(x_gen, x_spec) before transform")
        y = as_matrix(y_gen, "y_gen")
        if y.shape[1] != self.W_.shape[0]:
            raise ValueError(
                f"y_gen: has dimension {y.shape[1]} but x_gen has {self.W_.shape[0]}; "
                "the general embeddings of both languages must share one space"
            )
        out = np.empty((y.shape[0], self.W_.shape[1]), dtype=np.float32)
        for s in range(0, y.shape[0], self.block_rows):
            yb = y[s : s + self.block_rows].astype(np.float64)
            if not np.isfinite(yb).all():
                raise ValueError(f"y_gen: contains NaN or inf (rows {s}..{s + len(yb) - 1})")
            out[s : s + len(yb)] = yb @ self.W_
        return out


def lp_project(x_gen: Any, x_spec: Any, y_gen: Any, *, block_rows: int = 65536) -> np.ndarray:
    """Linear projection (LP): least-squares ``W`` with ``x_gen W ≈ x_spec``, applied to ``y_gen``.

    See :class:`LinearProjector` (``kind="lstsq"``). Returns float32 ``(n, e)``.
    """
    return LinearProjector("lstsq", block_rows=block_rows).fit(x_gen, x_spec).transform(y_gen)


def orthogonal_project(x_gen: Any, x_spec: Any, y_gen: Any, *, block_rows: int = 65536) -> np.ndarray:
    """Orthogonal projection (Procrustes) of ``y_gen``: see :class:`LinearProjector` (``kind="orthogonal"``)."""
    return LinearProjector("orthogonal", block_rows=block_rows).fit(x_gen, x_spec).transform(y_gen)


def procrustes(x: Any, y: Any) -> np.ndarray:
    """Orthogonal Procrustes: the orthogonal ``W`` minimising ``||x @ W - y||_F``.

    ``W = U @ Vt`` where ``U, S, Vt = svd(x.T @ y)`` (Schönemann 1966), computed
    in float64. Row ``i`` of ``x`` pairs with row ``i`` of ``y``.

    Returns
    -------
    W : ndarray, shape (d, d)
        float64 when either input is float64, otherwise float32.
    """
    xa = as_matrix(x, "x", keep_float64=True)
    ya = as_matrix(y, "y", keep_float64=True)
    if xa.shape != ya.shape:
        raise ValueError(
            f"y: expected the same shape as x {xa.shape} (row i of x pairs with row i of y), got {ya.shape}"
        )
    out_dtype = np.float64 if np.float64 in (xa.dtype, ya.dtype) else np.float32
    _, cross = _cross_products(xa, ya, max(len(xa), 1), with_gram=False)
    if not np.isfinite(cross).all():
        raise ValueError("x, y: the product x^T y overflows; rescale the vectors (e.g. to unit length) first")
    return _orthogonal(cross).astype(out_dtype)
