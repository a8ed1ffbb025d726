"""Stubs of the compiled core (taskspec_rs._core). Use the wrappers in taskspec_rs."""

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
    exclude_self: bool = False,
    base_bias: Optional[npt.NDArray[np.float32]] = None,
    num_threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def llm_weights(
    y_gen: npt.NDArray[np.float32],
    x_gen: npt.NDArray[np.float32],
    neighbors: npt.NDArray[np.int64],
    *,
    reg: float = 1e-3,
    num_threads: Optional[int] = None,
) -> npt.NDArray[np.float32]: ...
def llm_project(
    x_gen: npt.NDArray[np.float32],
    y_gen: npt.NDArray[np.float32],
    x_spec: npt.NDArray[np.float32],
    k: int,
    *,
    reg: float = 1e-3,
    exclude_self: bool = False,
    row_offset: int = 0,
    base_bias: Optional[npt.NDArray[np.float32]] = None,
    num_threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def llm_project_neighbors(
    x_gen: npt.NDArray[np.float32],
    y_gen: npt.NDArray[np.float32],
    x_spec: npt.NDArray[np.float32],
    neighbors: npt.NDArray[np.int64],
    *,
    reg: float = 1e-3,
    num_threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def build_profile() -> str: ...
def knn_kernel() -> str: ...
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
