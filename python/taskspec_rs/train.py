"""Pipeline steps: train a classifier, project its embeddings, swap them in.

These are the building blocks of ``taskspec-rs train|project|predict`` and of
the experiments in :mod:`taskspec_rs.evaluate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import _core
from .config import TaskspecError, TrainOptions
from .data import Dataset, Embeddings, encode
from .model import BagClassifier, TaskModel, default_device, label_indices, predict_ids
from .project import hub_scores, knn, llm_from_neighbors, lp_project, margin_counts, orthogonal_project

__all__ = [
    "NORMALIZATIONS",
    "PROJECTIONS",
    "llm_margin_projections",
    "llm_neighbors",
    "llm_projections",
    "normalize_vectors",
    "project_model",
    "project_vectors",
    "train_classifier",
]

#: Projection methods accepted by :func:`project_vectors`.
PROJECTIONS = ("gen", "lp", "orth", "llm")

#: General-space normalisations (``[train] normalize``), as VecMap step sequences.
NORMALIZATIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "center": ("center",),
    "unit_center_unit": ("unit", "center", "unit"),
}


def normalize_vectors(vectors: np.ndarray, mode: str) -> np.ndarray:
    """Normalise one language's general vectors (``mode`` in :data:`NORMALIZATIONS`).

    ``"center"`` subtracts the language's mean vector, ``"unit_center_unit"``
    is VecMap's unit length → mean centring → unit length.  Applied to the
    whole embedding vocabulary of each language, before rescaling.
    """
    if mode not in NORMALIZATIONS:
        raise TaskspecError(f"unknown normalisation {mode!r} (use {', '.join(NORMALIZATIONS)})")
    if mode == "none":
        return vectors
    from .align import normalize_embeddings

    out = normalize_embeddings(vectors, steps=NORMALIZATIONS[mode])
    norms = np.linalg.norm(out, axis=1)
    if not (norms > 0).all():
        raise TaskspecError(f"normalisation {mode!r} produced a zero vector (row {int(np.argmin(norms))})")
    return out


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


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
        General vectors initialising the embedding layer; the vocabulary is
        their word list (unknown words are dropped from the bags).
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
    if kind not in ("opt", "fixed", "nnmap"):
        raise ValueError(f"kind must be opt, fixed or nnmap, got {kind!r}")
    device = device or default_device()
    gen = _seed_everything(seed)
    if options.rescale:
        embeddings = embeddings.rescaled()
    hparams = {
        "rescale": options.rescale,
        "hidden": options.hidden,
        "dropout": options.dropout,
        "nnmap_hidden": (options.nnmap_hidden or embeddings.dim) if kind == "nnmap" else 0,
    }
    if options.normalize != "none":  # the caller normalised the vectors; projection must do the same
        hparams["normalize"] = options.normalize
    vocab = embeddings.index()
    x_full = encode(train.texts, vocab, tokenizer=tokenizer)
    dev_full = encode(dev.texts, vocab, tokenizer=tokenizer) if dev is not None else None
    # Train on the compact vocabulary of words that occur in train/dev: rows that never get a
    # gradient stay equal to the general vectors under Adam, so this equals training the full
    # table, only much faster.  The full table is rebuilt afterwards.
    used = np.unique(np.concatenate([x_full.ravel()] + ([dev_full.ravel()] if dev_full is not None else [])))
    used = used[used > 0]
    if used.size == 0:
        raise TaskspecError(f"{train.path}: no word of the training data is in the embedding vocabulary")
    remap = np.zeros(len(embeddings.words) + 1, dtype=np.int64)
    remap[used] = np.arange(1, len(used) + 1)
    network = BagClassifier(
        embeddings.vectors[used - 1],
        len(labels),
        hidden=hparams["hidden"],
        dropout=hparams["dropout"],
        nnmap_hidden=hparams["nnmap_hidden"],
        freeze=kind != "opt",
    ).to(device)
    x = torch.as_tensor(remap[x_full])
    y = torch.as_tensor(label_indices(train, labels))
    dev_ids = remap[dev_full] if dev_full is not None else None
    dev_y = label_indices(dev, labels) if dev is not None else None
    lengths = (x != 0).sum(dim=1)
    params = [p for p in network.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=options.lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    best_acc, best_epoch, best_state, stale = -1.0, 0, None, 0
    bar = tqdm(range(1, options.epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        network.train()
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(order), options.batch_size):
            rows = order[start : start + options.batch_size]
            width = max(int(lengths[rows].max()), 1)
            batch = x[rows, :width].to(device)
            optimiser.zero_grad()
            loss = loss_fn(network(batch), y[rows].to(device))
            loss.backward()
            optimiser.step()
        if dev_ids is None:
            continue
        acc = float(np.mean(predict_ids(network, dev_ids) == dev_y))
        bar.set_postfix(dev=f"{acc:.3f}")
        if acc > best_acc:
            best_acc, best_epoch, stale = acc, epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if options.patience and stale >= options.patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    else:
        best_epoch = options.epochs
    full = embeddings.vectors.copy()
    full[used - 1] = network.word_vectors()
    network.embedding = BagClassifier._make_embedding(full, kind != "opt").to(device)
    network.eval()
    return TaskModel(
        network=network,
        words=list(embeddings.words),
        labels=list(labels),
        lang=lang,
        tokenizer=tokenizer,
        kind=kind,
        hparams=hparams,
        x_gen=embeddings.vectors,
        info={"seed": seed, "best_epoch": best_epoch, "dev_accuracy": best_acc if dev is not None else None},
    )


def llm_neighbors(
    x_gen: np.ndarray,
    y_gen: np.ndarray,
    kmax: int,
    *,
    self_rows: np.ndarray | None = None,
    metric: str = "cosine",
    csls_k: int = 10,
    csls_targets: np.ndarray | None = None,
    csls_penalty: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``kmax`` best source neighbours of every row of ``y_gen``, best first.

    Parameters
    ----------
    x_gen, y_gen
        General source vectors and the general vectors of the words to project.
    kmax
        Neighbours per word (clipped to the number of usable source words).
    self_rows
        See :func:`llm_projections` (a word is never its own neighbour).
    metric
        ``"cosine"`` ranks by ``cos(y, x)``; ``"csls"`` by ``cos(y, x) - r(x)/2``
        where ``r(x)`` is the mean cosine of source word ``x`` to its ``csls_k``
        nearest words of ``csls_targets`` (CSLS, Conneau et al. 2018, without the
        target-side term, which does not change a target word's ranking).  With
        ``self_rows`` the target vocabulary is the source one (``r`` computed with
        ``exclude_self``).
    csls_targets
        The target vocabulary for ``r(x)`` (default ``y_gen``); ignored with ``self_rows``.
    csls_penalty
        Precomputed ``r(x)`` (one value per source row, e.g. cached across
        seeds: it depends on the general vectors only); overrides ``csls_targets``.

    Returns
    -------
    scores, indices
        ``(n, kmax)`` float32 scores (cosine, or the CSLS score) and int64 source rows.
    """
    if metric not in ("cosine", "csls"):
        raise TaskspecError(f"unknown neighbour metric {metric!r} (use cosine or csls)")
    x_gen = np.ascontiguousarray(x_gen, dtype=np.float32)
    y_gen = np.ascontiguousarray(y_gen, dtype=np.float32)
    n_source = len(x_gen) - (1 if self_rows is not None else 0)
    kmax = max(1, min(int(kmax), n_source))
    extra = 1 if self_rows is not None else 0
    bias = None
    if metric == "csls":
        if csls_penalty is not None:
            r = np.asarray(csls_penalty, dtype=np.float32)
            if r.shape != (len(x_gen),):
                raise TaskspecError(f"csls_penalty: expected shape ({len(x_gen)},), got {r.shape}")
        elif self_rows is not None:
            r = hub_scores(x_gen, x_gen, csls_k, exclude_self=True)
        else:
            targets = y_gen if csls_targets is None else np.ascontiguousarray(csls_targets, dtype=np.float32)
            r = hub_scores(x_gen, targets, min(csls_k, len(targets)))
        bias = np.ascontiguousarray(-0.5 * r, dtype=np.float32)
    if bias is None:
        sims, idx = knn(y_gen, x_gen, kmax + extra)
    else:
        sims, idx = _core.knn(y_gen, x_gen, kmax + extra, base_bias=bias)
    if self_rows is not None:
        keep_first = idx != np.asarray(self_rows)[:, None]
        order = np.argsort(~keep_first, axis=1, kind="stable")  # non-self first, order kept
        idx = np.take_along_axis(idx, order, axis=1)[:, :kmax]
        sims = np.take_along_axis(sims, order, axis=1)[:, :kmax]
    return np.ascontiguousarray(sims), np.ascontiguousarray(idx)


def llm_projections(
    x_gen: np.ndarray,
    x_spec: np.ndarray,
    y_gen: np.ndarray,
    ks: Iterable[int],
    *,
    reg: float = 1e-3,
    self_rows: np.ndarray | None = None,
    metric: str = "cosine",
    csls_k: int = 10,
    csls_targets: np.ndarray | None = None,
    neighbors: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[int, np.ndarray]:
    """Locally linear mapping for several ``k`` with one neighbour search.

    ``y_spec[i] = Σ_j w_ij x_spec[n_ij]`` where ``n_i`` are the ``k`` nearest
    source words of ``y_gen[i]`` in the general space (cosine, or CSLS with
    ``metric="csls"``) and ``w_i`` the regularised reconstruction weights of
    ``y_gen[i]`` from ``x_gen[n_i]`` (summing to 1).  For each ``k`` the result
    equals ``llm_project(x_gen, y_gen, x_spec, k, metric=metric)``.

    Parameters
    ----------
    x_gen, x_spec
        General and task-specific source vectors (same rows).
    y_gen
        General vectors of the words to project.
    ks
        Neighbourhood sizes (each is clipped to the number of usable source words).
    reg
        Regulariser of the local Gram matrix.
    self_rows
        When projecting source words onto the source vocabulary (k tuning on
        the source language), ``self_rows[i]`` is the source row of
        ``y_gen[i]``; that row is never used as its own neighbour (and CSLS
        penalties are computed on the source vocabulary with ``exclude_self``).
    metric, csls_k, csls_targets
        Neighbour ranking, see :func:`llm_neighbors`.
    neighbors
        Precomputed ``(scores, indices)`` from :func:`llm_neighbors` with at
        least ``max(ks)`` columns (then no search is run).

    Returns
    -------
    dict
        ``k → y_spec`` (``float32``, shape ``(len(y_gen), x_spec.shape[1])``).
    """
    ks = sorted(set(ks))
    if neighbors is None:
        neighbors = llm_neighbors(
            x_gen, y_gen, max(ks), self_rows=self_rows, metric=metric, csls_k=csls_k, csls_targets=csls_targets
        )
    idx = neighbors[1]
    kmax = idx.shape[1]
    out = {}
    for k in ks:
        kk = min(k, kmax)
        out[k] = llm_from_neighbors(x_gen, y_gen, x_spec, idx[:, :kk], reg=reg)[0]
    return out


def llm_margin_projections(
    x_gen: np.ndarray,
    x_spec: np.ndarray,
    y_gen: np.ndarray,
    margins: Iterable[float],
    neighbors: tuple[np.ndarray, np.ndarray],
    *,
    reg: float = 1e-3,
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """LLM with an adaptive k per word: each word keeps the neighbours within ``margin`` of its best.

    ``neighbors`` = ``(scores, indices)`` of :func:`llm_neighbors`; their width
    is the largest k allowed.  Equals ``llm_project(..., k=width, margin=m)``.

    Returns
    -------
    dict
        ``margin → (y_spec, k_per_word)``.
    """
    scores, idx = neighbors
    out: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for m in sorted(set(float(v) for v in margins)):
        y_spec = llm_from_neighbors(x_gen, y_gen, x_spec, idx, scores=scores, margin=m, reg=reg)[0]
        out[m] = (y_spec, margin_counts(scores, m))
    return out


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
    ``"lp"`` uses the least-squares linear map :func:`~taskspec_rs.project.lp_project`,
    ``"orth"`` the orthogonal (Procrustes) map :func:`~taskspec_rs.project.orthogonal_project`,
    ``"llm"`` the locally linear mapping with ``k`` neighbours.
    """
    if method == "gen":
        return np.asarray(y_gen, dtype=np.float32)
    if method == "lp":
        return lp_project(x_gen, x_spec, y_gen)
    if method == "orth":
        return orthogonal_project(x_gen, x_spec, y_gen)
    if method == "llm":
        return llm_projections(x_gen, x_spec, y_gen, [k], reg=reg)[k]
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
