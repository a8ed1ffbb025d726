"""Approximate nearest neighbours through an HNSW graph (hnswlib, cosine space).

Exact search costs ``n_target x n_source x dim`` multiply-adds; HNSW answers a
query in roughly logarithmic time after a one-off index build, so it wins when
both vocabularies are large (see ``docs/PERFORMANCE.md`` for measured figures).
Build the index once per source vocabulary and reuse it across calls and
values of ``k`` (e.g. while tuning ``k``)::

    index = HnswIndex(x_gen)
    for k in (1, 5, 10):
        y_spec = llm_project(x_gen, x_spec, y_gen, k, backend="hnsw", index=index)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np

from ._checks import (
    HNSW_EF,
    HNSW_M,
    HNSW_SEED,
    as_matrix,
    check_int,
    check_k,
    check_num_threads,
    check_rows,
    progress_callback,
)

__all__ = ["DEFAULT_HNSW", "HnswIndex", "resolve_index"]

_BEAM = "a positive int (HNSW beam width)"

#: Default index parameters: graph degree, build beam width, search beam width.
DEFAULT_HNSW = {"M": 16, "ef_construction": 120, "ef": 80}


class HnswIndex:
    """HNSW index over the rows of ``base`` for cosine similarity.

    Parameters
    ----------
    base : array-like, shape (m, d)
        Vectors to index (finite, non-zero rows).
    M : int, keyword-only
        Graph degree, 2 to 1024 (higher: better recall, more memory).
    ef_construction : int, keyword-only
        Beam width while building, 1 to 10**6.
    ef : int, keyword-only
        Default beam width while searching, 1 to 10**6 (raised to ``k + 1`` when smaller).
    num_threads : int, optional
        Threads for building and searching, 1 to 1024 (default: all cores).
    progress : bool or callable, keyword-only
        Progress of the build.
    seed : int, keyword-only
        Random seed of the level assignment, 0 to 2**64 - 1.
    """

    def __init__(
        self,
        base: Any,
        *,
        M: int = DEFAULT_HNSW["M"],
        ef_construction: int = DEFAULT_HNSW["ef_construction"],
        ef: int = DEFAULT_HNSW["ef"],
        num_threads: Optional[int] = None,
        progress: Any = False,
        seed: int = 100,
    ) -> None:
        import hnswlib

        self.M = check_int(M, "M", *HNSW_M, "a positive int (HNSW graph degree)")
        self.ef_construction = check_int(ef_construction, "ef_construction", *HNSW_EF, _BEAM)
        self.ef = check_int(ef, "ef", *HNSW_EF, _BEAM)
        seed = check_int(seed, "seed", *HNSW_SEED, "a non-negative int (HNSW random seed)")
        b = as_matrix(base, "base")
        check_rows(b, "base")
        self.size, self.dim = b.shape
        self._threads = check_num_threads(num_threads) or _default_threads()
        self._index = hnswlib.Index(space="cosine", dim=self.dim)
        self._index.init_index(max_elements=self.size, ef_construction=self.ef_construction, M=self.M, random_seed=seed)
        cb, close = progress_callback(progress, "hnsw build", self.size)
        try:
            step = 50_000
            for s in range(0, self.size, step):
                e = min(s + step, self.size)
                self._index.add_items(b[s:e], np.arange(s, e), num_threads=self._threads)
                if cb:
                    cb(e, self.size)
        finally:
            close()

    def search(
        self,
        queries: Any,
        k: int,
        *,
        ef: Optional[int] = None,
        num_threads: Optional[int] = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate ``k`` nearest rows of the index for each query.

        Returns ``(similarities float32 (n, k), indices int64 (n, k))``, best
        first. To exclude a row per query, search through
        :func:`taskspec_rs.knn` with ``backend="hnsw", index=self``.
        """
        q = as_matrix(queries, "queries")
        check_rows(q, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries: has dimension {q.shape[1]} but the index has {self.dim}")
        k = check_k(k, self.size, f"the index has {self.size} rows")
        ef = self.ef if ef is None else check_int(ef, "ef", *HNSW_EF, _BEAM)
        self._index.set_ef(max(ef, k + 1))
        threads = check_num_threads(num_threads) or self._threads
        try:
            labels, dist = self._index.knn_query(q, k=k, num_threads=threads)
        except RuntimeError as exc:  # hnswlib: the graph yielded fewer than k rows for some query
            raise ValueError(
                f"k: the HNSW graph found fewer than {k} neighbours for some query ({exc}); "
                "use a smaller k, a larger M or ef, or backend='exact'"
            ) from None
        return (1.0 - dist).astype(np.float32), labels.astype(np.int64)

    def check_base(self, base: np.ndarray, name: str = "base") -> None:
        """Raise ``ValueError`` naming ``name`` unless ``base`` has the shape of the indexed vectors."""
        if base.shape != (self.size, self.dim):
            raise ValueError(
                f"index: the HNSW index holds {self.size} x {self.dim} vectors"
                f" but {name} is {base.shape[0]} x {base.shape[1]}"
            )


def _default_threads() -> int:
    from ._core import default_num_threads

    return default_num_threads()


def resolve_index(
    hnsw: Union[None, Mapping[str, Any], HnswIndex],
    x: np.ndarray,
    *,
    num_threads: Optional[int],
    progress: Any,
) -> HnswIndex:
    """An :class:`HnswIndex` over ``x`` from ``hnsw``: a prebuilt index (checked against ``x``) or its parameters."""
    from ._index import resolve

    return resolve(hnsw, x, HnswIndex, "HNSW", DEFAULT_HNSW, num_threads=num_threads, progress=progress)
