"""Approximate nearest neighbours through an inverted file (IVF) on top of the exact kernel.

The base rows are clustered by spherical k-means into ``nlist`` lists (in a
reduced space: the principal directions holding 95% of the rows' squared
norm, when that halves the dimension); each base row is stored in its
``spill`` nearest lists. A query searches only the rows of its ``nprobe``
nearest lists, and it searches them *exactly*: the queries that probe one list
are gathered and searched against that list in one call of the exact Rust
kernel (the same screened, exactly re-ranked search as ``backend="exact"``),
then every query's partial top-k lists are merged. Recall is therefore decided
only by the lists: a true neighbour is missed exactly when none of the
query's ``nprobe`` lists holds it, which lets a search measure its own recall
on a sample of its queries and choose ``nprobe`` (``nprobe=None``).
``nprobe = nlist`` searches every row (the exact answer).

Build the index once per source vocabulary and reuse it for every target
language and every ``k``::

    index = IvfIndex(x_gen)
    for k in (1, 5, 10):
        y_spec = llm_project(x_gen, x_spec, y_gen, k, backend="ivf", index=index)

See ``docs/ANN.md`` for the recall/speed trade-off of ``nprobe`` and ``spill``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import zipfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Union

import numpy as np

from . import _core
from ._checks import Progress, as_matrix, check_int, check_k, check_num_threads, check_rows, progress_callback
from ._io import PathLike, atomic_write

__all__ = ["DEFAULT_IVF", "IvfIndex", "content_hash", "default_nlist", "fingerprint", "resolve_index"]


#: Default ``spill`` (lists holding each base row).
DEFAULT_SPILL = 8
#: With ``nprobe=None`` each search takes the smallest ``nprobe`` reaching this recall on a sample of its queries.
TARGET_RECALL = 0.95
#: Query rows searched exactly to choose ``nprobe`` (automatic ``nprobe``).
CALIBRATION_ROWS = 1024
#: Index parameters accepted through ``index={...}`` (``None``: chosen by the index, see :class:`IvfIndex`).
DEFAULT_IVF: dict[str, Any] = {"nlist": None, "nprobe": None, "spill": None, "target_recall": TARGET_RECALL, "seed": 0}
#: Below this many base rows the default is one list: an exact search (it is fast at that size).
EXACT_BELOW = 2048
#: k-means: training rows per list and Lloyd iterations.
TRAIN_ROWS_PER_LIST = 24
TRAIN_ITERATIONS = 8
#: The lists are found in a reduced space when that halves the dimension at least: the fewest principal
#: directions of the unit rows (uncentred) holding this share of their squared norm, plus the norm of the
#: rest. Only finding lists uses it; the rows of the lists are searched with every dimension.
REDUCED_ENERGY = 0.95
_PCA_ROWS = 4096
#: Base rows assigned per kernel call while building (progress granularity).
_ASSIGN_BLOCK = 65536
_FORMAT = "taskspec-ivf/1"
_FINGERPRINT_ROWS = 64
_MIN_KEY = np.iinfo(np.int64).min
_SEED = (0, 2**63 - 1)


def default_nlist(m: int) -> int:
    """The default number of lists for ``m`` base rows: ``8 * sqrt(m)`` (at most ``m / 16``; 1 for small bases)."""
    if m < EXACT_BELOW:
        return 1
    return max(1, min(int(round(8 * math.sqrt(m))), m // 16))


def fingerprint(base: np.ndarray) -> str:
    """Shape plus a hash of evenly spaced rows: a quick check of the vectors an index searches."""
    m, d = base.shape
    rows = np.unique(np.linspace(0, m - 1, min(m, _FINGERPRINT_ROWS)).astype(np.int64))
    digest = hashlib.blake2b(np.ascontiguousarray(base[rows], dtype=np.float32).tobytes(), digest_size=16)
    return f"{m}x{d}:{digest.hexdigest()}"


def content_hash(base: np.ndarray) -> str:
    """A hash of every value of ``base`` (float32): what a saved index checks when it is loaded."""
    digest = hashlib.blake2b(digest_size=16)
    for s in range(0, base.shape[0], _ASSIGN_BLOCK):
        digest.update(np.ascontiguousarray(base[s : s + _ASSIGN_BLOCK], dtype=np.float32).data)
    return digest.hexdigest()


class IvfIndex:
    """Inverted-file index over the rows of ``base`` for cosine similarity (exact search within lists).

    Parameters
    ----------
    base : array-like, shape (m, d)
        Vectors to index (finite, non-zero rows). The index keeps a reference
        to them (a float32 C-contiguous array is used without copying) and
        searches them at query time.
    nlist : int, optional, keyword-only
        Number of lists (k-means clusters), 1 to ``m``. Default
        :func:`default_nlist`: ``8 * sqrt(m)``; one list (an exact search)
        below 2048 rows.
    nprobe : int, optional, keyword-only
        Lists searched per query, 1 to ``nlist``: the recall/speed knob (also
        an attribute, and an argument of :meth:`search`). ``None``
        (default): automatic, each search first measures the recall of
        ``nprobe = 1, 2, ...`` on 1024 of its queries (searched exactly) and
        takes the smallest whose recall, less one standard error, reaches
        ``target_recall``; a search of at most 1024 queries is exact.
    spill : int, optional, keyword-only
        Number of nearest lists each base row is stored in, 1 to ``nlist``
        (default 8): rows near a list boundary are found from either side.
        Memory: ``spill * m`` row numbers.
    target_recall : float, keyword-only
        Recall@k the automatic ``nprobe`` aims at, in (0, 1] (default 0.95).
    seed : int, keyword-only
        Seed of the k-means sample and initialisation and of the calibration sample.
    num_threads : int, optional, keyword-only
        Threads for building and searching (default: all cores).
    progress : bool or callable, keyword-only
        Progress of the build (base rows assigned to lists).

    Attributes
    ----------
    centroids : ndarray of float32, shape (nlist, r)
        The unit centroids of the lists, in the reduced space.
    projection : ndarray of float32, shape (d, r - 1), or None
        The principal directions of the reduced space (``None``: the lists
        live in the full space).
    recall_curve : ndarray of float64 or None
        Set by a search with automatic ``nprobe``: ``recall_curve[p - 1]`` is
        the recall@k measured for ``nprobe = p`` on the sampled queries (up
        to the ``nprobe`` chosen, at least 8 values when there are that many
        lists).
    last_nprobe : int or None
        The ``nprobe`` the last search used (chosen or given).
    """

    def __init__(
        self,
        base: Any,
        *,
        nlist: Optional[int] = None,
        nprobe: Optional[int] = None,
        spill: Optional[int] = None,
        target_recall: float = TARGET_RECALL,
        seed: int = 0,
        num_threads: Optional[int] = None,
        progress: Progress = False,
    ) -> None:
        b = as_matrix(base, "base")
        check_rows(b, "base")
        m = b.shape[0]
        nlist = default_nlist(m) if nlist is None else check_int(nlist, "nlist", 1, m, "a number of lists")
        what = "a number of lists per base row"
        spill = min(DEFAULT_SPILL, nlist) if spill is None else check_int(spill, "spill", 1, nlist, what)
        self._set_params(b, nlist, nprobe, spill, target_recall, seed, num_threads)
        rng = np.random.default_rng(self.seed)
        self.projection = _projection(b, rng) if nlist > 1 else None
        reduced = _reduce(b, self.projection)
        self.centroids = _train(reduced, nlist, rng, self._threads)
        cb, close = progress_callback(progress, "ivf build", m)
        try:
            self._lists = _assign(reduced, self.centroids, spill, self._threads, cb)
        finally:
            close()
        self._perm, self._offsets = _invert(self._lists, nlist, m)
        self.fingerprint = fingerprint(b)

    def _set_params(self, b, nlist: int, nprobe: Any, spill: int, target_recall: Any, seed: Any, threads: Any) -> None:
        self._base = b
        self.size, self.dim = b.shape
        self.nlist, self.spill = nlist, spill
        self.nprobe = nprobe
        self.target_recall = _check_recall(target_recall)
        self.seed = check_int(seed, "seed", *_SEED, "a non-negative int (k-means seed)")
        self._threads = check_num_threads(threads)
        self.recall_curve: Optional[np.ndarray] = None
        self.last_nprobe: Optional[int] = None

    @property
    def nprobe(self) -> Optional[int]:
        """Lists searched per query (1 to ``nlist``), or ``None``: chosen by each search (see the class)."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: Optional[int]) -> None:
        self._nprobe = None if value is None else _check_nprobe(value, self.nlist)

    def __repr__(self) -> str:
        return (
            f"IvfIndex(size={self.size}, dim={self.dim}, nlist={self.nlist}, nprobe={self.nprobe}, spill={self.spill})"
        )

    @property
    def list_sizes(self) -> np.ndarray:
        """Rows stored in each list (spilled rows counted in every list holding them)."""
        return np.diff(self._offsets)

    def search(
        self,
        queries: Any,
        k: int,
        *,
        nprobe: Optional[int] = None,
        bias: Any = None,
        num_threads: Optional[int] = None,
        progress: Progress = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows of the base for each query, searching ``nprobe`` lists per query.

        Parameters
        ----------
        queries : array-like, shape (n, d)
        k : int
            Neighbours per query, 1 to the number of base rows.
        nprobe : int, optional
            Lists searched per query, 1 to ``nlist`` (default: the index's
            ``nprobe``; automatic when that is ``None``).
        bias : array-like, shape (m,), optional
            Added to every base row's score (CSLS: ``-r(b) / 2``).
        num_threads : int, optional
        progress : bool or callable

        Returns
        -------
        scores : ndarray of float32, shape (n, k)
            Cosine similarities (plus ``bias``), best first; equal scores go
            to the lower base index, as in the exact search.
        indices : ndarray of int64, shape (n, k)
            Base rows. A query whose lists hold fewer than ``k`` rows is
            searched exactly, so every row gets ``k`` valid neighbours. To
            exclude a row per query, search through :func:`taskspec_rs.knn`
            with ``backend="ivf", index=self``.
        """
        q = as_matrix(queries, "queries")
        check_rows(q, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries: has dimension {q.shape[1]} but the index has {self.dim}")
        k = check_k(k, self.size, f"the index has {self.size} rows")
        nprobe = self.nprobe if nprobe is None else _check_nprobe(nprobe, self.nlist)
        bias = _check_bias(bias, self.size)
        threads = check_num_threads(num_threads) or self._threads
        if nprobe is None:  # automatic; as few queries as the calibration sample are searched exactly
            auto = self.nlist > 1 and q.shape[0] > CALIBRATION_ROWS
            self.recall_curve, nprobe = self._calibrate(q, k, bias, threads) if auto else (None, self.nlist)
        self.last_nprobe = nprobe
        cb, close = progress_callback(progress, "ivf search", q.shape[0])
        try:
            if self.nlist == 1 or nprobe == self.nlist:  # every row is a candidate: the exact search
                return _core.knn(q, self._base, k, base_bias=bias, num_threads=threads, progress=cb)
            return self._search(q, k, nprobe, bias, threads, cb)
        finally:
            close()

    def _calibrate(self, q: np.ndarray, k: int, bias: Optional[np.ndarray], threads: Optional[int]) -> tuple:
        """Recall@k of ``nprobe = 1, 2, ...`` on a sample of the queries, and the ``nprobe`` to use.

        Within the probed lists the search is exact, so a true neighbour is
        found exactly when one of the query's probed lists holds it: the
        recall follows from the exact neighbours of the sample, the lists of
        each base row and the order in which each query probes the lists.
        The ``nprobe`` chosen is the smallest whose recall, less one standard
        error over the sampled queries, reaches ``target_recall``. A base row
        equal to its query is found at any ``nprobe`` (it lies in the query's
        own lists) and is often the row an exclusion drops: it is not counted.
        """
        rng = np.random.default_rng(self.seed)
        n, nlist = q.shape[0], self.nlist
        rows = q[np.sort(rng.choice(n, CALIBRATION_ROWS, replace=False))] if n > CALIBRATION_ROWS else q
        s = rows.shape[0]
        truth = _core.knn(rows, self._base, k, base_bias=bias, num_threads=threads)[1]
        held = self._lists[truth].reshape(s, -1)  # the lists holding each true neighbour
        counted = ~(rows[:, None, :] == self._base[truth]).all(axis=2)  # (s, k): not the query itself
        total = np.maximum(counted.sum(axis=1, keepdims=True), 1)
        for depth in (min(nlist, 64), nlist):
            order = _core.knn(_reduce(rows, self.projection), self.centroids, depth, num_threads=threads)[1]
            rank = np.full((s, nlist), depth, np.int64)  # rank[i, c]: when query i probes list c
            np.put_along_axis(rank, order, np.arange(depth)[None, :], axis=1)
            first = np.take_along_axis(rank, held, axis=1).reshape(s, k, -1).min(axis=2)
            slot = (first + np.arange(s)[:, None] * (depth + 1)).ravel()
            found = np.bincount(slot, weights=counted.ravel(), minlength=s * (depth + 1)).reshape(s, depth + 1)
            per_query = np.cumsum(found, axis=1)[:, :depth] / total  # recall of query i with nprobe = p + 1
            per_query[counted.sum(axis=1) == 0] = 1.0
            curve = per_query.mean(axis=0)
            lower = curve - per_query.std(axis=0) / math.sqrt(s)
            reached = np.flatnonzero(lower >= self.target_recall)
            if reached.size or depth == nlist:
                nprobe = int(reached[0]) + 1 if reached.size else nlist
                return curve[: max(nprobe, min(8, depth))], nprobe
        raise AssertionError("unreachable")

    def _search(self, q, k, nprobe, bias, threads, cb) -> tuple[np.ndarray, np.ndarray]:
        n = q.shape[0]
        probe = _core.knn(_reduce(q, self.projection), self.centroids, nprobe, num_threads=threads)[1]
        cs, ci = self._scan(q, k, probe, bias, threads, cb)
        if nprobe == 1:  # one list per query: the kernel's answer, best first
            sims, idx, short = cs, ci, np.flatnonzero(ci[:, k - 1] < 0)
        else:
            sims, idx, short = _merge(_keys(cs.reshape(n, nprobe * k), ci.reshape(n, nprobe * k)), k)
        if short.size:  # these rows' lists hold fewer than k rows: search them exactly
            s, i = _core.knn(q[short], self._base, k, base_bias=bias, num_threads=threads)
            sims[short], idx[short] = s, i
        if cb:
            cb(n, n)
        return sims, idx

    def _scan(self, q, k, probe, bias, threads, cb) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of every (query, probed list) pair: one kernel call per list.

        Row ``i * nprobe + j`` of the outputs is query ``i`` in its ``j``-th
        list (``-inf`` / ``-1`` past the rows of a short list). The lists are
        shared among ``threads`` workers, each calling the kernel on one
        thread: small calls then need no hand-over between threads, and one
        worker gathers rows while the other computes.
        """
        n, nprobe = probe.shape
        flat = probe.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(flat, minlength=self.nlist))))
        cs = np.full((n * nprobe, k), -np.inf, np.float32)
        ci = np.full((n * nprobe, k), -1, np.int64)

        def work(lists: np.ndarray) -> int:
            for c in lists:
                slots = order[bounds[c] : bounds[c + 1]]
                rows = self._perm[self._offsets[c] : self._offsets[c + 1]]
                if rows.size:
                    kk = min(k, rows.size)
                    sub_bias = None if bias is None else bias[rows]
                    s, i = _core.knn(q[slots // nprobe], self._base[rows], kk, base_bias=sub_bias, num_threads=1)
                    cs[slots, :kk] = s
                    ci[slots, :kk] = rows[i]
            return int(bounds[lists + 1].sum() - bounds[lists].sum())

        probed = np.flatnonzero(np.diff(bounds))
        workers = threads or _core.default_num_threads()
        chunks = np.array_split(probed, min(len(probed), 16 * workers))
        done = 0
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for slots_done in pool.map(work, chunks):
                done += slots_done
                if cb:
                    cb(done // nprobe, n)
        return cs, ci

    def check_base(self, base: np.ndarray, name: str = "base") -> None:
        """Raise ``ValueError`` naming ``name`` unless ``base`` holds the vectors this index was built over."""
        if base.shape != (self.size, self.dim):
            raise ValueError(
                f"index: the IVF index holds {self.size} x {self.dim} vectors"
                f" but {name} is {base.shape[0]} x {base.shape[1]}"
            )
        if base is not self._base and fingerprint(base) != self.fingerprint:
            raise ValueError(
                f"index: the IVF index was built over other vectors than {name} (same shape, different rows); "
                "build it over these vectors"
            )

    def save(self, path: PathLike) -> None:
        """Write the index (lists and centroids, not the base vectors) to an ``.npz`` file, atomically.

        Load it with :meth:`IvfIndex.load` and the same base vectors.
        """
        arrays = {
            "format": np.array(_FORMAT),
            "params": np.array([self.size, self.dim, self.nlist, self.nprobe or 0, self.spill, self.seed], np.int64),
            "fingerprint": np.array(self.fingerprint),
            "content": np.array(content_hash(self._base)),
            "target_recall": np.array(self.target_recall),
            "centroids": self.centroids,
            "projection": np.empty((0, 0), np.float32) if self.projection is None else self.projection,
            "perm": self._perm,
            "offsets": self._offsets,
        }
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: PathLike, base: Any, *, num_threads: Optional[int] = None) -> IvfIndex:
        """Read an index written by :meth:`save`; ``base`` must be the vectors it was built over.

        Raises
        ------
        ValueError
            ``path`` is not a readable IVF index file, or ``base`` is not the
            base of the index (other shape or other rows).
        """
        arrays = _read(path)
        size, dim, nlist, nprobe, spill, seed = (int(v) for v in arrays["params"])
        _check_layout(arrays, path, size, dim, nlist, spill)
        b = as_matrix(base, "base")
        stored = str(arrays["fingerprint"])
        if b.shape != (size, dim) or content_hash(b) != str(arrays["content"]):
            raise ValueError(
                f"base: is not the vectors the index in {path} was built over (the index holds {size} x {dim} "
                f"vectors, base is {b.shape[0]} x {b.shape[1]}, or their values differ); pass the same base "
                "or rebuild the index"
            )
        check_rows(b, "base")
        index = cls.__new__(cls)
        index._set_params(b, nlist, nprobe or None, spill, float(arrays["target_recall"]), seed, num_threads)
        index.centroids = np.ascontiguousarray(arrays["centroids"], dtype=np.float32)
        proj = arrays["projection"]
        index.projection = np.ascontiguousarray(proj, dtype=np.float32) if proj.size else None
        index._perm, index._offsets = arrays["perm"], arrays["offsets"]
        index._lists = _lists_of_rows(index._perm, index._offsets, size, spill)
        index.fingerprint = stored
        return index


def _check_nprobe(nprobe: Any, nlist: int) -> int:
    return check_int(nprobe, "nprobe", 1, nlist, f"a number of lists (the index has nlist={nlist})")


def _check_recall(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise ValueError(f"target_recall: must be a number in (0, 1], e.g. 0.95, got {value!r}")
    return float(value)


def _check_bias(bias: Any, m: int) -> Optional[np.ndarray]:
    if bias is None:
        return None
    b = np.ascontiguousarray(bias, dtype=np.float32)
    if b.shape != (m,) or not np.isfinite(b).all():
        raise ValueError(f"bias: expected {m} finite values (one per base row), got shape {b.shape}")
    return b


def _unit(a: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", a, a, dtype=np.float64)).astype(np.float32)
    return np.ascontiguousarray(a / norms[:, None], dtype=np.float32)


def _projection(b: np.ndarray, rng: np.random.Generator) -> Optional[np.ndarray]:
    """The principal directions (uncentred) holding :data:`REDUCED_ENERGY` of a sample of unit rows, (d, r).

    ``None`` when they are more than half the dimensions (the rows are then used as they are).
    """
    m, d = b.shape
    take = min(m, _PCA_ROWS)
    u = _unit(b[np.sort(rng.choice(m, take, replace=False))] if take < m else b).astype(np.float64)
    with _one_blas_thread():  # small products: threads that wait for each other only slow them down
        values, vectors = np.linalg.eigh(u.T @ u)  # ascending eigenvalues
    share = np.cumsum(values[::-1]) / values.sum()
    r = int(np.searchsorted(share, REDUCED_ENERGY)) + 1
    if 2 * r > d:
        return None
    return np.ascontiguousarray(vectors[:, : -r - 1 : -1], dtype=np.float32)


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread where threadpoolctl is installed (else nothing)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _reduce(rows: np.ndarray, proj: Optional[np.ndarray]) -> np.ndarray:
    """Rows in the space the lists live in: ``[u P, |u - u P P^T|]`` for the unit rows ``u`` (unit, never zero).

    Their dot products bound the cosines of the rows from above and equal them up to the part of the rows
    outside the principal directions, which is small for embeddings (a low intrinsic dimension).
    """
    if proj is None:
        return rows
    r = proj.shape[1]
    out = np.empty((rows.shape[0], r + 1), np.float32)
    for s in range(0, rows.shape[0], _ASSIGN_BLOCK):
        blk = rows[s : s + _ASSIGN_BLOCK]
        z = blk @ proj
        z /= np.sqrt(np.einsum("ij,ij->i", blk, blk, dtype=np.float64)).astype(np.float32)[:, None]
        out[s : s + _ASSIGN_BLOCK, :r] = z
        out[s : s + _ASSIGN_BLOCK, r] = np.sqrt(np.maximum(1.0 - np.einsum("ij,ij->i", z, z), 0.0))
    return out


def _train(rows: np.ndarray, nlist: int, rng: np.random.Generator, threads) -> np.ndarray:
    """Spherical k-means centroids (unit rows) of a sample of ``rows``."""
    m = rows.shape[0]
    if nlist == 1:
        return _unit(rows[:1])
    take = min(m, TRAIN_ROWS_PER_LIST * nlist)
    sample = _unit(rows[np.sort(rng.choice(m, take, replace=False))] if take < m else rows)
    # the first half of the iterations on a third of the sample: they only need to place the centroids roughly
    warm = sample[np.sort(rng.choice(take, max(nlist, take // 3), replace=False))]
    start = _kmeans(warm, warm[rng.choice(warm.shape[0], nlist, replace=False)], TRAIN_ITERATIONS // 2, rng, threads)
    return _kmeans(sample, start, TRAIN_ITERATIONS - TRAIN_ITERATIONS // 2, rng, threads)


def _kmeans(rows: np.ndarray, cent: np.ndarray, iterations: int, rng: np.random.Generator, threads) -> np.ndarray:
    """Lloyd iterations from the centroids ``cent``; every assignment is the exact kernel."""
    n, nlist = rows.shape[0], cent.shape[0]
    for _ in range(iterations):
        near = _core.knn(rows, cent, 1, num_threads=threads)[1][:, 0]
        order = np.argsort(near, kind="stable")
        counts = np.bincount(near, minlength=nlist)
        filled = counts > 0
        sums = np.empty_like(cent)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[filled]
        sums[filled] = np.add.reduceat(rows[order], starts, axis=0)
        sums[~filled] = rows[rng.choice(n, int((~filled).sum()), replace=False)]  # an empty list restarts
        cent = _unit(sums)
    return cent


def _assign(b: np.ndarray, cent: np.ndarray, spill: int, threads, cb) -> np.ndarray:
    """The ``spill`` nearest lists of every (reduced) base row, shape (m, spill)."""
    m = b.shape[0]
    lists = np.empty((m, spill), np.int32)
    for s in range(0, m, _ASSIGN_BLOCK):
        e = min(s + _ASSIGN_BLOCK, m)
        lists[s:e] = _core.knn(b[s:e], cent, spill, num_threads=threads)[1]
        if cb:
            cb(e, m)
    return lists


def _invert(lists: np.ndarray, nlist: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of each list, contiguous: ``perm[offsets[c]:offsets[c + 1]]`` (ascending rows within a list)."""
    flat = lists.ravel()
    order = np.argsort(flat, kind="stable")  # row-major: each list's rows stay ascending
    perm = (order // lists.shape[1]).astype(np.int32 if m < 2**31 else np.int64)
    offsets = np.concatenate(([0], np.cumsum(np.bincount(flat, minlength=nlist)))).astype(np.int64)
    return perm, offsets


def _lists_of_rows(perm: np.ndarray, offsets: np.ndarray, m: int, spill: int) -> np.ndarray:
    """The inverse of :func:`_invert`: the lists of every row, shape (m, spill)."""
    owner = np.repeat(np.arange(offsets.size - 1, dtype=np.int32), np.diff(offsets))
    return owner[np.argsort(perm, kind="stable")].reshape(m, spill)


def _keys(sims: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """One int64 per candidate, ordered like (score descending, index ascending): larger is better.

    The float32 score's bits, made monotonic as an int32, are the high half;
    ``2**32 - 1 - index`` the low half. Empty slots (index -1) get the smallest key.
    """
    bits = (sims + np.float32(0.0)).view(np.int32)  # + 0.0 turns -0.0 into 0.0
    bits = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))  # negative floats: flip the magnitude bits
    keys = bits.astype(np.int64) << 32
    keys |= np.int64(0xFFFFFFFF) - idx
    np.putmask(keys, idx < 0, _MIN_KEY)
    return keys


def _unkey(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bits = (keys >> 32).astype(np.int32)
    bits ^= (bits >> 31) & np.int32(0x7FFFFFFF)
    return bits.view(np.float32), np.int64(0xFFFFFFFF) - (keys & np.int64(0xFFFFFFFF))


def _merge(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best ``k`` distinct candidates per row (keys of :func:`_keys`), and the rows that have fewer than ``k``."""
    keys = np.sort(keys, axis=1)[:, ::-1]
    keys[:, 1:][keys[:, 1:] == keys[:, :-1]] = _MIN_KEY  # a row found in two probed lists counts once
    keys = np.sort(keys, axis=1)[:, : -k - 1 : -1]
    short = np.flatnonzero(keys[:, k - 1] == _MIN_KEY)
    sims, idx = _unkey(np.ascontiguousarray(keys))
    return sims, idx, short


def _read(path: PathLike) -> dict[str, np.ndarray]:
    required = ("format", "params", "fingerprint", "content", "target_recall")
    required += ("centroids", "projection", "perm", "offsets")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in required}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"path: {path} is not a readable IVF index file ({type(exc).__name__}: {exc}); "
            "rebuild it with IvfIndex(base).save(path)"
        ) from None
    if str(arrays["format"]) != _FORMAT or arrays["params"].shape != (6,):
        raise ValueError(f"path: {path} is not an IVF index file of this version (format {arrays['format']!s})")
    return arrays


def _check_layout(arrays: dict, path: PathLike, size: int, dim: int, nlist: int, spill: int) -> None:
    """Refuse a file whose arrays do not describe a consistent index (a corrupt or edited file)."""
    cent, perm, offsets, proj = arrays["centroids"], arrays["perm"], arrays["offsets"], arrays["projection"]
    problems = []
    width = proj.shape[1] + 1 if proj.size else dim
    if proj.size and (proj.ndim != 2 or proj.shape[0] != dim or not np.isfinite(proj).all()):
        problems.append(f"a projection of shape {proj.shape} for d={dim}")
    elif not (1 <= nlist <= size and 1 <= spill <= nlist) or cent.shape != (nlist, width):
        problems.append(f"centroids of shape {cent.shape} for nlist={nlist}, d={dim}")
    elif not np.isfinite(cent).all() or (np.einsum("ij,ij->i", cent, cent) == 0).any():
        problems.append("non-finite or zero centroids")
    if offsets.shape != (nlist + 1,) or offsets.dtype != np.int64 or perm.shape != (size * spill,):
        problems.append(f"list layout of shapes {offsets.shape}, {perm.shape}")
    elif perm.dtype.kind != "i" or offsets[0] != 0 or offsets[-1] != perm.size or (np.diff(offsets) < 0).any():
        problems.append("inconsistent list offsets")
    elif perm.size and (perm.min() < 0 or perm.max() >= size):
        problems.append("row numbers out of range")
    elif (np.bincount(perm, minlength=size) != spill).any():
        problems.append(f"rows not held by exactly spill={spill} lists")
    if problems:
        raise ValueError(f"path: {path} is a corrupt IVF index file ({'; '.join(problems)}); rebuild it")


def resolve_index(
    ivf: Union[None, Mapping[str, Any], IvfIndex],
    x: np.ndarray,
    *,
    num_threads: Optional[int],
    progress: Progress,
) -> IvfIndex:
    """An :class:`IvfIndex` over ``x`` from ``ivf``: a prebuilt index (checked against ``x``) or its parameters."""
    from ._index import resolve

    return resolve(ivf, x, IvfIndex, "IVF", DEFAULT_IVF, num_threads=num_threads, progress=progress)
