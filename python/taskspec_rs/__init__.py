"""taskspec-rs: cross-task embedding projection (Sakuma & Yoshinaga, CoNLL 2019).

Train a text classifier in one language, project its task-specific word
embeddings into other languages through a shared cross-lingual space, and
classify text in languages without labelled data.

Projections share one shape: fitted on the source, ``fit(x_gen, x_spec)``,
applied to each target, ``transform(y_gen)`` (:class:`LLMProjector`,
:class:`LinearProjector`); :func:`llm_project`, :func:`lp_project` and
:func:`orthogonal_project` take ``(x_gen, x_spec, y_gen)`` in that order.
Every neighbour search goes through :func:`knn`.
"""

from ._core import __version__, build_profile, default_num_threads, knn_kernel, knn_kernels
from .ann import HnswIndex
from .errors import MissingExtraError, NumericalError, TaskspecError, WriteError
from .ivf import IvfIndex
from .neighbors import hub_scores, hubness, knn, margin_counts
from .project import (
    LinearProjector,
    LLMProjector,
    Projection,
    llm_from_neighbors,
    llm_project,
    llm_weights,
    lp_project,
    orthogonal_project,
    procrustes,
)
from .vectors import load_vectors, save_vectors

__all__ = [
    "HnswIndex",
    "IvfIndex",
    "LLMProjector",
    "LinearProjector",
    "MissingExtraError",
    "NumericalError",
    "Projection",
    "TaskspecError",
    "WriteError",
    "__version__",
    "build_profile",
    "default_num_threads",
    "hub_scores",
    "hubness",
    "knn",
    "knn_kernel",
    "knn_kernels",
    "llm_from_neighbors",
    "llm_project",
    "llm_weights",
    "load_vectors",
    "lp_project",
    "margin_counts",
    "orthogonal_project",
    "procrustes",
    "save_vectors",
]
