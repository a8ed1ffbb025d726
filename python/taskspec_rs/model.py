"""The bag-of-embeddings classifier and its on-disk format.

Network (paper §3–4)::

    ids ─ embedding ─ tanh ─┬──────────────────────────┬─ masked mean ─ head ─ logits
                            └ nnmap: (Linear→tanh) × 2 ┘   (clwe_fixed_nnmap only,
                                                             replaces the first tanh)

    head, hidden > 0:  Linear(dim, hidden) → tanh → dropout → Linear(hidden, labels)
    head, hidden = 0:  tanh → dropout → Linear(dim, labels)

Row 0 of the embedding matrix is padding (all zero, never updated); row
``i + 1`` belongs to ``words[i]``.  The masked mean ignores padding, and a
text with no known word has an all-zero bag.

Model directory layout (see ``docs/USAGE.md``)::

    model.json    metadata: format version, lang, tokenizer, kind, sizes, info
    weights.pt    torch state_dict of the network (loaded with weights_only=True)
    vocab.txt     one word per line; line i ↔ embedding row i + 1
    labels.txt    one label per line; line j ↔ output unit j
    x_gen.npy     float32 general vectors of the vocabulary (needed to project)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._io import atomic_write_dir, occupied, write_synced
from .data import Dataset, encode
from .errors import TaskspecError

__all__ = ["BagClassifier", "Score", "TaskModel", "default_device", "macro_f1", "predict_ids"]

FORMAT_VERSION = 1
KINDS = ("opt", "fixed", "nnmap")


def default_device() -> torch.device:
    """CUDA when available, otherwise CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class BagClassifier(nn.Module):
    """Mean-of-embeddings text classifier.

    Parameters
    ----------
    embeddings
        ``(n_words, dim)`` initial embedding matrix (padding row is added).
    n_labels
        Number of output classes.
    hidden
        Size of the hidden layer of the head (0: no hidden layer).
    dropout
        Dropout probability before the output layer.
    freeze
        Keep the embedding layer fixed (``clwe_fixed*``).
    nnmap_hidden
        If > 0, two token-wise ``Linear → tanh`` layers of this width are
        applied to the (frozen) embeddings before the mean
        (``clwe_fixed_nnmap``).
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        n_labels: int,
        *,
        hidden: int,
        dropout: float,
        freeze: bool,
        nnmap_hidden: int = 0,
    ) -> None:
        super().__init__()
        dim = int(embeddings.shape[1])
        self.freeze = freeze
        self.embedding = self._make_embedding(embeddings, freeze)
        self.nnmap: nn.Module | None = None
        feat = dim
        if nnmap_hidden > 0:
            self.nnmap = nn.Sequential(
                nn.Linear(dim, nnmap_hidden), nn.Tanh(), nn.Linear(nnmap_hidden, nnmap_hidden), nn.Tanh()
            )
            feat = nnmap_hidden
        if hidden > 0:
            self.head = nn.Sequential(
                nn.Linear(feat, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, n_labels)
            )
        else:
            self.head = nn.Sequential(nn.Tanh(), nn.Dropout(dropout), nn.Linear(feat, n_labels))

    @staticmethod
    def _make_embedding(matrix: np.ndarray | torch.Tensor, freeze: bool) -> nn.Embedding:
        matrix = torch.as_tensor(np.asarray(matrix, dtype=np.float32))
        weight = torch.cat([torch.zeros(1, matrix.shape[1]), matrix], dim=0)
        emb = nn.Embedding.from_pretrained(weight, freeze=freeze, padding_idx=0)
        return emb

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits for a ``(batch, length)`` tensor of ids (0 = padding)."""
        mask = (ids != 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        if self.nnmap is not None:
            # token-wise layers: transform each distinct word of the batch once
            uniq, inverse = torch.unique(ids, return_inverse=True)
            tokens = self.nnmap(self.embedding(uniq))[inverse]
        else:
            tokens = torch.tanh(self.embedding(ids))
        bag = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(bag)

    def word_vectors(self) -> np.ndarray:
        """The current embedding matrix without the padding row (``float32``)."""
        return self.embedding.weight.detach()[1:].cpu().numpy().astype(np.float32, copy=True)

    def with_embeddings(self, matrix: np.ndarray) -> BagClassifier:
        """A copy whose embedding layer is replaced by ``matrix`` (new vocabulary)."""
        net = copy.copy(self)
        net._modules = dict(self._modules)
        net._modules["embedding"] = self._make_embedding(matrix, True).to(self.embedding.weight.device)
        return net


@torch.no_grad()
def predict_ids(network: BagClassifier, ids: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """Predicted class indices for an encoded id matrix (see :func:`~taskspec_rs.data.encode`)."""
    network.eval()
    device = network.embedding.weight.device
    out = []
    for start in range(0, len(ids), batch_size):
        batch = torch.as_tensor(ids[start : start + batch_size], device=device)
        out.append(network(batch).argmax(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@dataclass
class TaskModel:
    """A trained (or projected) classifier plus everything needed to use it.

    Attributes
    ----------
    network
        The torch module.
    words
        Vocabulary; ``words[i]`` is embedding row ``i + 1``.
    labels
        Class names; output unit ``j`` is ``labels[j]``.
    lang, tokenizer
        Language code and tokeniser used for its inputs.
    kind
        ``"opt"`` (embeddings updated), ``"fixed"`` or ``"nnmap"``.
    hparams
        Constructor arguments of the network (``hidden``, ``dropout``,
        ``nnmap_hidden``).
    x_gen
        General vectors of ``words`` (``None`` if unknown); projection needs
        them for the source model.
    info
        Free-form metadata (training seed, best epoch, projection method …).
    """

    network: BagClassifier
    words: list[str]
    labels: list[str]
    lang: str
    tokenizer: str
    kind: str
    hparams: dict[str, Any]
    x_gen: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def vocab(self) -> dict[str, int]:
        """Word → row index (without the padding offset)."""
        return {w: i for i, w in enumerate(self.words)}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts with this model's vocabulary and tokeniser."""
        return encode(texts, self.vocab(), tokenizer=self.tokenizer)

    def predict(self, texts: Sequence[str]) -> list[str]:
        """Predicted labels for raw texts."""
        return [self.labels[i] for i in predict_ids(self.network, self.encode(texts))]

    def accuracy(self, dataset: Dataset) -> float:
        """Accuracy on a labelled dataset (labels must be known to the model)."""
        gold = label_indices(dataset, self.labels)
        return float(np.mean(predict_ids(self.network, self.encode(dataset.texts)) == gold))

    def score(self, dataset: Dataset) -> Score:
        """Accuracy and macro-F1 on a labelled dataset (labels must be known to the model)."""
        gold = label_indices(dataset, self.labels)
        return Score.of(gold, predict_ids(self.network, self.encode(dataset.texts)))

    def with_vocabulary(
        self, words: list[str], vectors: np.ndarray, *, lang: str, tokenizer: str, info: dict[str, Any]
    ) -> TaskModel:
        """Same network with another embedding table (e.g. projected target vectors)."""
        return TaskModel(
            network=self.network.with_embeddings(vectors),
            words=list(words),
            labels=list(self.labels),
            lang=lang,
            tokenizer=tokenizer,
            kind=self.kind,
            hparams=dict(self.hparams),
            x_gen=None,
            info={**self.info, **info},
        )

    # ------------------------------------------------------------------ persistence

    def save(self, directory: str | Path, *, force: bool = False) -> Path:
        """Write the model directory atomically.

        The files are written and fsynced in a temporary sibling folder that
        is then renamed into place; an existing non-empty ``directory`` is
        refused unless ``force`` is set, and is then swapped for the new one in
        one step, so ``directory`` always holds the previous complete model or
        the new one, even if the process is killed.

        Raises
        ------
        TaskspecError
            ``directory`` is not empty and ``force`` is not set.
        WriteError
            The folder cannot be written (full disk, read-only …); nothing is left behind.
        """
        directory = Path(directory)
        if occupied(directory) and not force:
            raise TaskspecError(f"output {directory} exists and is not empty (use --force to replace it)")
        atomic_write_dir(directory, self._write_files, replace=force)
        return directory

    def _write_files(self, folder: str) -> None:
        meta = {
            "format_version": FORMAT_VERSION,
            "lang": self.lang,
            "tokenizer": self.tokenizer,
            "kind": self.kind,
            "n_words": len(self.words),
            "dim": int(self.network.embedding.weight.shape[1]),
            "hparams": self.hparams,
            "info": self.info,
        }
        tmp = Path(folder)
        texts = {
            "model.json": json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
            "vocab.txt": "".join(w + "\n" for w in self.words),
            "labels.txt": "".join(lab + "\n" for lab in self.labels),
        }
        for name, text in texts.items():
            data = text.encode("utf-8")
            write_synced(tmp / name, lambda f, data=data: f.write(data))
        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        write_synced(tmp / "weights.pt", lambda f: torch.save(state, f))
        if self.x_gen is not None:
            x_gen = self.x_gen.astype(np.float32)
            write_synced(tmp / "x_gen.npy", lambda f: np.save(f, x_gen, allow_pickle=False))

    @classmethod
    def load(cls, directory: str | Path, *, device: torch.device | None = None) -> TaskModel:
        """Read a model directory written by :meth:`save`."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / "model.json").read_text("utf-8"))
            words = (directory / "vocab.txt").read_text("utf-8").splitlines()
            labels = (directory / "labels.txt").read_text("utf-8").splitlines()
            state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise TaskspecError(f"not a model directory: {directory} (missing {Path(exc.filename).name})") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RuntimeError) as exc:
            raise TaskspecError(f"corrupt model directory {directory}: {exc}") from None
        if meta.get("format_version") != FORMAT_VERSION or meta.get("kind") not in KINDS:
            raise TaskspecError(f"{directory}: unsupported model format")
        if len(words) != meta["n_words"]:
            raise TaskspecError(f"{directory}: vocab.txt has {len(words)} words, model.json says {meta['n_words']}")
        hp = meta["hparams"]
        network = BagClassifier(
            np.zeros((len(words), meta["dim"]), dtype=np.float32),
            len(labels),
            hidden=hp["hidden"],
            dropout=hp["dropout"],
            freeze=meta["kind"] != "opt",
            nnmap_hidden=hp.get("nnmap_hidden", 0),
        )
        try:
            network.load_state_dict(state)
        except RuntimeError as exc:
            raise TaskspecError(f"{directory}: weights do not match model.json ({exc})") from None
        x_gen_path = directory / "x_gen.npy"
        x_gen = np.load(x_gen_path, allow_pickle=False) if x_gen_path.exists() else None
        network.to(device or default_device())
        return cls(
            network=network,
            words=words,
            labels=labels,
            lang=meta["lang"],
            tokenizer=meta["tokenizer"],
            kind=meta["kind"],
            hparams=hp,
            x_gen=x_gen,
            info=meta.get("info", {}),
        )


def label_indices(dataset: Dataset, labels: Sequence[str]) -> np.ndarray:
    """Map a dataset's labels to class indices.

    Raises
    ------
    TaskspecError
        If the dataset contains a label outside ``labels``.
    """
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted(set(dataset.labels) - set(index))
    if unknown:
        raise TaskspecError(
            f"{dataset.path}: unknown label(s) {', '.join(map(repr, unknown[:5]))} (known: {', '.join(labels)})"
        )
    return np.array([index[lab] for lab in dataset.labels], dtype=np.int64)


def macro_f1(gold: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> float:
    """Macro-averaged F1: the mean over labels of ``2·TP / (2·TP + FP + FN)``.

    The labels averaged are those that occur in ``gold`` or in ``predicted``
    (as scikit-learn's ``f1_score(average="macro")`` does); a label never
    predicted correctly scores 0.  Both sequences must have the same length;
    an empty pair scores 0.
    """
    gold, predicted = np.asarray(gold), np.asarray(predicted)
    if gold.shape != predicted.shape:
        raise ValueError(f"gold and predicted differ in length ({gold.shape} vs {predicted.shape})")
    labels = np.union1d(gold, predicted)
    if labels.size == 0:
        return 0.0
    scores = []
    for label in labels:
        tp = int(np.sum((predicted == label) & (gold == label)))
        wrong = int(np.sum(predicted == label)) + int(np.sum(gold == label)) - 2 * tp  # FP + FN
        scores.append(2 * tp / (2 * tp + wrong))
    return float(np.mean(scores))


@dataclass(frozen=True)
class Score:
    """Accuracy and macro-F1 of one set of predictions (fractions in [0, 1])."""

    accuracy: float
    macro_f1: float

    @classmethod
    def of(cls, gold: np.ndarray, predicted: np.ndarray) -> Score:
        gold, predicted = np.asarray(gold), np.asarray(predicted)
        return cls(float(np.mean(predicted == gold)), macro_f1(gold, predicted))
