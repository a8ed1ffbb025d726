"""The ``index=`` argument of the approximate backends: a prebuilt index or its parameters.

Each indexed backend (``"hnsw"``, ``"ivf"``) has one resolver,
``resolve_index(spec, x, *, num_threads, progress)`` in its module, and every
resolver is this :func:`resolve` with its index class and parameter names
(``taskspec_rs.neighbors.INDEXED`` maps a backend to its resolver).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from ._checks import Progress

__all__ = ["resolve"]


def resolve(
    spec: Any,
    x: np.ndarray,
    cls: type,
    label: str,
    defaults: Mapping[str, Any],
    *,
    num_threads: Optional[int],
    progress: Progress,
) -> Any:
    """``spec`` itself when it is a ``cls`` built over ``x``, else ``cls(x, **defaults, **spec)``."""
    if isinstance(spec, cls):
        spec.check_base(x, "x_gen/base")
        return spec
    params = dict(defaults)
    if spec is not None:
        if not isinstance(spec, Mapping):
            raise TypeError(
                f"index: expected None, a dict of {'/'.join(defaults)} or an {cls.__name__}, got {type(spec).__name__}"
            )
        unknown = set(spec) - set(defaults)
        if unknown:
            raise ValueError(f"index: unknown {label} parameter(s) {sorted(unknown)}; allowed: {', '.join(defaults)}")
        params.update(spec)
    return cls(x, num_threads=num_threads, progress=progress, **params)
