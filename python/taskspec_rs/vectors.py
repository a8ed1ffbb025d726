"""Read and write word-vector files: word2vec/fastText text, word2vec binary, ``.npy``.

Formats (chosen from the file extension, or forced with ``format=``):

``"text"`` (``.vec``, ``.txt``)
    word2vec / fastText text: an optional header line ``count dim``, then one
    row per line, ``word v1 ... vdim``. Runs of spaces/tabs, trailing spaces,
    ``\\r\\n`` line ends, a UTF-8 byte-order mark and trailing blank lines are
    tolerated. Without a header the dimension is the number of values on the
    first row. A first line of exactly two non-negative integers is always
    taken as the header. Parsed in parallel in Rust.
``"binary"`` (``.bin``)
    word2vec binary: header ``count dim\\n``, then per vector the UTF-8 word,
    a space, ``dim`` little-endian float32 values and an optional newline.
    Vectors are stored as float32 whatever the input dtype.
``"npy"`` (``.npy``)
    ``PATH.npy`` holds the matrix (numpy format, any float dtype, stored as
    given) and ``PATH.words.txt`` the words, UTF-8, one per line (so words
    may contain spaces). ``emb.npy`` pairs with ``emb.words.txt``; a path
    without the ``.npy`` suffix, e.g. ``emb`` with ``format="npy"``, is used
    as is and pairs with ``emb.words.txt``. Read through a memory map: with
    ``limit`` only the first rows are read.

Compressed files: a gzip-compressed text or binary file (``cc.fr.300.vec.gz``)
is read directly; the format comes from the extension before ``.gz`` and
the compression from the file's magic bytes. It is decompressed into memory
(for text with ``limit``, only until the first ``limit`` rows); a corrupt or
truncated stream raises :class:`ValueError`. Writing is uncompressed only.

Errors: a malformed file raises :class:`ValueError` naming the file and the
1-based line (``emb.vec, line 12: expected 300 values after the word "the",
found 299``; binary files name the entry and its byte offset, ``.npy`` files
the row): rows of the wrong length, non-numeric fields, NaN/inf, invalid
UTF-8, blank lines between rows, fewer or more rows than the header
declares. A missing file raises :class:`FileNotFoundError`.

Duplicate words: the first occurrence wins and later rows are dropped
(``duplicates="keep_first"``, the default; the result's ``dropped`` attribute
counts them), or ``duplicates="error"`` raises naming both
lines. No warning is emitted.

Writes are atomic: the data goes to a temporary file in the target
directory, is fsynced and renamed over the target, so a failure never leaves
a partial file or damages an existing one. Words and vectors are validated
before anything is written (non-empty unique words, no whitespace in words
for text/binary, no line breaks for ``.npy``; finite values).
"""

from __future__ import annotations

import numbers
import os
import stat
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from . import _core
from ._checks import MAX_LIMIT, check_num_threads
from ._io import atomic_write

__all__ = ["LoadedVectors", "load_vectors", "save_vectors"]

PathLike = Union[str, "os.PathLike[str]"]

_FORMATS = {
    "text": "text",
    "vec": "text",
    "txt": "text",
    "binary": "binary",
    "bin": "binary",
    "npy": "npy",
}
_EXTENSIONS = {".vec": "text", ".txt": "text", ".bin": "binary", ".npy": "npy"}
_DTYPES = ("float16", "float32", "float64")


def _path(path: Any) -> str:
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}") from None


def _format(path: str, format: Optional[str]) -> str:
    if format is None:
        stem = path[:-3] if path.lower().endswith(".gz") else path
        ext = os.path.splitext(stem)[1].lower()
        if ext not in _EXTENSIONS:
            raise ValueError(
                f"format: cannot infer the format of {path!r} from its extension {ext!r}; "
                "use .vec/.txt (text), .bin (binary), either with .gz, or .npy, or pass "
                "format='text' | 'binary' | 'npy'"
            )
        return _EXTENSIONS[ext]
    if not isinstance(format, str) or format.lower() not in _FORMATS:
        raise ValueError(f"format: expected 'text', 'binary', 'npy' or None, got {format!r}")
    return _FORMATS[format.lower()]


def _dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except Exception:  # numpy raises TypeError, ValueError or SyntaxError for what it cannot read
        dt = None
    if dt is None or dt.name not in _DTYPES:
        raise ValueError(f"dtype: expected 'float32', 'float16' or 'float64', got {dtype!r}")
    return dt


def _limit(limit: Any) -> Optional[int]:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral):
        raise TypeError(f"limit: expected a non-negative int or None, got {limit!r}")
    if not 0 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: must be None or an int between 0 and 2**40 ({MAX_LIMIT}), got {limit}")
    return int(limit)


def _words_path(path: str) -> str:
    stem = path[:-4] if path.lower().endswith(".npy") else path
    return stem + ".words.txt"


class LoadedVectors(tuple):
    """The result of :func:`load_vectors`: unpacks as ``(words, vectors)``.

    Attributes
    ----------
    words : list of str
    vectors : ndarray
    dropped : int
        Rows dropped as duplicate words (``duplicates="keep_first"``).
    """

    def __new__(cls, words: list, vectors: np.ndarray, dropped: int = 0) -> LoadedVectors:
        self = super().__new__(cls, (words, vectors))
        self.dropped = int(dropped)
        return self

    @property
    def words(self) -> list:
        return self[0]

    @property
    def vectors(self) -> np.ndarray:
        return self[1]


def load_vectors(
    path: PathLike,
    *,
    limit: Optional[int] = None,
    dtype: Any = "float32",
    format: Optional[str] = None,
    duplicates: str = "keep_first",
    num_threads: Optional[int] = None,
) -> LoadedVectors:
    """Load word vectors from a text, binary or ``.npy`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file (see the module docstring for the formats).
    limit : int, optional, keyword-only
        Read only the first ``limit`` rows of the file; the rest is never
        parsed (fastText files are sorted by frequency, so this keeps the
        most frequent words). Rows dropped as duplicates count towards it.
    dtype : {"float32", "float16", "float64"}, keyword-only
        Element type of the returned matrix.
    format : {"text", "binary", "npy"}, optional, keyword-only
        Override the format inferred from the extension.
    duplicates : {"keep_first", "error"}, keyword-only
        A word seen again: drop the later row, or raise :class:`ValueError`
        naming both lines.
    num_threads : int, optional, keyword-only
        Threads parsing a text file; default ``TASKSPEC_NUM_THREADS`` or all cores.

    Returns
    -------
    LoadedVectors
        Unpacks as ``words, vectors``: ``words[i]`` (str) is the word of
        ``vectors[i]``, in file order; ``vectors`` is C-contiguous, of the
        requested dtype, shape ``(len(words), dim)``. Its ``dropped``
        attribute counts the rows dropped as duplicates.

    Raises
    ------
    FileNotFoundError
        ``path`` (or the ``.words.txt`` of an ``.npy``) does not exist.
    ValueError
        Malformed file, naming the file and the 1-based line; a fastText model
        file (``.bin`` written by fastText, see :mod:`taskspec_rs.interop`),
        saying what to use instead.
    """
    p = _path(path)
    fmt = _format(p, format)
    if fmt == "binary":  # a fastText model is no word2vec binary: say what to use instead
        from .interop import refuse_fasttext_model

        refuse_fasttext_model(p)
    if fmt == "npy" and p.lower().endswith(".gz"):
        raise ValueError(f"path: {p!r} is a gzip-compressed .npy, which is not supported; decompress it first")
    dt = _dtype(dtype)
    n = _limit(limit)
    if duplicates not in ("keep_first", "error"):
        raise ValueError(f"duplicates: expected 'keep_first' or 'error', got {duplicates!r}")
    keep_first = duplicates == "keep_first"
    if fmt == "npy":
        words, vectors, dropped = _load_npy(p, n, dt, keep_first)
    else:
        words, vectors, dropped = _core.read_vectors(
            p,
            fmt,
            limit=n,
            float64=dt == np.float64,
            keep_first=keep_first,
            num_threads=check_num_threads(num_threads),
        )
        if dt == np.float16:  # a value past float16's range is an error naming its row, not inf
            vectors = _convert(vectors, dt, p, words)
    return LoadedVectors(words, vectors, dropped)


def _read_words(path: str, n_rows: int, limit: Optional[int], npy_path: str) -> list[str]:
    with open(path, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path}: not a regular file; the words of {npy_path} go in a text file, one per line")
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{path}, line {line}: not valid UTF-8 ({exc.reason})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != n_rows:
        raise ValueError(f"{path}: has {len(lines)} words but {npy_path} has {n_rows} rows")
    if limit is not None:
        lines = lines[:limit]
    words = [w[:-1] if w.endswith("\r") else w for w in lines]
    for i, w in enumerate(words):
        if not w:
            raise ValueError(f"{path}, line {i + 1}: empty word")
    return words


def _npy_header(path: str) -> tuple[tuple[int, int], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data offset)`` of an ``.npy`` file, checked against its size.

    The header is untrusted: its shape and dtype are validated (2-D, non-negative, a float dtype) and
    ``rows x cols x itemsize`` is compared with the bytes after the header, in Python integers, before
    anything is mapped or allocated.
    """
    fmt = np.lib.format
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dt = read(f)
        except Exception as exc:  # numpy raises ValueError, EOFError, SyntaxError... on a damaged header
            raise ValueError(f"{path}: not a readable .npy file ({type(exc).__name__}: {exc})") from None
        offset = f.tell()
    float_dtype = isinstance(dt, np.dtype) and dt.kind == "f" and dt.fields is None and dt.subdtype is None
    matrix = len(shape) == 2 and all(isinstance(n, int) and n >= 0 for n in shape) and shape[1] > 0
    if not (float_dtype and matrix):
        raise ValueError(
            f"{path}: expected a 2-D floating-point matrix (words x dims) with at least one column, "
            f"got shape {shape} and dtype {dt}"
        )
    need = shape[0] * shape[1] * dt.itemsize
    if need > size - offset:
        raise ValueError(
            f"{path}: the header declares shape {shape} of {dt} ({need} bytes) but the file holds "
            f"{size - offset} bytes of data (truncated or damaged file?)"
        )
    return shape, dt, bool(fortran), offset


def _convert(rows: np.ndarray, dtype: np.dtype, path: str, words: Optional[list[str]] = None) -> np.ndarray:
    """``rows`` as a C-contiguous ``dtype`` array; a value beyond ``dtype``'s range is an error naming its row."""
    try:
        with np.errstate(over="raise"):
            return np.array(rows, dtype=dtype, order="C")
    except FloatingPointError:
        with np.errstate(invalid="ignore"):
            big = np.flatnonzero((np.abs(rows.astype(np.float64)) > np.finfo(dtype).max).any(axis=1))
        i = int(big[0]) if big.size else 0
        word = f" ({words[i]!r})" if words is not None and i < len(words) else ""
        raise ValueError(
            f"{path}, row {i + 1}{word}: a value lies beyond the range of {dtype}; load with a wider dtype "
            "(dtype='float32' or 'float64')"
        ) from None


def _load_npy(path: str, limit: Optional[int], dtype: np.dtype, keep_first: bool):
    shape, dt, fortran, offset = _npy_header(path)
    words = _read_words(_words_path(path), shape[0], limit, path)
    if shape[0] == 0 or not words:  # nothing to map (mmap refuses empty ranges)
        vectors = np.empty((0, shape[1]), dtype=dtype)
    else:
        arr = np.memmap(path, dtype=dt, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
        vectors = _convert(arr[: len(words)], dtype, path, words)
        del arr
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(f"{path}, row {row + 1}: the vector of {words[row]!r} contains NaN or inf")
    first: dict[str, int] = {}
    keep = []
    for i, w in enumerate(words):
        j = first.setdefault(w, i)
        if j != i:
            if not keep_first:
                raise ValueError(f"{_words_path(path)}, line {i + 1}: duplicate word {w!r} (first at line {j + 1})")
            continue
        keep.append(i)
    dropped = len(words) - len(keep)
    if dropped:
        words = [words[i] for i in keep]
        vectors = np.ascontiguousarray(vectors[keep])
    return words, vectors, dropped


def _save_npy(path: str, words: list[str], vectors: np.ndarray) -> None:
    seen: dict[str, int] = {}
    for i, w in enumerate(words):
        if not w or "\n" in w or "\r" in w:
            raise ValueError(f"words: word {i} ({w!r}) is empty or contains a line break")
        j = seen.setdefault(w, i)
        if j != i:
            raise ValueError(f"words: duplicate word {w!r} at indices {j} and {i}")
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(f"vectors: row {row} ({words[row]!r}) contains NaN or inf")
    payload = "".join(w + "\n" for w in words).encode("utf-8")
    atomic_write(path, lambda f: np.save(f, vectors, allow_pickle=False))
    atomic_write(_words_path(path), lambda f: f.write(payload))


def save_vectors(
    path: PathLike,
    words: Sequence[str],
    vectors: Any,
    *,
    format: Optional[str] = None,
    num_threads: Optional[int] = None,
) -> None:
    """Save word vectors atomically as text, word2vec binary or ``.npy``.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; an existing file is replaced only once the new one is
        completely written and fsynced. For ``"npy"`` the words go to
        ``PATH.words.txt`` (``emb.npy`` -> ``emb.words.txt``); each of the
        two files is replaced atomically.
    words : sequence of str
        One word per row: non-empty, unique; without whitespace for the text
        and binary formats, without line breaks for ``.npy``.
    vectors : array-like, shape (len(words), dim)
        Finite floating-point values. Text keeps the shortest decimal that
        reads back to the same float32 (float64 for float64 input; float16 is
        written via float32); binary stores float32; ``.npy`` keeps the dtype.
    format : {"text", "binary", "npy"}, optional, keyword-only
        Override the format inferred from the extension.
    num_threads : int, optional, keyword-only
        Threads formatting a text file.

    Raises
    ------
    ValueError, TypeError
        Invalid words or vectors (nothing is written).
    OSError
        The file cannot be written (the previous file, if any, is intact).
    """
    p = _path(path)
    fmt = _format(p, format)
    if p.lower().endswith(".gz"):
        raise ValueError(f"path: {p!r} asks for gzip output, which save_vectors does not write; save without .gz")
    if isinstance(words, (str, bytes)):
        raise TypeError("words: expected a sequence of str, got a single string")
    try:
        words = list(words)
    except TypeError:
        raise TypeError(f"words: expected a sequence of str, got {type(words).__name__}") from None
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise TypeError(f"words: item {i} is {type(w).__name__}, expected str")
    arr = np.asarray(vectors)
    if arr.dtype.kind != "f":
        raise TypeError(f"vectors: expected a floating-point array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"vectors: expected a 2-D array (words x dims), got shape {arr.shape}")
    if arr.shape[0] != len(words):
        raise ValueError(f"vectors: has {arr.shape[0]} rows but there are {len(words)} words")
    if arr.shape[1] == 0:
        raise ValueError("vectors: must have at least one column")
    if fmt == "npy":
        _save_npy(p, words, np.ascontiguousarray(arr))
        return
    dt = np.float64 if arr.dtype == np.float64 else np.float32
    _core.write_vectors(p, words, np.ascontiguousarray(arr, dtype=dt), fmt, num_threads=check_num_threads(num_threads))
