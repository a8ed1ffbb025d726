"""The evaluation methods, as a registry.

A :class:`Method` says three things:

* ``model`` — which source model it uses: ``"fixed"`` (embeddings frozen),
  ``"nnmap"`` (frozen plus two token-wise tanh layers), ``"opt"`` (embeddings
  updated in training; every ``clwe_opt_*`` method shares one such model per
  seed) or ``"monolingual"`` (a model trained on each target language);
* ``choose`` — how its k or margin is chosen, once per seed, without target
  labels (``None`` when there is nothing to choose);
* ``target`` — how it scores a target language: it makes the target
  embeddings and returns an :class:`Outcome` (accuracy, the k used, neighbour
  diagnostics).

The runner (:func:`taskspec_rs.evaluate.run_experiment`) loops over seeds ×
methods × languages and never asks for a method by name. Adding a method is
one :func:`register` call plus its test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from .neighbors import hubness, margin_counts
from .project import LinearProjector

if TYPE_CHECKING:  # the registry is imported by the configuration parser: keep it light (no torch)
    from .experiment import SeedRun, Target
    from .model import TaskModel

__all__ = [
    "METHODS",
    "NEIGHBOR_WIDTH",
    "Method",
    "Outcome",
    "best_choice",
    "llm_for_ks",
    "register",
    "source_k_scores",
]

#: Neighbours searched per word at least (the hubness diagnostics compare at k = 10); an eval searches
#: ``max(max(k_grid), NEIGHBOR_WIDTH)`` once and projects every k from the first columns.
NEIGHBOR_WIDTH = 10


@dataclass(frozen=True)
class Outcome:
    """A method's result on one target language for one seed.

    ``model`` is the network that scored the target; ``vectors`` the target
    embeddings it used (rows of the target's evaluation vocabulary) and
    ``transform`` the same projection applied to any target general vectors,
    so that a deployable model of the whole target vocabulary can be saved
    (``taskspec-rs eval --save-models``). ``vectors=None`` means the model is
    already a target model (``monolingual``).
    """

    accuracy: float
    k: Optional[int] = None
    diagnostics: Optional[dict] = None
    macro_f1: Optional[float] = None
    model: Optional[TaskModel] = None
    vectors: Optional[np.ndarray] = None
    transform: Optional[Callable[[np.ndarray], np.ndarray]] = None


@dataclass(frozen=True)
class Method:
    """One evaluation method (see the module docstring)."""

    name: str
    model: str
    target: Callable[[SeedRun, Target, Any], Optional[Outcome]]
    choose: Optional[Callable[[SeedRun], Any]] = None
    #: One of the paper's seven methods (run when a configuration does not list ``methods``).
    paper: bool = False
    doc: str = ""


#: Every method by name, in table order.
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (its name must be new)."""
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


# --------------------------------------------------------------------------- shared steps


def best_choice(scores: dict) -> Any:
    """The k (or margin) with the highest accuracy; ties go to the smallest value."""
    return min(scores, key=lambda k: (-scores[k], k))


def llm_for_ks(run: SeedRun, queries: np.ndarray, idx: np.ndarray, ks: Iterable[int]) -> dict[int, np.ndarray]:
    """``k -> y_spec`` of the ``opt`` model for the words ``queries`` from one neighbour search ``idx``."""
    projector = run.projector()
    return {k: projector.from_neighbors(queries, idx[:, : min(k, idx.shape[1])]).y_spec for k in ks}


def source_k_scores(run: SeedRun, metric: str = "cosine") -> dict[int, float]:
    """Source dev accuracy for each k of ``k_grid`` when the source dev words are projected onto the source
    vocabulary (each word's neighbours exclude the word itself): the label-free criterion for k."""
    exp = run.experiment
    _, idx = run.neighbors.get(metric, None)
    proj = llm_for_ks(run, exp.src_dev_vocab.vectors, idx, exp.config.k_grid)
    return {k: exp.src_dev.accuracy(run.model("opt"), v) for k, v in proj.items()}


def _tune_k(run: SeedRun, metric: str) -> int:
    """The k of :func:`source_k_scores` with the best accuracy (ties: the smallest)."""
    scores = source_k_scores(run, metric)
    k = best_choice(scores)
    run.log(f"seed {run.seed}: {metric} k_task = {k} (source dev accuracy {scores[k]:.3f})")
    return k


def _neighbor_stats(run: SeedRun, idx: np.ndarray, k: int) -> dict:
    """Hubness of the first ``k`` neighbours of every word (and at k = 10 for comparisons)."""
    _, _, trained = run.source_spec()
    words = run.experiment.source.embeddings.words
    nb = idx[:, :k]
    stats = hubness(nb, len(trained), top=10)
    used = nb[nb >= 0]
    counts = np.bincount(used, minlength=len(trained))
    at10 = hubness(idx[:, :10], len(trained), top=10) if idx.shape[1] >= 10 else None
    return {
        "k": int(k),
        "top_share": round(stats["top_share"], 4),
        "max_in_degree": stats["max_in_degree"],
        "unused_fraction": round(stats["unused_fraction"], 4),
        "trained_share": round(float(trained[used].mean()) if used.size else 0.0, 4),
        "top_share_k10": None if at10 is None else round(at10["top_share"], 4),
        "max_in_degree_k10": None if at10 is None else at10["max_in_degree"],
        "hubs": [words[i] for i in np.argsort(-counts, kind="stable")[:5]],
    }


def _scored(run: SeedRun, t: Target, kind: str, vectors: np.ndarray, transform: Callable, **extra: Any) -> Outcome:
    """The outcome of scoring ``t``'s test set with the ``kind`` model and the target embeddings ``vectors``."""
    model = run.model(kind)
    score = t.test.score(model, vectors)
    return Outcome(score.accuracy, macro_f1=score.macro_f1, model=model, vectors=vectors, transform=transform, **extra)


def _llm_transform(run: SeedRun, lang: str, k: int, metric: str = "cosine") -> Callable[[np.ndarray], np.ndarray]:
    """LLM with ``k`` neighbours of ``metric`` for any general vectors of ``lang``."""

    def transform(y_gen: np.ndarray) -> np.ndarray:
        _, idx = run.neighbors.search(metric, lang, y_gen)
        return run.projector().from_neighbors(y_gen, idx[:, : min(k, idx.shape[1])]).y_spec

    return transform


def _llm_outcome(run: SeedRun, t: Target, k: int, metric: str = "cosine", stats: bool = True) -> Outcome:
    _, idx = run.neighbors.get(metric, t.lang)
    y_spec = llm_for_ks(run, t.vocab.vectors, idx, [k])[k]
    diag = _neighbor_stats(run, idx, k) if stats else None
    return _scored(run, t, "opt", y_spec, _llm_transform(run, t.lang, k, metric), k=k, diagnostics=diag)


# --------------------------------------------------------------------------- the methods


def _identity(y_gen: np.ndarray) -> np.ndarray:
    return np.asarray(y_gen, dtype=np.float32)


def _general(kind: str) -> Callable[[SeedRun, Target, Any], Outcome]:
    def target(run: SeedRun, t: Target, _choice: Any) -> Outcome:
        return _scored(run, t, kind, t.vocab.vectors, _identity)

    return target


def _linear(kind: str) -> Callable[[SeedRun, Target, Any], Outcome]:
    def target(run: SeedRun, t: Target, _choice: Any) -> Outcome:
        x_gen, x_spec, _ = run.source_spec()
        projector = LinearProjector(kind).fit(x_gen, x_spec)
        return _scored(run, t, "opt", projector.transform(t.vocab.vectors), projector.transform)

    return target


def _ktasklang(run: SeedRun, t: Target, _choice: Any) -> Optional[Outcome]:
    if t.dev is None:
        return None
    grid = run.experiment.config.k_grid
    _, idx = run.neighbors.get("cosine", t.lang)
    proj = llm_for_ks(run, t.vocab.vectors, idx, grid)
    k = best_choice({k: t.dev.accuracy(run.model("opt"), proj[k]) for k in grid})
    return _scored(run, t, "opt", proj[k], _llm_transform(run, t.lang, k), k=k)


def _tune_margin(run: SeedRun) -> float:
    exp = run.experiment
    scores = {
        m: exp.src_dev.accuracy(run.model("opt"), _margin_projection(run, None, exp.src_dev_vocab.vectors, m)[0])
        for m in exp.config.margin_grid
    }
    margin = best_choice(scores)
    run.log(f"seed {run.seed}: margin = {margin} (source dev accuracy {scores[margin]:.3f})")
    return margin


def _margin_projection(run: SeedRun, lang: Optional[str], queries: np.ndarray, margin: float, neighbors=None):
    """``(y_spec, counts, idx)``: LLM keeping each word's neighbours within ``margin`` of its best (at most
    ``max(k_grid)``); ``neighbors`` is the ``(sims, idx)`` search of ``queries`` (default: the cached one)."""
    kmax = max(run.experiment.config.k_grid)
    sims, idx = neighbors if neighbors is not None else run.neighbors.get("cosine", lang)
    sims, idx = sims[:, :kmax], idx[:, :kmax]
    proj = run.projector(margin).from_neighbors(queries, idx, scores=sims)
    return proj.y_spec, margin_counts(sims, margin), proj.neighbors


def _margin_target(run: SeedRun, t: Target, margin: float) -> Outcome:
    y_spec, counts, masked = _margin_projection(run, t.lang, t.vocab.vectors, margin)
    stats = _neighbor_stats(run, masked, masked.shape[1])
    stats.update(margin=margin, mean_k=round(float(counts.mean()), 2))
    stats.pop("top_share_k10"), stats.pop("max_in_degree_k10")

    def transform(y_gen: np.ndarray) -> np.ndarray:
        found = run.neighbors.search("cosine", t.lang, y_gen)
        return _margin_projection(run, t.lang, y_gen, margin, neighbors=found)[0]

    return _scored(run, t, "opt", y_spec, transform, diagnostics=stats)


def _monolingual(run: SeedRun, t: Target, _choice: Any) -> Optional[Outcome]:
    if t.data.train is None or t.data.test is None:
        return None
    model = run.train("opt", t.data)
    score = model.score(t.data.test)
    return Outcome(score.accuracy, macro_f1=score.macro_f1, model=model)


def _k1(run: SeedRun, t: Target, _choice: Any) -> Outcome:
    return _llm_outcome(run, t, 1, stats=False)


def _ktask(run: SeedRun, t: Target, k: int) -> Outcome:
    return _llm_outcome(run, t, k)


def _csls_ktask(run: SeedRun, t: Target, k: int) -> Outcome:
    return _llm_outcome(run, t, k, metric="csls")


for _method in (
    Method("clwe_fixed", "fixed", _general("fixed"), paper=True, doc="embeddings frozen to the general vectors"),
    Method("clwe_fixed_nnmap", "nnmap", _general("nnmap"), paper=True, doc="frozen, plus two token-wise tanh layers"),
    Method("clwe_opt_lp", "opt", _linear("lstsq"), paper=True, doc="embeddings updated; least-squares linear map"),
    Method("clwe_opt_orth", "opt", _linear("orthogonal"), doc="as clwe_opt_lp with an orthogonal (Procrustes) map"),
    Method("clwe_opt_llm_k1", "opt", _k1, paper=True, doc="locally linear mapping (LLM) with k = 1"),
    Method(
        "clwe_opt_llm_ktask",
        "opt",
        _ktask,
        choose=lambda run: _tune_k(run, "cosine"),
        paper=True,
        doc="LLM, k tuned on the source self-projection (source dev accuracy)",
    ),
    Method(
        "clwe_opt_llm_csls_ktask",
        "opt",
        _csls_ktask,
        choose=lambda run: _tune_k(run, "csls"),
        doc="as clwe_opt_llm_ktask with neighbours ranked by CSLS",
    ),
    Method(
        "clwe_opt_llm_margin",
        "opt",
        _margin_target,
        choose=_tune_margin,
        doc="LLM with an adaptive k per word: neighbours within a margin (tuned on the source) of the best",
    ),
    Method("clwe_opt_llm_ktasklang", "opt", _ktasklang, paper=True, doc="LLM, k tuned on target dev examples"),
    Method("monolingual", "monolingual", _monolingual, paper=True, doc="trained and tested in the target language"),
):
    register(_method)


def method_names(names: Optional[Sequence[str]] = None) -> tuple[str, ...]:
    """``names`` (default: all) in table order."""
    return tuple(n for n in METHODS if names is None or n in names)
