"""Input normalisation and validation shared by the public wrappers.

Each check raises :class:`TypeError` / :class:`ValueError` naming the argument
and what was expected, before any heavy work starts.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Callable, Optional, Union

import numpy as np

Progress = Union[bool, Callable[[int, int], Any], None]

_ROW_BLOCK = 65536


def as_matrix(a: Any, name: str, *, keep_float64: bool = False) -> np.ndarray:
    """Return ``a`` as a 2-D C-contiguous float32 array (no copy when it already is one).

    ``keep_float64``: float64 input stays float64 (for computations done in float64 anyway).
    """
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except ValueError as exc:  # ragged nested sequences
            raise ValueError(f"{name}: expected a 2-D array of equal-length rows ({exc})") from None
    if arr.dtype == object:
        raise TypeError(
            f"{name}: expected a float32/float64 array, got dtype object (ragged rows or non-numeric entries?)"
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
    keep = keep_float64 and arr.dtype == np.float64
    try:
        with np.errstate(over="raise"):
            return np.ascontiguousarray(arr, dtype=np.float64 if keep else np.float32)
    except FloatingPointError:
        raise ValueError(
            f"{name}: has values beyond the float32 range (about 3.4e38 in magnitude); rescale the input"
        ) from None


def rows_source(a: Any, name: str) -> np.ndarray:
    """A 2-D float array to be read block by block (e.g. a ``numpy.memmap``).

    Valid float ndarrays are returned as they are (each block is converted
    with :func:`as_matrix` when used); anything else is converted now.
    """
    if isinstance(a, np.ndarray) and a.ndim == 2 and a.dtype.kind == "f" and a.size:
        return a
    return as_matrix(a, name)


def check_rows(a: np.ndarray, name: str) -> None:
    """Reject NaN/inf and zero-norm rows (cosine is undefined for them), block by block."""
    for s in range(0, a.shape[0], _ROW_BLOCK):
        blk = a[s : s + _ROW_BLOCK]
        sq = np.einsum("ij,ij->i", blk, blk, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(sq))
        if bad.size:
            raise ValueError(f"{name}: row {s + bad[0]} contains NaN or inf; clean the input or drop the row")
        zero = np.flatnonzero(sq == 0)
        if zero.size:
            raise ValueError(
                f"{name}: row {s + zero[0]} has zero norm, so its cosine similarity is undefined; "
                "drop zero vectors before calling"
            )


#: Largest accepted ``num_threads`` (a pool of more threads than this is a typo, not a wish).
MAX_THREADS = 1024


def check_num_threads(num_threads: Optional[int]) -> Optional[int]:
    if num_threads is None:
        return None
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads: expected a positive int or None, got {num_threads!r}")
    if not 1 <= num_threads <= MAX_THREADS:
        raise ValueError(f"num_threads: must be None or an int between 1 and {MAX_THREADS}, got {num_threads}")
    return int(num_threads)


def check_k(k: Any, limit: int, what: str, *, name: str = "k") -> int:
    """``k`` as an int in ``1..limit`` (``what`` says where the limit comes from); errors name ``name``."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name}: expected a positive int, got {k!r}")
    if not 1 <= k <= limit:
        raise ValueError(f"{name}: must be between 1 and {limit} ({what}), got {k}")
    return int(k)


#: Largest accepted ``limit`` of :func:`taskspec_rs.load_vectors` (rows read; far above any vocabulary).
MAX_LIMIT = 2**40
#: Largest accepted ``block_rows`` (rows per accumulation block).
MAX_BLOCK_ROWS = 2**31
#: Most neighbours per row of an LLM solve (a dense k x k system per row; the core refuses more).
MAX_LLM_K = 4096


def check_output_size(n: int, k: int) -> None:
    """Refuse a neighbour search whose ``(n, k)`` outputs (12 bytes a slot) exceed this machine's memory.

    The engine allocates its outputs before searching; asking for more than the
    machine has would abort the process instead of raising.
    """
    need = n * k * 12
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: let the allocation decide
        return
    if need > total:
        raise MemoryError(
            f"k: {n} queries x k={k} neighbours need {need / 2**30:.1f} GiB of output, more than the "
            f"{total / 2**30:.1f} GiB of this machine; search fewer queries per call or a smaller k"
        )


#: HNSW graph degree ``M``: hnswlib needs at least 2 and caps it at 10000 itself.
HNSW_M = (2, 1024)
#: HNSW beam widths ``ef`` / ``ef_construction``.
HNSW_EF = (1, 10**6)
#: HNSW random seed (hnswlib takes an unsigned 64-bit value).
HNSW_SEED = (0, 2**64 - 1)


def check_int(value: Any, name: str, lo: int, hi: int, what: str = "an int") -> int:
    """``value`` as a Python int in ``lo..hi`` (bools rejected); errors name ``name``, ``what`` and the range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected {what} between {lo} and {hi}, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}: must be {what} between {lo} and {hi}, got {value}")
    return int(value)


def unit_rows(a: Any, name: str) -> np.ndarray:
    """A checked float32 copy of ``a`` with unit-length rows (rejects NaN/inf and zero rows)."""
    arr = as_matrix(a, name)
    check_rows(arr, name)
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64)).astype(np.float32)
    return arr / norms[:, None]


def check_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Both matrices live in one space (same number of columns)."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_b}: has dimension {b.shape[1]} but {name_a} has {a.shape[1]}; both must live in the same space"
        )


def check_margin(margin: Any) -> Optional[float]:
    if margin is None:
        return None
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin: must be None or a finite number >= 0, got {margin!r}")
    return float(margin)


def check_choice(value: Any, choices: tuple, name: str) -> Any:
    if value not in choices:
        raise ValueError(f"{name}: must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_reg(reg: Any) -> float:
    if isinstance(reg, bool) or not isinstance(reg, numbers.Real):
        raise TypeError(f"reg: expected a non-negative float, got {reg!r}")
    reg = float(reg)
    if not np.isfinite(reg) or reg < 0:
        raise ValueError(f"reg: must be a finite number >= 0, got {reg}")
    return reg


def progress_callback(progress: Progress, desc: str, total: int) -> tuple[Optional[Callable], Callable]:
    """Turn ``progress`` (bool or callable) into ``(callback or None, close)``."""
    if progress is None or progress is False:
        return None, lambda: None
    if callable(progress):
        return progress, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="word")

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close
