"""An experiment as data: languages, labels and encoded splits, loaded once.

:func:`load_experiment` turns a validated :class:`~taskspec_rs.config.ExperimentConfig`
into an :class:`Experiment`: the source and target languages (general
embeddings and datasets), the label list, and every split encoded for the
vocabulary it is evaluated with. ``taskspec-rs eval``, ``analyze`` and ``train``
all start here.

:class:`SeedRun` is what the methods of :mod:`taskspec_rs.methods` see for one
seed: it trains each kind of source model once (lazily) and answers
neighbour queries from a cache shared by every seed (the general space does
not depend on the seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .config import ExperimentConfig, LanguageConfig, TrainOptions
from .data import Dataset, Embeddings, encode, load_dataset, load_embeddings, normalize_vectors, tokenize
from .errors import TaskspecError
from .model import Score, TaskModel, label_indices, predict_ids
from .neighbors import hub_scores, knn
from .project import LLMProjector

__all__ = [
    "Experiment",
    "LanguageData",
    "SeedRun",
    "Split",
    "general_embeddings",
    "load_experiment",
    "load_language",
    "source_record",
    "train_language",
]

Log = Callable[[str], None]


@dataclass
class LanguageData:
    """Everything loaded for one language of an experiment.

    ``embeddings`` is the vocabulary of the language's models with its
    general vectors: for the source of an experiment the training words with
    ``[train] vocabulary = "train"``, otherwise every word of the general
    embeddings.  ``general`` keeps every general vector when ``embeddings``
    is such a cut (``None`` when they are the same).
    """

    config: LanguageConfig
    embeddings: Embeddings
    train: Optional[Dataset] = None
    dev: Optional[Dataset] = None
    test: Optional[Dataset] = None
    general: Optional[Embeddings] = None

    @property
    def lang(self) -> str:
        return self.config.lang

    @property
    def all_embeddings(self) -> Embeddings:
        """Every general vector of the language (not only the model vocabulary)."""
        return self.embeddings if self.general is None else self.general

    def needed_embeddings(self, datasets: Sequence[Optional[Dataset]]) -> Embeddings:
        """The general embedding rows of words occurring in ``datasets`` (projection vocabulary)."""
        words: set[str] = set()
        for ds in datasets:
            if ds is not None:
                for text in ds.texts:
                    words.update(tokenize(text, tokenizer=self.config.tokenizer))
        return self.all_embeddings.subset(words)


def general_embeddings(
    path: Path, key: Optional[str], *, alignment: Optional[Path] = None, rescale: bool = True, normalize: str = "none"
) -> Embeddings:
    """A language's general vectors as every model sees them: loaded, mapped by ``alignment`` (``vectors @ W``),
    normalised (``normalize``, see :func:`~taskspec_rs.data.normalize_vectors`), then, with ``rescale``, scaled as
    in :meth:`Embeddings.rescaled`."""
    embeddings = load_embeddings(path, key=key)
    if alignment is not None:  # a saved map W (taskspec-rs align --out): vectors @ W
        from .interop import apply_alignment

        embeddings = apply_alignment(embeddings, alignment)
    if normalize != "none":
        embeddings = Embeddings(embeddings.words, normalize_vectors(embeddings.vectors, normalize))
    if rescale:
        embeddings = embeddings.rescaled()
    return embeddings


def load_language(
    config: LanguageConfig, *, labels: Optional[Sequence[str]], rescale: bool = True, normalize: str = "none"
) -> LanguageData:
    """Load embeddings (see :func:`general_embeddings`) and datasets of a language, checking labels against
    ``labels``."""
    embeddings = general_embeddings(
        config.embeddings, config.embeddings_key, alignment=config.alignment, rescale=rescale, normalize=normalize
    )
    data = LanguageData(config, embeddings)
    for split in ("train", "dev", "test"):
        path = getattr(config, split)
        if path is not None:
            ds = load_dataset(path, options=config.data)
            if labels is not None:
                label_indices(ds, labels)  # raises on unknown labels
            setattr(data, split, ds)
    return data


@dataclass(frozen=True)
class Split:
    """A dataset encoded for a fixed vocabulary: word ids (0 = padding/unknown) and gold label indices."""

    ids: np.ndarray
    gold: np.ndarray

    @classmethod
    def make(cls, ds: Dataset, emb: Embeddings, tokenizer: str, labels: Sequence[str]) -> Split:
        return cls(encode(ds.texts, emb.index(), tokenizer=tokenizer), label_indices(ds, labels))

    def predict(self, model: TaskModel, vectors: Optional[np.ndarray] = None) -> np.ndarray:
        """Predicted label indices of ``model``, with its embedding table replaced by ``vectors`` when given."""
        network = model.network if vectors is None else model.network.with_embeddings(vectors)
        return predict_ids(network, self.ids)

    def accuracy(self, model: TaskModel, vectors: Optional[np.ndarray] = None) -> float:
        """Accuracy of ``model``, with its embedding table replaced by ``vectors`` when given."""
        return float(np.mean(self.predict(model, vectors) == self.gold))

    def score(self, model: TaskModel, vectors: Optional[np.ndarray] = None) -> Score:
        """Accuracy and macro-F1 of ``model`` (embedding table replaced by ``vectors`` when given)."""
        return Score.of(self.gold, self.predict(model, vectors))


@dataclass
class Target:
    """A target language with its projection vocabulary and encoded evaluation splits."""

    data: LanguageData
    vocab: Embeddings  # words of the test set and of the first ``tasklang_dev_size`` dev examples
    test: Split
    dev: Optional[Split]

    @property
    def lang(self) -> str:
        return self.data.lang


@dataclass
class Experiment:
    """A loaded experiment: the source, the targets and every encoded split."""

    config: ExperimentConfig
    labels: list[str]
    source: LanguageData
    targets: list[Target]
    src_test: Optional[Split]
    #: Source dev words with a general vector (for tuning k on the source self-projection), their rows in the
    #: source model vocabulary (-1: not in it), and the dev set encoded over them.
    src_dev_vocab: Embeddings
    src_dev_rows: np.ndarray
    src_dev: Split


def load_experiment(
    config: ExperimentConfig,
    *,
    with_targets: bool = True,
    langs: Optional[Sequence[str]] = None,
    log: Optional[Log] = None,
) -> Experiment:
    """Load and encode everything an experiment needs.

    ``with_targets=False`` loads the source only; ``langs`` restricts the
    targets to these languages (each must be a target of ``config``).
    """
    say = log or (lambda _msg: None)
    opts, src_cfg = config.train, config.source
    say(f"loading source language {src_cfg.lang}")
    source = load_language(src_cfg, labels=config.labels, rescale=opts.rescale, normalize=opts.normalize)
    assert source.train is not None and source.dev is not None
    labels = list(config.labels) if config.labels else sorted(set(source.train.labels))
    for ds in (source.dev, source.test):
        if ds is not None:
            label_indices(ds, labels)
    known = [t.lang for t in config.targets]
    unknown = [lang for lang in langs or () if lang not in known]
    if unknown:
        raise TaskspecError(f"--lang: {', '.join(unknown)} not among the targets ({', '.join(known)})")
    targets = []
    for t_cfg in config.targets if with_targets else ():
        if langs and t_cfg.lang not in langs:
            continue
        say(f"loading target language {t_cfg.lang}")
        targets.append(_load_target(t_cfg, config, labels, source.embeddings.dim))
    _cut_vocabulary(source, opts)
    dev_vocab = source.needed_embeddings([source.dev])
    index = source.embeddings.index()
    return Experiment(
        config=config,
        labels=labels,
        source=source,
        targets=targets,
        src_test=Split.make(source.test, source.embeddings, src_cfg.tokenizer, labels) if source.test else None,
        src_dev_vocab=dev_vocab,
        src_dev_rows=np.array([index.get(w, -1) for w in dev_vocab.words], dtype=np.int64),
        src_dev=Split.make(source.dev, dev_vocab, src_cfg.tokenizer, labels),
    )


def _cut_vocabulary(data: LanguageData, options: TrainOptions) -> None:
    """Narrow ``data.embeddings`` to the vocabulary its models are trained with (see ``[train] vocabulary``)."""
    from .train import model_vocabulary

    assert data.train is not None
    vocab = model_vocabulary(data.train, data.embeddings, tokenizer=data.config.tokenizer, options=options)
    if vocab is not data.embeddings:
        data.general, data.embeddings = data.embeddings, vocab


def source_record(config: ExperimentConfig) -> dict:
    """What a saved source model keeps of its configuration, so that ``taskspec-rs project --k auto`` can tune k
    on the source self-projection as ``clwe_opt_llm_ktask`` does: the source embeddings and dev set, k grid, reg."""
    src = config.source
    return {
        "embeddings": str(Path(src.embeddings).resolve()),
        "embeddings_key": src.embeddings_key,
        "alignment": str(Path(src.alignment).resolve()) if src.alignment is not None else None,
        "dev": str(Path(src.dev).resolve()) if src.dev is not None else None,
        "data": asdict(src.data),
        "k_grid": list(config.k_grid),
        "reg": config.reg,
    }


def _load_target(t_cfg: LanguageConfig, config: ExperimentConfig, labels: list[str], dim: int) -> Target:
    opts = config.train
    data = load_language(t_cfg, labels=labels, rescale=opts.rescale, normalize=opts.normalize)
    if data.embeddings.dim != dim:
        raise TaskspecError(
            f"embedding dimension mismatch: {t_cfg.embeddings} ({data.lang}) has {data.embeddings.dim},"
            f" source has {dim}"
        )
    dev_head = data.dev.head(config.tasklang_dev_size) if data.dev else None
    vocab = data.needed_embeddings([data.test, dev_head])
    if not vocab.words:
        raise TaskspecError(f"{data.lang}: no word of the test data is in {t_cfg.embeddings}")
    tok = t_cfg.tokenizer
    dev = Split.make(dev_head, vocab, tok, labels) if dev_head is not None else None
    return Target(data, vocab, Split.make(data.test, vocab, tok, labels), dev)


def train_language(
    lang_data: LanguageData,
    *,
    labels: Sequence[str],
    kind: str,
    options: TrainOptions,
    seed: int,
    dev: Optional[Dataset] = None,
    progress: bool = False,
    desc: Optional[str] = None,
) -> TaskModel:
    """Train a ``kind`` model on ``lang_data``'s training set (``dev`` picks the epoch)."""
    from .train import train_classifier

    return train_classifier(
        lang_data.train,
        dev,
        lang_data.all_embeddings,  # rescaled on every general vector, then cut to the vocabulary (as in eval)
        labels=labels,
        lang=lang_data.lang,
        tokenizer=lang_data.config.tokenizer,
        kind=kind,
        options=options,
        seed=seed,
        progress=progress,
        desc=desc or f"seed {seed} {kind} {lang_data.lang}",
    )


@dataclass
class NeighborCache:
    """Neighbours in the general space, computed once per experiment and reused by every seed and method.

    Keys are ``(metric, lang)``; ``lang=None`` is the source self-projection of the source dev words
    (a word never its own neighbour). Each entry holds ``width`` neighbours, best first: the
    first ``k`` columns are the top-``k`` search.
    """

    experiment: Experiment
    width: int
    entries: dict = field(default_factory=dict)
    penalties: dict = field(default_factory=dict)

    def get(self, metric: str, lang: Optional[str]) -> tuple[np.ndarray, np.ndarray]:
        key = (metric, lang)
        if key not in self.entries:
            self.entries[key] = self._search(metric, lang)
        return self.entries[key]

    def _search(self, metric: str, lang: Optional[str]) -> tuple[np.ndarray, np.ndarray]:
        exp = self.experiment
        if lang is None:
            return self.search(metric, lang, exp.src_dev_vocab.vectors, exclude=exp.src_dev_rows)
        return self.search(metric, lang, next(t.vocab.vectors for t in exp.targets if t.lang == lang))

    def search(
        self, metric: str, lang: Optional[str], queries: np.ndarray, *, exclude: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``width`` nearest source words of ``queries`` (general vectors of ``lang``; ``None``: the source)."""
        x_gen = self.experiment.source.embeddings.vectors
        width = max(1, min(self.width, len(x_gen) - (exclude is not None)))
        penalty = self.penalty(lang) if metric == "csls" else None
        return knn(queries, x_gen, width, metric=metric, hub_penalty=penalty, exclude=exclude)

    def penalty(self, lang: Optional[str]) -> np.ndarray:
        """CSLS hub penalty ``r(x)`` of every source word over ``lang``'s whole vocabulary (``None``: the source)."""
        if lang not in self.penalties:
            exp = self.experiment
            x_gen = exp.source.embeddings.vectors
            csls_k = exp.config.csls_k
            if lang is None:
                self.penalties[lang] = hub_scores(x_gen, x_gen, csls_k, exclude_self=True)
            else:
                vocab = next(t.data.embeddings.vectors for t in exp.targets if t.lang == lang)
                self.penalties[lang] = hub_scores(x_gen, vocab, csls_k)
        return self.penalties[lang]


@dataclass
class SeedRun:
    """One seed of an experiment: the models trained so far and the shared neighbour cache."""

    experiment: Experiment
    seed: int
    neighbors: NeighborCache
    progress: bool = False
    log: Log = field(default=lambda _msg: None)
    models: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)  # the opt model's source spec and fitted projectors

    def model(self, kind: str) -> TaskModel:
        """The source model of ``kind`` (``"fixed"``, ``"nnmap"``, ``"opt"``), trained on first use."""
        if kind not in self.models:
            self.models[kind] = self.train(kind, self.experiment.source)
        return self.models[kind]

    def train(self, kind: str, lang_data: LanguageData) -> TaskModel:
        exp = self.experiment
        self.log(f"seed {self.seed}: training {kind} model on {lang_data.lang} ({len(lang_data.train)} examples)")
        return train_language(
            lang_data,
            labels=exp.labels,
            kind=kind,
            options=exp.config.train,
            seed=self.seed,
            dev=lang_data.dev,
            progress=self.progress,
        )

    def source_spec(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x_gen, x_spec, trained)`` of the ``opt`` model; ``trained`` marks rows training moved."""
        if "spec" not in self.cache:
            x_gen = self.experiment.source.embeddings.vectors
            x_spec = self.model("opt").network.word_vectors()
            self.cache["spec"] = (x_gen, x_spec, np.any(x_spec != x_gen, axis=1))
        return self.cache["spec"]

    def projector(self, margin: Optional[float] = None) -> LLMProjector:
        """An LLM projector fitted on the ``opt`` model's source (checked once per seed and margin)."""
        key = ("projector", margin)
        if key not in self.cache:
            x_gen, x_spec, _ = self.source_spec()
            reg = self.experiment.config.reg
            self.cache[key] = LLMProjector(reg=reg, margin=margin).fit(x_gen, x_spec)
        return self.cache[key]
