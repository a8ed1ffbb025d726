"""Pipeline steps: train a classifier, project its embeddings, swap them in.

These are the building blocks of ``taskspec-rs train|project|predict`` and of
the experiments in :mod:`taskspec_rs.evaluate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import TaskspecError, TrainOptions
from .data import Dataset, Embeddings, encode
from .model import BagClassifier, TaskModel, default_device, label_indices, predict_ids
from .project import knn, llm_weights, lp_project

__all__ = [
    "PROJECTIONS",
    "llm_projections",
    "project_model",
    "project_vectors",
    "train_classifier",
]

#: Projection methods accepted by :func:`project_vectors`.
PROJECTIONS = ("gen", "lp", "llm")


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


def llm_projections(
    x_gen: np.ndarray,
    x_spec: np.ndarray,
    y_gen: np.ndarray,
    ks: Iterable[int],
    *,
    reg: float = 1e-3,
    self_rows: np.ndarray | None = None,
) -> dict[int, np.ndarray]:
    """Locally linear mapping for several ``k`` with one neighbour search.

    ``y_spec[i] = Σ_j w_ij x_spec[n_ij]`` where ``n_i`` are the ``k`` nearest
    source words of ``y_gen[i]`` in the general space (cosine) and ``w_i``
    the regularised reconstruction weights of ``y_gen[i]`` from
    ``x_gen[n_i]`` (summing to 1).  For each ``k`` the result equals
    ``llm_project(x_gen, y_gen, x_spec, k)``.

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
        ``y_gen[i]``; that row is never used as its own neighbour.

    Returns
    -------
    dict
        ``k → y_spec`` (``float32``, shape ``(len(y_gen), x_spec.shape[1])``).
    """
    ks = sorted(set(ks))
    n_source = len(x_gen) - (1 if self_rows is not None else 0)
    kmax = min(max(ks), n_source)
    extra = 1 if self_rows is not None else 0
    _, idx = knn(y_gen, x_gen, kmax + extra)
    if self_rows is not None:
        keep_first = idx != np.asarray(self_rows)[:, None]
        order = np.argsort(~keep_first, axis=1, kind="stable")  # non-self first, order kept
        idx = np.take_along_axis(idx, order, axis=1)[:, :kmax]
    out = {}
    for k in ks:
        kk = min(k, kmax)
        nbrs = np.ascontiguousarray(idx[:, :kk])
        weights = llm_weights(y_gen, x_gen, nbrs, reg=reg)
        out[k] = np.einsum("nk,nkd->nd", weights, x_spec[nbrs]).astype(np.float32)
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
    ``"llm"`` the locally linear mapping with ``k`` neighbours.
    """
    if method == "gen":
        return np.asarray(y_gen, dtype=np.float32)
    if method == "lp":
        return lp_project(x_gen, x_spec, y_gen)
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
    if model.hparams.get("rescale"):
        target = target.rescaled()
    y_spec = project_vectors(model.x_gen, model.network.word_vectors(), target.vectors, method=method, k=k, reg=reg)
    info = {"projection": method, "source_lang": model.lang}
    if method == "llm":
        info["k"] = k
    return model.with_vocabulary(target.words, y_spec, lang=lang, tokenizer=tokenizer, info=info)
