"""Building the general space: orthogonal alignment of two word-embedding spaces.

The cross-task projection needs *general* embeddings of the source and the
target language in one shared space. When the two languages come as separate
monolingual spaces, this module maps the source space onto the target space
with an orthogonal matrix ``W`` (``src @ W`` lives in the target space):

* :func:`procrustes` — the closed-form orthogonal Procrustes solution;
* :func:`normalize_embeddings` — VecMap-style length normalisation and mean
  centring;
* :func:`csls_knn` — retrieval by cross-domain similarity local scaling
  (CSLS, Conneau et al. 2018), which reduces hubness;
* :func:`align` — supervised Procrustes on a seed dictionary followed by
  VecMap/MUSE-style self-learning (dictionary induction from mutual CSLS
  nearest neighbours, then Procrustes again);
* :func:`bli_evaluate` — bilingual lexicon induction (P@k with nearest
  neighbour and CSLS retrieval) on a test dictionary;
* :func:`read_dictionary` — MUSE dictionary files;
* :func:`main_align` — the ``taskspec-rs align`` command line.

Cosine similarities are computed on length-normalised rows. An orthogonal map
commutes with length normalisation, so ``W`` may be applied to raw or to
normalised source vectors alike. Zero-norm rows and NaN/inf are rejected
with :class:`ValueError` (cosine is undefined for them), as in
:func:`taskspec_rs.knn`.
"""

from __future__ import annotations

import argparse
import numbers
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ._checks import as_matrix, check_k, check_num_threads, check_rows
from ._io import atomic_write
from .project import knn

__all__ = [
    "AlignReport",
    "align",
    "bli_evaluate",
    "csls_knn",
    "main_align",
    "normalize_embeddings",
    "procrustes",
    "read_dictionary",
]

#: Upper bound on the number of float32 scores held at once by the blocked
#: CSLS ranking (``block_rows * n_base``): 2**26 values = 256 MiB.
_MAX_BLOCK_VALUES = 1 << 26
_DEFAULT_BLOCK_ROWS = 4096

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------
# Procrustes and normalisation
# ---------------------------------------------------------------------------


def procrustes(x: Any, y: Any) -> np.ndarray:
    """Orthogonal Procrustes: the orthogonal ``W`` minimising ``||x @ W - y||_F``.

    ``W = U @ Vt`` where ``U, S, Vt = svd(x.T @ y)`` (Schönemann 1966). The
    product and the SVD are computed in float64.

    Parameters
    ----------
    x : array-like, shape (n, d)
        Source vectors, row ``i`` paired with ``y[i]``.
    y : array-like, shape (n, d)
        Target vectors.

    Returns
    -------
    W : ndarray, shape (d, d)
        Orthogonal (``W.T @ W == I`` up to rounding); float64 when either
        input is float64, otherwise float32.

    Raises
    ------
    ValueError
        On shape mismatch, empty input or NaN/inf values.
    """
    xa = _float_matrix(x, "x")
    ya = _float_matrix(y, "y")
    if xa.shape != ya.shape:
        raise ValueError(
            f"y: expected the same shape as x {xa.shape} (row i of x pairs with row i of y), got {ya.shape}"
        )
    out_dtype = np.float64 if np.float64 in (xa.dtype, ya.dtype) else np.float32
    m = xa.T.astype(np.float64) @ ya.astype(np.float64)
    if not np.isfinite(m).all():
        raise ValueError("x, y: contain NaN or inf values")
    u, _, vt = np.linalg.svd(m)
    return (u @ vt).astype(out_dtype)


def _float_matrix(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name}: expected a numeric (float) array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D array (rows x dims), got shape {arr.shape}")
    if arr.dtype != np.float64:
        arr = arr.astype(np.float32)
    return arr


_STEPS = ("unit", "center", "unitdim", "none")


def normalize_embeddings(v: Any, *, steps: Sequence[str] = ("unit", "center", "unit")) -> np.ndarray:
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
        elif s == "center":
            out -= out.mean(axis=0, dtype=np.float64).astype(np.float32)
        elif s == "unitdim":
            out -= out.mean(axis=0, dtype=np.float64).astype(np.float32)
            sd = out.std(axis=0, dtype=np.float64).astype(np.float32)
            sd[sd == 0] = 1.0
            out /= sd
    return out


def _unit(a: Any, name: str) -> np.ndarray:
    """Validated float32 copy with unit-length rows (rejects zero/NaN rows)."""
    arr = as_matrix(a, name)
    check_rows(arr, name)
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64)).astype(np.float32)
    return arr / norms[:, None]


# ---------------------------------------------------------------------------
# CSLS retrieval
# ---------------------------------------------------------------------------


def _mean_topk_sim(queries: np.ndarray, base: np.ndarray, k: int, num_threads: Optional[int]) -> np.ndarray:
    """Mean cosine of each query row to its ``k`` nearest base rows (k clipped to the base size)."""
    k = min(k, base.shape[0])
    sims, _ = knn(queries, base, k, num_threads=num_threads)
    return sims.mean(axis=1, dtype=np.float64).astype(np.float32)


def _block_rows(n_base: int, block_rows: Optional[int]) -> int:
    if block_rows is not None:
        check_k(block_rows, sys.maxsize, "block_rows must be positive")
        return int(block_rows)
    return max(1, min(_DEFAULT_BLOCK_ROWS, _MAX_BLOCK_VALUES // max(n_base, 1)))


def _topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` per row, best first (ties among the selected by lower index)."""
    if k == 1:
        idx = np.argmax(scores, axis=1)[:, None]
    else:
        if k < scores.shape[1]:
            idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            idx = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
        vals = np.take_along_axis(scores, idx, axis=1)
        order = np.lexsort((idx, -vals), axis=1)
        idx = np.take_along_axis(idx, order, axis=1)
    return np.take_along_axis(scores, idx, axis=1), idx.astype(np.int64)


def csls_knn(
    queries: Any,
    base: Any,
    k: int,
    *,
    csls_k: int = 10,
    query_vocab: Any = None,
    num_threads: Optional[int] = None,
    block_rows: Optional[int] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by CSLS (cross-domain similarity local scaling).

    ``CSLS(q, b) = 2 cos(q, b) - r_base(q) - r_query(b)``, where ``r_base(q)``
    is the mean cosine of ``q`` to its ``csls_k`` nearest ``base`` rows and
    ``r_query(b)`` the mean cosine of ``b`` to its ``csls_k`` nearest query
    rows (Conneau et al. 2018). Both ``r`` terms come from
    :func:`taskspec_rs.knn` (exact, in Rust); the final ranking is done block
    by block (``block_rows`` queries against all of ``base`` at a time), so
    the full ``n x m`` score matrix is never held in memory.

    Parameters
    ----------
    queries : array-like, shape (n, d)
        Query vectors (e.g. mapped source words).
    base : array-like, shape (m, d)
        Vectors searched (e.g. target words).
    k : int
        Neighbours per query, ``1 <= k <= m``.
    csls_k : int, keyword-only
        Neighbourhood size of the ``r`` terms (clipped to the number of rows
        available on each side).
    query_vocab : array-like, shape (n', d), optional, keyword-only
        The query-side vocabulary over which ``r_query`` is computed. By
        default the ``queries`` themselves; for lexicon induction pass the
        whole mapped source vocabulary (as MUSE does) so that a handful of
        test queries do not define the hubness of the target words.
    num_threads : int, optional, keyword-only
        Threads for the Rust kNN; default ``TASKSPEC_NUM_THREADS`` or all cores.
    block_rows : int, optional, keyword-only
        Queries per ranking block; default 4096 (fewer when ``m`` is large,
        keeping a block under 256 MiB).

    Returns
    -------
    scores : ndarray of float32, shape (n, k)
        CSLS scores, best first.
    indices : ndarray of int64, shape (n, k)
        Row indices into ``base``.
    """
    q = _unit(queries, "queries")
    b = _unit(base, "base")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"base: has dimension {b.shape[1]} but queries have {q.shape[1]}")
    k = check_k(k, b.shape[0], f"base has {b.shape[0]} rows")
    csls_k = check_k(csls_k, sys.maxsize, "csls_k must be positive")
    threads = check_num_threads(num_threads)
    if query_vocab is None:
        qv = q
    else:
        qv = _unit(query_vocab, "query_vocab")
        if qv.shape[1] != q.shape[1]:
            raise ValueError(f"query_vocab: has dimension {qv.shape[1]} but queries have {q.shape[1]}")
    r_base = _mean_topk_sim(q, b, csls_k, threads)
    r_query = _mean_topk_sim(b, qv, csls_k, threads)
    step = _block_rows(b.shape[0], block_rows)
    out_s = np.empty((q.shape[0], k), dtype=np.float32)
    out_i = np.empty((q.shape[0], k), dtype=np.int64)
    for start in range(0, q.shape[0], step):
        stop = min(start + step, q.shape[0])
        s = q[start:stop] @ b.T
        s *= 2.0
        s -= r_base[start:stop, None]
        s -= r_query[None, :]
        out_s[start:stop], out_i[start:stop] = _topk_rows(s, k)
    return out_s, out_i


def _mutual_csls(
    xw: np.ndarray, z: np.ndarray, csls_k: int, num_threads: Optional[int], block_rows: Optional[int] = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual CSLS nearest neighbours between unit-row ``xw`` and ``z``.

    One blocked pass over the CSLS matrix gives both the forward (row) and
    backward (column) best match; returns the pairs ``(i, j)`` that are each
    other's best match.
    """
    r_x = _mean_topk_sim(xw, z, csls_k, num_threads)
    r_z = _mean_topk_sim(z, xw, csls_k, num_threads)
    n, m = xw.shape[0], z.shape[0]
    fwd = np.empty(n, dtype=np.int64)
    col_best = np.full(m, -np.inf, dtype=np.float32)
    col_arg = np.zeros(m, dtype=np.int64)
    step = _block_rows(m, block_rows)
    for start in range(0, n, step):
        stop = min(start + step, n)
        s = xw[start:stop] @ z.T
        s *= 2.0
        s -= r_x[start:stop, None]
        s -= r_z[None, :]
        fwd[start:stop] = np.argmax(s, axis=1)
        bi = np.argmax(s, axis=0)
        bv = s[bi, np.arange(m)]
        better = bv > col_best  # strict: earlier rows win ties
        col_best[better] = bv[better]
        col_arg[better] = bi[better] + start
    src = np.arange(n, dtype=np.int64)
    mutual = col_arg[fwd] == src
    return src[mutual], fwd[mutual]


# ---------------------------------------------------------------------------
# Dictionaries and vocabularies
# ---------------------------------------------------------------------------


def read_dictionary(path: PathLike) -> list[tuple[str, str]]:
    """Read a MUSE bilingual dictionary: one ``source target`` pair per line.

    Fields are separated by any whitespace (spaces or tabs); blank lines are
    skipped; a UTF-8 byte-order mark and ``\\r\\n`` line ends are tolerated.
    A word may appear in several pairs (several gold translations).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    list of (str, str)
        The pairs, in file order (duplicates kept).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        A line does not hold exactly two fields, is not valid UTF-8, or the
        file holds no pair at all; the message names ``file:line``.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    if p.is_dir():
        raise ValueError(f"{p}: is a directory, expected a dictionary file")
    pairs: list[tuple[str, str]] = []
    with open(p, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{p}:{lineno}: not valid UTF-8 ({exc.reason})") from None
            if lineno == 1:
                line = line.lstrip("\ufeff")
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(
                    f"{p}:{lineno}: expected two whitespace-separated words 'source target', "
                    f"got {len(fields)} field(s): {line.strip()[:80]!r}"
                )
            pairs.append((fields[0], fields[1]))
    if not pairs:
        raise ValueError(f"{p}: no dictionary pairs found (empty file?)")
    return pairs


def _word_index(words: Iterable[Any], name: str) -> dict[str, int]:
    """word -> row (first occurrence wins)."""
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(str(w), i)
    return index


def _check_words(words: Any, n_rows: int, name: str) -> list[str]:
    if isinstance(words, str):
        raise TypeError(f"{name}: expected a sequence of words, got a single string")
    lst = [str(w) for w in words]
    if len(lst) != n_rows:
        raise ValueError(f"{name}: has {len(lst)} words but the vectors have {n_rows} rows")
    return lst


def _pairs_to_indices(
    pairs: Iterable[tuple[str, str]], src_index: dict[str, int], tgt_index: dict[str, int], name: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Unique ``(src_row, tgt_row)`` pairs found in both vocabularies, and the number missing."""
    seen: set[tuple[int, int]] = set()
    src: list[int] = []
    tgt: list[int] = []
    missing = 0
    for n, pair in enumerate(pairs):
        try:
            s, t = pair
        except (TypeError, ValueError):
            raise ValueError(f"{name}: item {n} is not a (source_word, target_word) pair: {pair!r}") from None
        i = src_index.get(s)
        j = tgt_index.get(t)
        if i is None or j is None:
            missing += 1
            continue
        if (i, j) not in seen:
            seen.add((i, j))
            src.append(i)
            tgt.append(j)
    return np.asarray(src, dtype=np.int64), np.asarray(tgt, dtype=np.int64), missing


# ---------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------


@dataclass
class AlignReport:
    """What :func:`align` did.

    Attributes
    ----------
    seed_pairs : int
        Unique seed pairs found in both vocabularies (dictionary + identical).
    seed_missing : int
        Dictionary pairs dropped because a word is out of vocabulary.
    iterations : list of dict
        One entry per Procrustes solve: ``iteration`` (0 = seed only),
        ``pairs`` (dictionary size), ``induced`` (mutual CSLS pairs added),
        ``objective`` (mean cosine of the dictionary pairs after mapping),
        ``seconds``.
    converged : bool
        The induced dictionary stopped changing before ``iterations`` ran out.
    """

    seed_pairs: int
    seed_missing: int
    iterations: list[dict[str, float]] = field(default_factory=list)
    converged: bool = False


def align(
    src_vecs: Any,
    tgt_vecs: Any,
    src_words: Sequence[str],
    tgt_words: Sequence[str],
    *,
    dictionary: Optional[Iterable[tuple[str, str]]] = None,
    iterations: int = 5,
    csls_k: int = 10,
    max_vocab: int = 20000,
    identical_seed: bool = False,
    tol: float = 1e-3,
    num_threads: Optional[int] = None,
    progress: bool = False,
    return_report: bool = False,
) -> Union[np.ndarray, tuple[np.ndarray, AlignReport]]:
    """Learn the orthogonal map from the source into the target space.

    1. Supervised step: Procrustes on the seed pairs (``dictionary`` pairs
       whose words are both in vocabulary, plus identically spelt words when
       ``identical_seed``).
    2. Self-learning (VecMap / MUSE refinement), ``iterations`` times:
       map the first ``max_vocab`` source words, take the mutual CSLS nearest
       neighbours among the first ``max_vocab`` target words as a new
       dictionary, add the seed pairs, and solve Procrustes again. Stops early
       when the dictionary changes by less than ``tol`` (relative size of the
       symmetric difference with the previous one).

    Rows are length-normalised before everything (cosine geometry); no
    centring is done — call :func:`normalize_embeddings` first if wanted, and
    apply the same normalisation to whatever ``W`` is used on.

    Parameters
    ----------
    src_vecs : array-like, shape (n, d)
    tgt_vecs : array-like, shape (m, d)
    src_words, tgt_words : sequence of str
        Row labels (duplicates: the first row wins). Put frequent words first:
        ``max_vocab`` keeps the leading rows.
    dictionary : iterable of (str, str), keyword-only
        Seed pairs ``(source_word, target_word)``, e.g. from
        :func:`read_dictionary`. Required unless ``identical_seed``.
    iterations : int, keyword-only
        Self-learning rounds after the supervised step (0: supervised only).
    csls_k : int, keyword-only
        Neighbourhood of the CSLS ``r`` terms.
    max_vocab : int, keyword-only
        Rows of each side considered when inducing dictionaries.
    identical_seed : bool, keyword-only
        Also seed with words spelt identically on both sides.
    tol : float, keyword-only
        Convergence threshold on the relative dictionary change; ``0`` stops
        only when the dictionary is unchanged.
    num_threads : int, optional, keyword-only
    progress : bool, keyword-only
        Print one line per step on stderr.
    return_report : bool, keyword-only
        Return ``(W, AlignReport)`` instead of ``W``.

    Returns
    -------
    W : ndarray of float32, shape (d, d)
        Orthogonal; ``src_vecs @ W`` lives in the target space.

    Raises
    ------
    ValueError
        Dimension or word-count mismatch, zero/NaN rows, or no usable seed pair.
    """
    x = _unit(src_vecs, "src_vecs")
    z = _unit(tgt_vecs, "tgt_vecs")
    if x.shape[1] != z.shape[1]:
        raise ValueError(
            f"tgt_vecs: has dimension {z.shape[1]} but src_vecs has {x.shape[1]}; "
            "an orthogonal map needs both spaces to have the same dimension"
        )
    sw = _check_words(src_words, x.shape[0], "src_words")
    tw = _check_words(tgt_words, z.shape[0], "tgt_words")
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
        raise ValueError(f"iterations: expected an int >= 0, got {iterations!r}")
    csls_k = check_k(csls_k, sys.maxsize, "csls_k must be positive")
    max_vocab = check_k(max_vocab, sys.maxsize, "max_vocab must be positive")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 <= tol < 1:
        raise ValueError(f"tol: expected a number in [0, 1), got {tol!r}")
    threads = check_num_threads(num_threads)
    if dictionary is None and not identical_seed:
        raise ValueError("dictionary: a seed dictionary is required (or pass identical_seed=True)")

    src_index = _word_index(sw, "src_words")
    tgt_index = _word_index(tw, "tgt_words")
    seed: list[tuple[str, str]] = list(dictionary) if dictionary is not None else []
    if identical_seed:
        seed += [(w, w) for w in src_index if w in tgt_index]
    seed_s, seed_t, missing = _pairs_to_indices(seed, src_index, tgt_index, "dictionary")
    if seed_s.size == 0:
        raise ValueError(
            f"dictionary: none of the {len(seed)} seed pairs has both words in the vocabularies "
            "(wrong language order or tokenisation?)"
        )
    report = AlignReport(seed_pairs=int(seed_s.size), seed_missing=int(missing))

    def log(msg: str) -> None:
        if progress:
            print(f"align: {msg}", file=sys.stderr, flush=True)

    def solve(s_idx: np.ndarray, t_idx: np.ndarray, it: int, induced: int, t0: float) -> np.ndarray:
        w = procrustes(x[s_idx], z[t_idx])
        obj = float(np.mean(np.einsum("ij,ij->i", x[s_idx] @ w, z[t_idx])))
        entry = {
            "iteration": it,
            "pairs": int(s_idx.size),
            "induced": induced,
            "objective": obj,
            "seconds": time.perf_counter() - t0,
        }
        report.iterations.append(entry)
        log(f"iteration {it}: {s_idx.size} pairs ({induced} induced), mean cos {obj:.4f}, {entry['seconds']:.1f}s")
        return w

    t0 = time.perf_counter()
    log(f"seed: {seed_s.size} pairs in vocabulary, {missing} out of vocabulary")
    W = solve(seed_s, seed_t, 0, 0, t0)
    xs, zs = x[:max_vocab], z[:max_vocab]
    m = z.shape[0]
    seed_codes = seed_s * m + seed_t
    prev: Optional[np.ndarray] = None
    for it in range(1, iterations + 1):
        t0 = time.perf_counter()
        xw = np.ascontiguousarray(xs @ W)
        xw /= np.linalg.norm(xw, axis=1, keepdims=True)  # exact unit rows after rounding
        ms, mt = _mutual_csls(xw, zs, csls_k, threads)
        codes = np.unique(np.concatenate([seed_codes, ms * m + mt]))
        if prev is not None:
            changed = np.setxor1d(codes, prev, assume_unique=True).size
            if changed <= tol * codes.size:
                report.converged = True
                log(f"iteration {it}: dictionary changed by {changed} pair(s), converged")
                break
        prev = codes
        W = solve(codes // m, codes % m, it, int(ms.size), t0)
    W = W.astype(np.float32)
    return (W, report) if return_report else W


# ---------------------------------------------------------------------------
# Bilingual lexicon induction
# ---------------------------------------------------------------------------


def bli_evaluate(
    src_vecs: Any,
    tgt_vecs: Any,
    src_words: Sequence[str],
    tgt_words: Sequence[str],
    pairs: Iterable[tuple[str, str]],
    *,
    W: Any = None,
    ks: Sequence[int] = (1, 5),
    methods: Sequence[str] = ("nn", "csls"),
    csls_k: int = 10,
    num_threads: Optional[int] = None,
) -> dict[str, Any]:
    """Bilingual lexicon induction (word translation retrieval), MUSE protocol.

    Every unique source word of ``pairs`` that is in the source vocabulary and
    has at least one gold translation in the target vocabulary is a query;
    its mapped vector (``src @ W``) retrieves target words from the whole
    target vocabulary. A query counts as correct at ``k`` when any gold
    translation is among the ``k`` best. For CSLS, ``r_query`` of each target
    word is computed against the whole mapped source vocabulary.

    Parameters
    ----------
    src_vecs, tgt_vecs : array-like, shapes (n, d), (m, d)
    src_words, tgt_words : sequence of str
    pairs : iterable of (str, str)
        Test dictionary (e.g. :func:`read_dictionary` of a MUSE test split).
    W : array-like, shape (d, d), optional, keyword-only
        Map applied to the source vectors; default identity (spaces already
        shared).
    ks : sequence of int, keyword-only
        Cut-offs of P@k.
    methods : sequence of {"nn", "csls"}, keyword-only
        ``"nn"``: cosine nearest neighbour; ``"csls"``: CSLS.
    csls_k : int, keyword-only
    num_threads : int, optional, keyword-only

    Returns
    -------
    dict
        ``{"nn": {"p@1": float, "p@5": float}, "csls": {...},
        "n_pairs": int, "n_source_words": int, "n_found": int,
        "coverage": float}`` — ``n_source_words`` unique source words in
        ``pairs``, ``n_found`` of them evaluated, ``coverage`` their ratio.
        Precisions are fractions of the ``n_found`` queries (``nan`` when
        ``n_found`` is 0).
    """
    x = _unit(src_vecs, "src_vecs")
    z = _unit(tgt_vecs, "tgt_vecs")
    sw = _check_words(src_words, x.shape[0], "src_words")
    tw = _check_words(tgt_words, z.shape[0], "tgt_words")
    if W is not None:
        w = as_matrix(W, "W")
        if w.shape != (x.shape[1], z.shape[1]):
            raise ValueError(f"W: expected shape ({x.shape[1]}, {z.shape[1]}), got {w.shape}")
        x = x @ w
        x = _unit(x, "src_vecs @ W")
    elif x.shape[1] != z.shape[1]:
        raise ValueError(f"tgt_vecs: has dimension {z.shape[1]} but src_vecs has {x.shape[1]}; pass W")
    for meth in methods:
        if meth not in ("nn", "csls"):
            raise ValueError(f"methods: unknown method {meth!r}; choose 'nn' or 'csls'")
    ks = sorted({check_k(k, z.shape[0], f"target vocabulary has {z.shape[0]} words") for k in ks})
    if not ks:
        raise ValueError("ks: give at least one cut-off")
    threads = check_num_threads(num_threads)

    src_index = _word_index(sw, "src_words")
    tgt_index = _word_index(tw, "tgt_words")
    pairs = list(pairs)
    gold: dict[int, set[int]] = {}
    source_words: set[str] = set()
    for n, pair in enumerate(pairs):
        try:
            s, t = pair
        except (TypeError, ValueError):
            raise ValueError(f"pairs: item {n} is not a (source_word, target_word) pair: {pair!r}") from None
        source_words.add(s)
        i, j = src_index.get(s), tgt_index.get(t)
        if i is not None and j is not None:
            gold.setdefault(i, set()).add(j)
    queries = np.asarray(sorted(gold), dtype=np.int64)
    result: dict[str, Any] = {
        "n_pairs": len(pairs),
        "n_source_words": len(source_words),
        "n_found": int(queries.size),
        "coverage": queries.size / len(source_words) if source_words else float("nan"),
    }
    kmax = ks[-1]
    for meth in methods:
        if queries.size == 0:
            result[meth] = {f"p@{k}": float("nan") for k in ks}
            continue
        if meth == "nn":
            _, idx = knn(x[queries], z, kmax, num_threads=threads)
        else:
            _, idx = csls_knn(x[queries], z, kmax, csls_k=csls_k, query_vocab=x, num_threads=threads)
        # rank of the first correct hit (kmax when none)
        first = np.full(queries.size, kmax, dtype=np.int64)
        for r, (q, row) in enumerate(zip(queries.tolist(), idx.tolist())):
            g = gold[q]
            for pos, j in enumerate(row):
                if j in g:
                    first[r] = pos
                    break
        result[meth] = {f"p@{k}": float(np.mean(first < k)) for k in ks}
    return result


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


class _UserError(Exception):
    """An error reported as one line with exit status 2."""


def _load_any(path: str, lang: Optional[str], flag: str) -> tuple[list[str], np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise _UserError(f"{path}: no such file")
    if p.suffix.lower() == ".npz":
        if not lang:
            raise _UserError(f"{path}: an .npz needs {flag} to pick '<lang>__words' / '<lang>__vecs'")
        try:
            with np.load(p, allow_pickle=False) as npz:
                wk, vk = f"{lang}__words", f"{lang}__vecs"
                if wk not in npz.files or vk not in npz.files:
                    langs = sorted({f.split("__")[0] for f in npz.files if "__" in f})
                    raise _UserError(f"{path}: no language {lang!r} (available: {', '.join(langs) or 'none'})")
                words = [str(w) for w in npz[wk]]
                vecs = np.asarray(npz[vk], dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise _UserError(f"{path}: not a readable .npz archive ({exc})") from None
    else:
        from .vectors import load_vectors

        try:
            words, vecs = load_vectors(p)
        except (OSError, ValueError) as exc:
            raise _UserError(str(exc)) from None
    if vecs.ndim != 2 or vecs.shape[0] != len(words) or vecs.shape[0] == 0:
        raise _UserError(f"{path}: words and vectors do not line up (or no vectors)")
    # Cosine is undefined for zero rows; drop them (and non-finite ones) like unknown words.
    ok = np.isfinite(vecs).all(axis=1) & (np.abs(vecs).sum(axis=1) > 0)
    if not ok.all():
        keep = np.flatnonzero(ok)
        words = [words[i] for i in keep]
        vecs = vecs[keep]
        if not words:
            raise _UserError(f"{path}: no usable (non-zero, finite) vectors")
    return words, vecs


def _format_bli(res: dict[str, Any]) -> str:
    parts = [f"{m} " + " ".join(f"{k}={v:.3f}" for k, v in res[m].items()) for m in ("nn", "csls") if m in res]
    return f"{'; '.join(parts)} ({res['n_found']}/{res['n_source_words']} source words found)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="taskspec-rs align",
        description="Map a source embedding space onto a target space with an orthogonal matrix "
        "(Procrustes on a seed dictionary + self-learning), optionally reporting BLI precision.",
    )
    p.add_argument("src", help="source vectors: word2vec text (.vec/.txt) or .npz (with --src-lang)")
    p.add_argument("tgt", help="target vectors: word2vec text (.vec/.txt) or .npz (with --tgt-lang)")
    p.add_argument("--dict", dest="dictionary", help="seed dictionary, MUSE format 'source target' per line")
    p.add_argument("--test", help="test dictionary for BLI precision (MUSE format)")
    p.add_argument("--src-lang", help="language key in a source .npz ('<lang>__words', '<lang>__vecs')")
    p.add_argument("--tgt-lang", help="language key in a target .npz")
    p.add_argument("--iterations", type=int, default=5, help="self-learning iterations (default 5)")
    p.add_argument("--csls-k", type=int, default=10, help="CSLS neighbourhood (default 10)")
    p.add_argument("--max-vocab", type=int, default=20000, help="words per side for induction (default 20000)")
    p.add_argument("--identical-seed", action="store_true", help="also seed with identically spelt words")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    p.add_argument("--out", help="write W (float32, d x d) here as .npy")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return p


def main_align(argv: Optional[Sequence[str]] = None) -> int:
    """``taskspec-rs align SRC TGT --dict D [--test T] [--iterations N] [--out W.npy] [--quiet]``.

    Returns the exit status: 0 on success, 2 on user errors (missing or
    malformed files, bad options), which are printed as one line on stderr.
    """
    parser = _parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: --help (0) or usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    try:
        if args.dictionary is None and not args.identical_seed:
            raise _UserError("--dict is required (or --identical-seed)")
        for name in ("iterations", "max_vocab", "csls_k"):
            v = getattr(args, name)
            if v < (0 if name == "iterations" else 1):
                raise _UserError(
                    f"--{name.replace('_', '-')}: must be {'>= 0' if name == 'iterations' else '>= 1'}, got {v}"
                )
        if args.threads is not None and args.threads < 1:
            raise _UserError(f"--threads: must be >= 1, got {args.threads}")
        seed = _read_dict_cli(args.dictionary) if args.dictionary else None
        test = _read_dict_cli(args.test) if args.test else None
        sw, sv = _load_any(args.src, args.src_lang, "--src-lang")
        tw, tv = _load_any(args.tgt, args.tgt_lang, "--tgt-lang")
        say(f"source: {len(sw)} words x {sv.shape[1]}; target: {len(tw)} words x {tv.shape[1]}")
        if sv.shape[1] != tv.shape[1]:
            raise _UserError(f"dimensions differ: source {sv.shape[1]}, target {tv.shape[1]}")
        if test is not None:
            before = bli_evaluate(sv, tv, sw, tw, test, csls_k=args.csls_k, num_threads=args.threads)
            say(f"BLI before alignment: {_format_bli(before)}")
        try:
            W, report = align(
                sv,
                tv,
                sw,
                tw,
                dictionary=seed,
                iterations=args.iterations,
                csls_k=args.csls_k,
                max_vocab=args.max_vocab,
                identical_seed=args.identical_seed,
                num_threads=args.threads,
                progress=not args.quiet,
                return_report=True,
            )
        except ValueError as exc:
            raise _UserError(str(exc)) from None
        last = report.iterations[-1]
        say(
            f"aligned: {report.seed_pairs} seed pairs, {len(report.iterations) - 1} self-learning "
            f"iteration(s), final dictionary {last['pairs']} pairs, mean cos {last['objective']:.4f}"
        )
        if test is not None:
            after = bli_evaluate(sv, tv, sw, tw, test, W=W, csls_k=args.csls_k, num_threads=args.threads)
            say(f"BLI after alignment:  {_format_bli(after)}")
        if args.out:
            atomic_write(args.out, lambda f: np.save(f, W))
            say(f"wrote {args.out}")
    except _UserError as exc:
        print(f"taskspec-rs align: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _read_dict_cli(path: str) -> list[tuple[str, str]]:
    try:
        return read_dictionary(path)
    except FileNotFoundError:
        raise _UserError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise _UserError(str(exc)) from None
