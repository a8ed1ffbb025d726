"""Datasets, embeddings and tokenisation.

Supported inputs
----------------
* labelled data: JSON lines (one object per line with a text and a label
  key), TSV with a header row naming the columns (quoted fields as
  spreadsheets and ``csv`` write them), and SemEval-2016 ABSA sentence XML
  (sentence labels derived from opinion polarities, see
  :func:`absa_sentence_label`).  Files are UTF-8, with or without a
  byte-order mark, with LF or CRLF line ends; lines are split at ``\n`` only
  (:func:`split_lines`);
* general embeddings: word2vec text format (first line ``count dim``) and
  ``.npz`` archives holding ``<key>__words`` (unicode array) and
  ``<key>__vecs`` (float array) — loaded without pickle.

Malformed input raises :class:`~taskspec_rs.errors.TaskspecError` with a
``file:line`` location.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._io import atomic_write_text
from .config import NORMALIZATIONS, DataOptions
from .errors import TaskspecError

__all__ = [
    "Dataset",
    "Embeddings",
    "absa_sentence_label",
    "atomic_write_text",
    "encode",
    "load_dataset",
    "load_embeddings",
    "normalize_embeddings",
    "normalize_vectors",
    "read_lines",
    "split_lines",
    "tokenize",
    "training_vocabulary",
]

TOKEN_RE = re.compile(r"\w+(?:['’]\w+)?")


@dataclass(frozen=True)
class Dataset:
    """Labelled texts read from one file.

    Attributes
    ----------
    texts, labels
        Parallel lists; examples whose text is empty or only whitespace are
        dropped when reading.
    path
        Where the examples came from (for messages).
    """

    texts: list[str]
    labels: list[str]
    path: Path

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Dataset:
        """The first ``n`` examples."""
        return Dataset(self.texts[:n], self.labels[:n], self.path)


@dataclass(frozen=True)
class Embeddings:
    """A word-embedding table.

    Attributes
    ----------
    words
        Vocabulary, row ``i`` of ``vectors`` belongs to ``words[i]``.
    vectors
        ``float32`` array of shape ``(len(words), dim)`` with no all-zero row.
    """

    words: list[str]
    vectors: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def index(self) -> dict[str, int]:
        """Word → row mapping."""
        return {w: i for i, w in enumerate(self.words)}

    def rescaled(self) -> Embeddings:
        """A copy scaled by one constant so that the mean row norm is ``sqrt(dim)``.

        Every component then has a root-mean-square of about 1, whatever the
        scale of the original vectors (unit-normalised vectors have components
        of about ``1/sqrt(dim)``, which makes Adam's fixed step size huge
        relative to them).  Directions — hence cosine neighbours and LLM
        weights — are unchanged.  Idempotent.
        """
        mean_norm = float(np.linalg.norm(self.vectors, axis=1).mean())
        factor = np.sqrt(self.dim) / mean_norm
        if abs(factor - 1.0) < 1e-6:
            return self
        return Embeddings(self.words, (self.vectors * factor).astype(np.float32))

    def subset(self, words: Iterable[str]) -> Embeddings:
        """The rows of the given words that are in the vocabulary (in vocabulary order)."""
        wanted = set(words)
        rows = [i for i, w in enumerate(self.words) if w in wanted]
        return Embeddings([self.words[i] for i in rows], self.vectors[rows])


# --------------------------------------------------------------------------- tokenisation


@lru_cache(maxsize=1)
def _janome():
    from ._extras import require

    return require("janome.tokenizer", "the janome tokenizer (Japanese)").Tokenizer(wakati=True)


def tokenize(text: str, *, tokenizer: str = "regex") -> list[str]:
    """Split a text into tokens.

    Parameters
    ----------
    text
        Raw text.
    tokenizer
        ``"regex"``: lower-case, then every match of ``\\w+(?:['’]\\w+)?``.
        ``"janome"``: Japanese morphological segmentation (janome, wakati
        mode); case is kept and whitespace tokens are dropped.  Both rules
        match how the shared aligned vectors were built.
    """
    if tokenizer == "regex":
        return TOKEN_RE.findall(text.lower())
    if tokenizer == "janome":
        return [t for t in _janome().tokenize(text) if t.strip()]
    raise TaskspecError(f"unknown tokenizer {tokenizer!r} (use regex or janome)")


def encode(texts: Sequence[str], vocab: dict[str, int], *, tokenizer: str, max_len: int = 256) -> np.ndarray:
    """Turn texts into a padded matrix of vocabulary ids.

    Ids are ``vocab[word] + 1``; ``0`` is padding.  Tokens that are not in
    ``vocab`` (unknown words) are dropped from the bag; a text without any
    known token becomes an all-padding row (its bag is empty).  At most
    ``max_len`` known tokens are kept per text.

    Returns
    -------
    numpy.ndarray
        ``int64`` array of shape ``(len(texts), L)`` with ``L >= 1``.
    """
    rows = []
    for text in texts:
        ids = [vocab[t] + 1 for t in tokenize(text, tokenizer=tokenizer) if t in vocab]
        rows.append(ids[:max_len])
    width = max([1] + [len(r) for r in rows])
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def training_vocabulary(
    texts: Iterable[str], embeddings: Embeddings, *, tokenizer: str, min_count: int = 1
) -> Embeddings:
    """The rows of ``embeddings`` whose words occur at least ``min_count`` times in ``texts``.

    This is the paper's vocabulary (the words of the training data): every
    row of the result is a word that training moves.  Rows keep the order of
    ``embeddings``.

    Raises
    ------
    TaskspecError
        ``min_count`` < 1, or no word of ``texts`` occurs ``min_count`` times
        and has a vector.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise TaskspecError(f"min_count must be an integer >= 1, got {min_count!r}")
    counts = Counter(token for text in texts for token in tokenize(text, tokenizer=tokenizer))
    vocab = embeddings.subset(w for w, n in counts.items() if n >= min_count)
    if not vocab.words:
        raise TaskspecError(
            f"no word of the training data occurs {min_count} time(s) and has a general vector: "
            "lower train.min_count, or check the tokenizer and the embeddings"
        )
    return vocab


# --------------------------------------------------------------------------- datasets


def _infer_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix == ".xml":
        return "absa_xml"
    raise TaskspecError(f"{path}: cannot infer the data format from the extension; set format = jsonl|tsv|absa_xml")


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8, without a leading byte-order mark."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TaskspecError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise TaskspecError(f"expected a file, got a directory: {path}") from None
    except OSError as exc:
        raise TaskspecError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TaskspecError(
            f"{path}:{line}: not valid UTF-8 ({exc.reason} at byte {exc.start}, column {column}); "
            "save the file as UTF-8"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def split_lines(text: str) -> list[str]:
    """Split ``text`` into lines at ``\\n`` only (a ``\\r`` before it is dropped: CRLF files).

    Unlike :meth:`str.splitlines`, characters such as U+2028, U+2029, U+0085,
    form feed or a lone ``\\r`` stay inside the line: they occur in texts from
    the web and in JSON written with ``ensure_ascii=False``.  A final line
    break does not start another line.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, split as :func:`split_lines` does (BOM dropped).

    Raises
    ------
    TaskspecError
        Missing file or invalid UTF-8 (reported as ``file:line``).
    """
    return split_lines(_read_text(Path(path)))


def _read_jsonl(path: Path, opts: DataOptions) -> list[tuple[str, str]]:
    out = []
    for lineno, line in enumerate(split_lines(_read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskspecError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise TaskspecError(f"{path}:{lineno}: expected a JSON object")
        for key in (opts.text_column, opts.label_column):
            if key not in obj:
                raise TaskspecError(f"{path}:{lineno}: missing key {key!r}")
        text, label = obj[opts.text_column], obj[opts.label_column]
        if not isinstance(text, str):
            raise TaskspecError(f"{path}:{lineno}: {opts.text_column!r} must be a string")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise TaskspecError(f"{path}:{lineno}: {opts.label_column!r} must be a string or integer")
        out.append((text, str(label)))
    return out


def _quoted_field(buf: str, pos: int, lines: list[str], nxt: int) -> tuple[str, str, int, int] | None:
    """The quoted field that starts at ``buf[pos]`` (a ``"``), continued over ``lines[nxt:]`` if needed.

    Returns ``(value, buf, nxt, end)``: the unquoted value, the record's text
    with any lines the field spans joined by ``\n``, the index of the next
    unread line and the position after the closing quote.  ``None`` when it
    is not a well-formed quoted field (the closing quote is not followed by a
    tab or the end of the line, or there is none).
    """
    j = pos + 1
    while True:
        k = buf.find('"', j)
        if k < 0:
            if nxt >= len(lines):
                return None
            buf, nxt = buf + "\n" + lines[nxt], nxt + 1
        elif buf.startswith('"', k + 1):
            j = k + 2
        elif k + 1 == len(buf) or buf[k + 1] == "\t":
            return buf[pos + 1 : k].replace('""', '"'), buf, nxt, k + 1
        else:
            return None


def _tsv_record(lines: list[str], i: int) -> tuple[list[str], int]:
    """The fields of the record that starts at ``lines[i]`` and the index of the line after it."""
    buf, nxt, pos, fields = lines[i], i + 1, 0, []
    while True:
        quoted = _quoted_field(buf, pos, lines, nxt) if buf.startswith('"', pos) else None
        if quoted is not None:
            value, buf, nxt, end = quoted
        else:  # unquoted, or not well-formed quoted: the text up to the next tab, as it is
            end = buf.find("\t", pos)
            end = len(buf) if end < 0 else end
            value = buf[pos:end]
        fields.append(value)
        if end >= len(buf):
            return fields, nxt
        pos = end + 1


def _tsv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every record; blank lines are skipped."""
    lines = split_lines(text)
    i = 0
    while i < len(lines):
        lineno, line = i + 1, lines[i]
        if '"' not in line:
            i += 1
            if line.strip() or lineno == 1:
                yield lineno, line.split("\t")
            continue
        fields, i = _tsv_record(lines, i)
        yield lineno, fields


def _read_tsv(path: Path, opts: DataOptions) -> list[tuple[str, str]]:
    records = _tsv_records(_read_text(path))
    first = next(records, None)
    if first is None:
        raise TaskspecError(f"{path}: empty file (a TSV needs a header row)")
    header = first[1]
    for col in (opts.text_column, opts.label_column):
        if col not in header:
            raise TaskspecError(f"{path}:1: header has no column {col!r} (columns: {', '.join(header)})")
    ti, li = header.index(opts.text_column), header.index(opts.label_column)
    out = []
    for lineno, fields in records:
        if len(fields) != len(header):
            raise TaskspecError(f"{path}:{lineno}: expected {len(header)} tab-separated fields, got {len(fields)}")
        out.append((fields[ti], fields[li]))
    return out


def absa_sentence_label(polarities: Iterable[str], *, mode: str = "three") -> str | None:
    """The sentence label implied by its aspect opinions.

    Parameters
    ----------
    polarities
        The ``polarity`` attributes of the sentence's ``<Opinion>`` elements.
    mode
        ``"three"``: the label is the common polarity when every opinion has
        the same polarity among positive/negative/neutral.  ``"binary"``: as
        ``"three"`` but neutral sentences are dropped too.

    Returns
    -------
    str or None
        ``None`` means "drop the sentence": no opinions, mixed polarities
        (e.g. positive and negative), or any ``conflict`` polarity.
    """
    kinds = set(polarities)
    if len(kinds) != 1:
        return None
    (label,) = kinds
    allowed = ("positive", "negative", "neutral") if mode == "three" else ("positive", "negative")
    return label if label in allowed else None


def _read_absa(path: Path, opts: DataOptions) -> list[tuple[str, str]]:
    try:
        root = ET.fromstring(_read_text(path))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else "?"
        raise TaskspecError(f"{path}:{line}: malformed XML ({exc})") from None
    out = []
    for sentence in root.iter("sentence"):
        text_el = sentence.find("text")
        text = (text_el.text or "") if text_el is not None else ""
        label = absa_sentence_label((o.get("polarity", "") for o in sentence.iter("Opinion")), mode=opts.absa_labels)
        if label is not None:
            out.append((text, label))
    return out


_READERS = {"jsonl": _read_jsonl, "tsv": _read_tsv, "absa_xml": _read_absa}


def load_dataset(path: str | Path, *, options: DataOptions = DataOptions()) -> Dataset:
    """Read a labelled dataset.

    Examples whose text is empty or only whitespace (``str.isspace``: also
    U+00A0, U+2028 …) are dropped; a text with no known word is kept (it
    becomes an empty bag).  Labels are kept as written (JSON integers become
    strings); checking them against the label set is the caller's part.

    Raises
    ------
    TaskspecError
        Missing file, invalid UTF-8 or malformed line (reported as
        ``file:line``) or no examples left.
    """
    path = Path(path)
    pairs = _READERS[_infer_format(path, options.format)](path, options)
    pairs = [(t, lab) for t, lab in pairs if t.strip()]
    if not pairs:
        raise TaskspecError(f"{path}: dataset is empty (no labelled examples with text)")
    return Dataset([t for t, _ in pairs], [lab for _, lab in pairs], path)


# --------------------------------------------------------------------------- embeddings


def _finish_embeddings(words: list[str], vectors: np.ndarray, where: str) -> Embeddings:
    """Drop duplicate words (first wins) and all-zero or non-finite rows."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise TaskspecError(f"{where}: words and vectors do not line up")
    seen: set[str] = set()
    keep = []
    finite = np.isfinite(vectors).all(axis=1)
    nonzero = np.abs(vectors).sum(axis=1) > 0
    for i, w in enumerate(words):
        if w not in seen and finite[i] and nonzero[i]:
            seen.add(w)
            keep.append(i)
    if not keep:
        raise TaskspecError(f"{where}: no usable (non-zero) vectors")
    return Embeddings([words[i] for i in keep], np.ascontiguousarray(vectors[keep]))


def _load_word2vec(path: Path) -> Embeddings:
    """A word2vec text or binary file (optionally gzip-compressed), read by the Rust loader."""
    from .vectors import load_vectors

    name = path.name.lower().removesuffix(".gz")
    try:
        fmt = "binary" if name.endswith(".bin") else None if name.endswith(".npy") else "text"
        words, vecs = load_vectors(path, format=fmt)
    except FileNotFoundError:
        raise TaskspecError(f"file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise TaskspecError(str(exc)) from None
    if not words:
        raise TaskspecError(f"{path}: no vectors")
    return _finish_embeddings(words, vecs, str(path))


@lru_cache(maxsize=4)
def _open_npz(path: str):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TaskspecError(f"file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise TaskspecError(f"{path}: not a readable .npz archive ({exc})") from None


def _load_npz(path: Path, key: str) -> Embeddings:
    archive = _open_npz(str(path))
    wkey, vkey = f"{key}__words", f"{key}__vecs"
    if wkey not in archive.files or vkey not in archive.files:
        keys = sorted({f.split("__")[0] for f in archive.files if "__" in f})
        raise TaskspecError(f"{path}: no embeddings for key {key!r} (available: {', '.join(keys) or 'none'})")
    try:
        words = archive[wkey]
        vecs = archive[vkey]
    except ValueError as exc:  # object arrays need pickle
        raise TaskspecError(f"{path}: cannot read {key!r} without pickle ({exc})") from None
    if words.dtype.kind != "U":
        raise TaskspecError(f"{path}: {wkey} must be a unicode array")
    return _finish_embeddings(words.tolist(), vecs, f"{path}[{key}]")


def load_embeddings(path: str | Path, *, key: str | None = None) -> Embeddings:
    """Load general word embeddings.

    Parameters
    ----------
    path
        A word2vec/fastText text file (``word v1 … vd`` per line, optional
        ``count dim`` header), a word2vec binary ``.bin``, either optionally
        gzip-compressed (see :func:`taskspec_rs.load_vectors`), or an ``.npz``
        archive.
    key
        For ``.npz``: the prefix of ``<key>__words`` / ``<key>__vecs``.

    Notes
    -----
    Duplicate words keep their first vector; all-zero rows are dropped (those
    words count as unknown). Non-finite values in a text or binary file are an
    error naming the line; in an ``.npz`` their rows are dropped.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        if key is None:
            raise TaskspecError(f"{path}: an embeddings_key is needed for .npz embeddings")
        return _load_npz(path, key)
    return _load_word2vec(path)


# --------------------------------------------------------------------------- normalisation

_STEPS = ("unit", "center", "unitdim", "none")


def normalize_embeddings(v, *, steps: Sequence[str] = ("unit", "center", "unit")) -> np.ndarray:
    """Normalise an embedding matrix, VecMap style (Artetxe et al. 2018).

    Steps are applied in order:

    ``"unit"``
        Scale every row to unit Euclidean length (zero rows stay zero).
    ``"center"``
        Subtract the mean vector (mean centring).
    ``"unitdim"``
        Centre, then scale every column to unit variance, as VecMap's
        ``unitdim`` (columns with zero spread are left unchanged).
    ``"none"``
        No-op.

    The default ``("unit", "center", "unit")`` is VecMap's recommended
    normalisation: it makes dot products cosines while removing the common
    mean direction that all words share.

    Parameters
    ----------
    v : array-like, shape (n, d)
        Embeddings (any float dtype; computed in float32).
    steps : sequence of str, keyword-only
        Steps to apply, in order.

    Returns
    -------
    ndarray of float32, shape (n, d)
        A new array; ``v`` is not modified.
    """
    from ._checks import as_matrix

    if isinstance(steps, str):
        steps = (steps,)
    for s in steps:
        if s not in _STEPS:
            raise ValueError(f"steps: unknown step {s!r}; choose from {', '.join(_STEPS)}")
    out = np.array(as_matrix(v, "v"), dtype=np.float32, copy=True)
    if not np.isfinite(out).all():
        raise ValueError("v: contains NaN or inf values")
    for s in steps:
        if s == "unit":
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            out /= norms
        elif s in ("center", "unitdim"):
            out -= out.mean(axis=0, dtype=np.float64).astype(np.float32)
        if s == "unitdim":
            sd = out.std(axis=0, dtype=np.float64).astype(np.float32)
            sd[sd == 0] = 1.0
            out /= sd
    return out


def normalize_vectors(vectors: np.ndarray, mode: str) -> np.ndarray:
    """Normalise one language's general vectors (``mode`` in :data:`~taskspec_rs.config.NORMALIZATIONS`).

    ``"center"`` subtracts the language's mean vector, ``"unit_center_unit"``
    is VecMap's unit length → mean centring → unit length.  Applied to the
    whole embedding vocabulary of each language, before rescaling.
    """
    if mode not in NORMALIZATIONS:
        raise TaskspecError(f"unknown normalisation {mode!r} (use {', '.join(NORMALIZATIONS)})")
    if mode == "none":
        return vectors
    out = normalize_embeddings(vectors, steps=NORMALIZATIONS[mode])
    norms = np.linalg.norm(out, axis=1)
    if not (norms > 0).all():
        raise TaskspecError(f"normalisation {mode!r} produced a zero vector (row {int(np.argmin(norms))})")
    return out
