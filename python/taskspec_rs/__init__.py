"""taskspec-rs: cross-task embedding projection (Sakuma & Yoshinaga, CoNLL 2019).

Train a text classifier in one language, project its task-specific word
embeddings into other languages through a shared cross-lingual space, and
classify text in languages without labelled data.
"""

from ._core import __version__, build_profile, default_num_threads, knn_kernel
from .ann import HnswIndex
from .project import (
    NumericalError,
    hub_scores,
    hubness,
    knn,
    llm_from_neighbors,
    llm_project,
    llm_weights,
    lp_project,
    margin_counts,
    orthogonal_project,
)
from .vectors import load_vectors, save_vectors

__all__ = [
    "NumericalError",
    "HnswIndex",
    "__version__",
    "build_profile",
    "knn_kernel",
    "default_num_threads",
    "hub_scores",
    "hubness",
    "knn",
    "llm_from_neighbors",
    "llm_project",
    "llm_weights",
    "load_vectors",
    "lp_project",
    "margin_counts",
    "orthogonal_project",
    "save_vectors",
]
