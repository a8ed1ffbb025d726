"""Training the classifier, and swapping projected embeddings into it.

These are the building blocks of ``taskspec-rs train|project`` and of the
experiments in :mod:`taskspec_rs.evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import VOCABULARIES, TrainOptions
from .data import Dataset, Embeddings, encode, normalize_vectors, tokenize, training_vocabulary
from .errors import TaskspecError
from .model import BagClassifier, TaskModel, default_device, label_indices, predict_ids
from .project import LinearProjector, LLMProjector

__all__ = [
    "PROJECTIONS",
    "choose_k",
    "model_vocabulary",
    "project_model",
    "project_vectors",
    "self_projection_scores",
    "train_classifier",
]

#: Projection methods accepted by :func:`project_vectors`.
PROJECTIONS = ("gen", "lp", "orth", "llm")

KINDS = ("opt", "fixed", "nnmap")


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class _Encoded:
    """Training data on the compact vocabulary of the words that occur in train/dev (ids from 1)."""

    used: np.ndarray  # rows of the full table, in compact order
    x: torch.Tensor
    y: torch.Tensor
    dev_ids: np.ndarray | None
    dev_y: np.ndarray | None


def _encode_compact(train: Dataset, dev: Dataset | None, embeddings: Embeddings, labels, tokenizer) -> _Encoded:
    """Encode train/dev over the words they use.

    Rows that never get a gradient stay equal to the general vectors under
    Adam, so training on this compact table equals training the full table,
    only much faster; the full table is rebuilt afterwards.
    """
    vocab = embeddings.index()
    x_full = encode(train.texts, vocab, tokenizer=tokenizer)
    dev_full = encode(dev.texts, vocab, tokenizer=tokenizer) if dev is not None else None
    used = np.unique(np.concatenate([x_full.ravel()] + ([dev_full.ravel()] if dev_full is not None else [])))
    used = used[used > 0]
    if used.size == 0:
        raise TaskspecError(f"{train.path}: no word of the training data is in the embedding vocabulary")
    remap = np.zeros(len(embeddings.words) + 1, dtype=np.int64)
    remap[used] = np.arange(1, len(used) + 1)
    return _Encoded(
        used=used,
        x=torch.as_tensor(remap[x_full]),
        y=torch.as_tensor(label_indices(train, labels)),
        dev_ids=remap[dev_full] if dev_full is not None else None,
        dev_y=label_indices(dev, labels) if dev is not None else None,
    )


def _fit(network: BagClassifier, data: _Encoded, options: TrainOptions, gen, device, bar) -> tuple[int, float]:
    """Adam epochs, keeping the state with the best dev accuracy; returns ``(best_epoch, best_dev_accuracy)``."""
    lengths = (data.x != 0).sum(dim=1)
    optimiser = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=options.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    best_acc, best_epoch, best_state, stale = -1.0, 0, None, 0
    for epoch in bar:
        network.train()
        order = torch.randperm(len(data.x), generator=gen)
        for start in range(0, len(order), options.batch_size):
            rows = order[start : start + options.batch_size]
            width = max(int(lengths[rows].max()), 1)
            optimiser.zero_grad()
            loss = loss_fn(network(data.x[rows, :width].to(device)), data.y[rows].to(device))
            loss.backward()
            optimiser.step()
        if data.dev_ids is None:
            continue
        acc = float(np.mean(predict_ids(network, data.dev_ids) == data.dev_y))
        bar.set_postfix(dev=f"{acc:.3f}")
        if acc > best_acc:
            best_acc, best_epoch, stale = acc, epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if options.patience and stale >= options.patience:
                break
    if best_state is None:
        return options.epochs, best_acc
    network.load_state_dict(best_state)
    return best_epoch, best_acc


def model_vocabulary(train: Dataset, embeddings: Embeddings, *, tokenizer: str, options: TrainOptions) -> Embeddings:
    """The classifier's vocabulary: the words of ``train`` (``options.vocabulary = "train"``, at least
    ``options.min_count`` occurrences) or all of ``embeddings`` (``"general"``), with their general vectors."""
    if options.vocabulary == "general":
        return embeddings
    if options.vocabulary != "train":
        raise TaskspecError(f"vocabulary must be one of {', '.join(VOCABULARIES)}, got {options.vocabulary!r}")
    return training_vocabulary(train.texts, embeddings, tokenizer=tokenizer, min_count=options.min_count)


def train_classifier(
    train: Dataset,
    dev: Dataset | None,
    embeddings: Embeddings,
    *,
    labels: Sequence[str],
    lang: str,
    tokenizer: str,
    kind: str = "opt",
    options: TrainOptions = TrainOptions(),
    seed: int = 0,
    device: torch.device | None = None,
    progress: bool = False,
    desc: str = "train",
) -> TaskModel:
    """Train the bag-of-embeddings classifier.

    Parameters
    ----------
    train, dev
        Labelled data; the epoch with the best ``dev`` accuracy is kept (the
        last epoch when ``dev`` is ``None``).  Training stops early after
        ``options.patience`` epochs without improvement (0: never).
    embeddings
        General vectors initialising the embedding layer.  The vocabulary is
        the words of ``train`` that occur ``options.min_count`` times and have
        a vector here (``options.vocabulary = "train"``, the default and the
        paper's protocol), or every word here (``"general"``); words outside
        it are dropped from the bags.  Rescaling (``options.rescale``) is
        computed on all of ``embeddings``, before the vocabulary is cut.
    labels
        Class names (output order).
    kind
        ``"opt"`` updates the embeddings, ``"fixed"`` freezes them,
        ``"nnmap"`` freezes them and adds two token-wise tanh layers.
    options
        Hyperparameters.
    seed
        Seeds parameter initialisation, dropout and shuffling.

    Returns
    -------
    TaskModel
        With ``info`` holding ``seed``, ``best_epoch`` and ``dev_accuracy``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be opt, fixed or nnmap, got {kind!r}")
    device = device or default_device()
    gen = _seed_everything(seed)
    if options.rescale:
        embeddings = embeddings.rescaled()
    embeddings = model_vocabulary(train, embeddings, tokenizer=tokenizer, options=options)
    hparams = {
        "rescale": options.rescale,
        "hidden": options.hidden,
        "dropout": options.dropout,
        "nnmap_hidden": (options.nnmap_hidden or embeddings.dim) if kind == "nnmap" else 0,
    }
    if options.normalize != "none":  # the caller normalised the vectors; projection must do the same
        hparams["normalize"] = options.normalize
    data = _encode_compact(train, dev, embeddings, labels, tokenizer)
    network = BagClassifier(
        embeddings.vectors[data.used - 1],
        len(labels),
        hidden=hparams["hidden"],
        dropout=hparams["dropout"],
        nnmap_hidden=hparams["nnmap_hidden"],
        freeze=kind != "opt",
    ).to(device)
    bar = tqdm(range(1, options.epochs + 1), desc=desc, disable=not progress, leave=False)
    best_epoch, best_acc = _fit(network, data, options, gen, device, bar)
    full = embeddings.vectors.copy()
    full[data.used - 1] = network.word_vectors()
    network.embedding = BagClassifier._make_embedding(full, kind != "opt").to(device)
    network.eval()
    info = {"seed": seed, "best_epoch": best_epoch, "dev_accuracy": best_acc if dev is not None else None}
    info["vocabulary"] = options.vocabulary
    if options.vocabulary == "train":
        info["min_count"] = options.min_count
    return TaskModel(
        network=network,
        words=list(embeddings.words),
        labels=list(labels),
        lang=lang,
        tokenizer=tokenizer,
        kind=kind,
        hparams=hparams,
        x_gen=embeddings.vectors,
        info=info,
    )


def project_vectors(
    x_gen: np.ndarray,
    x_spec: np.ndarray,
    y_gen: np.ndarray,
    *,
    method: str,
    k: int = 10,
    reg: float = 1e-3,
) -> np.ndarray:
    """Task-specific target vectors by one projection method.

    ``"gen"`` returns ``y_gen`` unchanged (the ``clwe_fixed`` setting),
    ``"lp"`` the least-squares linear map, ``"orth"`` the orthogonal
    (Procrustes) map (:class:`~taskspec_rs.LinearProjector`), ``"llm"`` the
    locally linear mapping with ``k`` neighbours (:class:`~taskspec_rs.LLMProjector`).
    """
    if method == "gen":
        return np.asarray(y_gen, dtype=np.float32)
    if method in ("lp", "orth"):
        return LinearProjector("lstsq" if method == "lp" else "orthogonal").fit(x_gen, x_spec).transform(y_gen)
    if method == "llm":
        k = max(1, min(int(k), len(x_gen)))
        return LLMProjector(k, reg=reg, backend="exact").fit(x_gen, x_spec).project(y_gen).y_spec
    raise TaskspecError(f"unknown projection {method!r} (use {', '.join(PROJECTIONS)})")


def project_model(
    model: TaskModel,
    target: Embeddings,
    *,
    lang: str,
    tokenizer: str,
    method: str = "llm",
    k: int = 10,
    reg: float = 1e-3,
) -> TaskModel:
    """A target-language model: the source network with projected target embeddings.

    Parameters
    ----------
    model
        Trained source model (must carry ``x_gen``).
    target
        General target vectors of the words to support (the target vocabulary).
    method, k, reg
        See :func:`project_vectors`.  ``"gen"`` suits frozen-embedding models.
    """
    if model.x_gen is None:
        raise TaskspecError("the model has no general source vectors (x_gen.npy); cannot project")
    if target.dim != model.x_gen.shape[1]:
        raise TaskspecError(
            f"embedding dimension mismatch: target vectors have {target.dim}, source {model.x_gen.shape[1]}"
        )
    normalize = model.hparams.get("normalize", "none")
    if normalize != "none":
        target = Embeddings(target.words, normalize_vectors(target.vectors, normalize))
    if model.hparams.get("rescale"):
        target = target.rescaled()
    y_spec = project_vectors(model.x_gen, model.network.word_vectors(), target.vectors, method=method, k=k, reg=reg)
    info = {"projection": method, "source_lang": model.lang}
    if method == "llm":
        info["k"] = k
    return model.with_vocabulary(target.words, y_spec, lang=lang, tokenizer=tokenizer, info=info)


def self_projection_scores(
    model: TaskModel, dev: Dataset, general: Embeddings, *, k_grid: Sequence[int], reg: float = 1e-3
) -> dict[int, float]:
    """Source-dev accuracy of ``model`` for each k of ``k_grid`` when every dev word is replaced by its LLM
    projection from the model's vocabulary without the word itself: the label-free criterion by which
    ``clwe_opt_llm_ktask`` chooses k (the same computation as ``taskspec-rs eval``).

    Parameters
    ----------
    model
        A trained ``opt`` source model (with ``x_gen``).
    dev
        The labelled source dev set.
    general
        The general source vectors, prepared as for training (normalised, rescaled): every dev word with a vector
        here is projected, also words outside the model's vocabulary.
    """
    from .methods import NEIGHBOR_WIDTH
    from .neighbors import knn

    if model.x_gen is None:
        raise TaskspecError("the model has no general source vectors (x_gen.npy); cannot tune k")
    if general.dim != model.x_gen.shape[1]:
        raise TaskspecError(
            f"embedding dimension mismatch: source vectors have {general.dim}, model {model.x_gen.shape[1]}"
        )
    if not k_grid or min(k_grid) < 1:
        raise TaskspecError(f"k_grid must be a non-empty list of positive integers, got {list(k_grid)}")
    words = {w for text in dev.texts for w in tokenize(text, tokenizer=model.tokenizer)}
    vocab = general.subset(words)
    if not vocab.words:
        raise TaskspecError(f"{dev.path}: no word of the dev set is in the source embeddings")
    index = model.vocab()
    rows = np.array([index.get(w, -1) for w in vocab.words], dtype=np.int64)
    width = max(1, min(max(max(k_grid), NEIGHBOR_WIDTH), len(model.x_gen) - 1))
    _, idx = knn(vocab.vectors, model.x_gen, width, metric="cosine", hub_penalty=None, exclude=rows)
    projector = LLMProjector(reg=reg, margin=None).fit(model.x_gen, model.network.word_vectors())
    ids = encode(dev.texts, vocab.index(), tokenizer=model.tokenizer)
    gold = label_indices(dev, model.labels)
    scores = {}
    for k in sorted(set(k_grid)):
        y_spec = projector.from_neighbors(vocab.vectors, idx[:, : min(k, width)]).y_spec
        scores[k] = float(np.mean(predict_ids(model.network.with_embeddings(y_spec), ids) == gold))
    return scores


def choose_k(
    model: TaskModel, dev: Dataset, general: Embeddings, *, k_grid: Sequence[int], reg: float = 1e-3
) -> tuple[int, dict[int, float]]:
    """The k of :func:`self_projection_scores` with the best accuracy (ties: the smallest), and every score."""
    from .methods import best_choice

    scores = self_projection_scores(model, dev, general, k_grid=k_grid, reg=reg)
    return best_choice(scores), scores
