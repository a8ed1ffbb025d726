"""Stubs of the compiled core (taskspec_rs._core). Use the wrappers in taskspec_rs.

The core only converts: arrays must already be C-contiguous float32 (int64 for
neighbour indices), else ``TypeError``. It checks only what it needs to stay
safe (``ValueError``); user-facing validation is the wrappers' job. A thread
pool the system cannot start raises ``RuntimeError``; ``num_threads`` above
4096 is a ``ValueError``.
"""

from typing import Any, Callable, Optional

import numpy as np
import numpy.typing as npt

__version__: str

class NumericalError(RuntimeError):
    """A numerical failure on valid input (e.g. a singular Gram matrix with reg=0)."""

def knn(
    queries: npt.NDArray[np.float32],
    base: npt.NDArray[np.float32],
    k: int,
    *,
    base_bias: Optional[npt.NDArray[np.float32]] = None,
    num_threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Exact top-``k`` rows of ``base`` by cosine (plus ``base_bias``) per query row.

    Returns ``(sims (n, k), idx (n, k))``, best first, ties by lower index.
    No self-exclusion: search ``k + 1`` and drop the row itself in the caller.
    """

def llm_weights(
    y_gen: npt.NDArray[np.float32],
    x_gen: npt.NDArray[np.float32],
    neighbors: npt.NDArray[np.int64],
    *,
    reg: float = 1e-3,
    num_threads: Optional[int] = None,
) -> npt.NDArray[np.float32]:
    """LLM reconstruction weights ``(n, k)`` of each ``y_gen`` row from its ``neighbors`` in ``x_gen``."""

def llm_project(
    x_gen: npt.NDArray[np.float32],
    y_gen: npt.NDArray[np.float32],
    x_spec: npt.NDArray[np.float32],
    k: int,
    *,
    reg: float = 1e-3,
    base_bias: Optional[npt.NDArray[np.float32]] = None,
    num_threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Exact kNN of ``y_gen`` in ``x_gen``, LLM weights and combination of ``x_spec`` rows.

    Returns ``(y_spec (n, e), neighbors (n, k), weights (n, k))``. No self-exclusion
    (use ``knn`` with ``k + 1`` and ``llm_project_neighbors`` for that).
    """

def llm_project_neighbors(
    x_gen: npt.NDArray[np.float32],
    y_gen: npt.NDArray[np.float32],
    x_spec: npt.NDArray[np.float32],
    neighbors: npt.NDArray[np.int64],
    *,
    reg: float = 1e-3,
    num_threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """LLM from given ``neighbors`` (n, k): returns ``(y_spec (n, e), weights (n, k))``."""

def build_profile() -> str: ...
def knn_kernel() -> str:
    """The exact-kNN kernel ``knn`` runs: ``TASKSPEC_KNN_KERNEL`` if set, else the CPU's best.

    An unknown name, or one this CPU cannot run, raises ``ValueError``.
    """

def knn_kernels() -> list[str]:
    """The exact-kNN kernels this CPU can run ("int8", "bf16", "int8-avx", "int8-avx2", "fp32"), the default first."""

def default_num_threads() -> int: ...

# --- word-vector file I/O (taskspec_rs.vectors) ---
def read_vectors(
    path: str,
    format: str,
    *,
    limit: Optional[int] = None,
    float64: bool = False,
    keep_first: bool = True,
    num_threads: Optional[int] = None,
) -> tuple[list[str], npt.NDArray[np.floating[Any]], int]: ...
def write_vectors(
    path: str,
    words: list[str],
    vectors: npt.NDArray[np.floating[Any]],
    format: str,
    *,
    num_threads: Optional[int] = None,
) -> None: ...
