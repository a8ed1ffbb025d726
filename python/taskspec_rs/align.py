"""Building the general space: orthogonal alignment of two word-embedding spaces.

The cross-task projection needs *general* embeddings of the source and the
target language in one shared space. When the two languages come as separate
monolingual spaces, this module maps the source space onto the target space
with an orthogonal matrix ``W`` (``src @ W`` lives in the target space):

* :func:`procrustes` — the closed-form orthogonal Procrustes solution
  (:func:`taskspec_rs.project.procrustes`, re-exported);
* :func:`normalize_embeddings` — VecMap-style length normalisation and mean
  centring (:func:`taskspec_rs.data.normalize_embeddings`, re-exported);
* :func:`csls_knn` — retrieval by cross-domain similarity local scaling
  (CSLS, Conneau et al. 2018), which reduces hubness;
* :func:`align` — supervised Procrustes on a seed dictionary followed by
  VecMap/MUSE-style self-learning (dictionary induction from mutual CSLS
  nearest neighbours, then Procrustes again);
* :func:`bli_evaluate` — bilingual lexicon induction (P@k with nearest
  neighbour and CSLS retrieval) on a test dictionary;
* :func:`read_dictionary` — MUSE dictionary files.

The ``taskspec-rs align`` command (:mod:`taskspec_rs.cli`) drives these.
Every neighbour search goes through :func:`taskspec_rs.neighbors.knn`.

Cosine similarities are computed on length-normalised rows. An orthogonal map
commutes with length normalisation, so ``W`` may be applied to raw or to
normalised source vectors alike. Zero-norm rows and NaN/inf are rejected
with :class:`ValueError` (cosine is undefined for them), as in
:func:`taskspec_rs.knn`.
"""

from __future__ import annotations

import numbers
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

import numpy as np

from ._checks import as_matrix, check_k, check_num_threads, unit_rows
from .data import normalize_embeddings
from .neighbors import hub_scores, knn
from .project import procrustes

__all__ = [
    "AlignReport",
    "Alignment",
    "align",
    "bli_evaluate",
    "csls_knn",
    "normalize_embeddings",
    "procrustes",
    "read_dictionary",
]

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------
# CSLS retrieval
# ---------------------------------------------------------------------------


def _check_csls_k(csls_k: Any) -> int:
    return check_k(csls_k, sys.maxsize, "any positive int", name="csls_k")


def csls_knn(
    queries: Any,
    base: Any,
    k: int,
    *,
    csls_k: int = 10,
    query_vocab: Any = None,
    num_threads: Optional[int] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by CSLS (cross-domain similarity local scaling).

    ``CSLS(q, b) = 2 cos(q, b) - r_base(q) - r_query(b)``, where ``r_base(q)``
    is the mean cosine of ``q`` to its ``csls_k`` nearest ``base`` rows and
    ``r_query(b)`` the mean cosine of ``b`` to its ``csls_k`` nearest query
    rows (Conneau et al. 2018). Both ``r`` terms come from
    :func:`taskspec_rs.neighbors.hub_scores`; the ranking is one
    ``knn(..., metric="csls", hub_penalty=r_query)`` search (exact, in Rust,
    without the ``n x m`` score matrix), to which the query term is added.

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

    Returns
    -------
    scores : ndarray of float32, shape (n, k)
        CSLS scores, best first (ties go to the lower index).
    indices : ndarray of int64, shape (n, k)
        Row indices into ``base``.
    """
    q = unit_rows(queries, "queries")
    b = unit_rows(base, "base")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"base: has dimension {b.shape[1]} but queries have {q.shape[1]}")
    k = check_k(k, b.shape[0], f"base has {b.shape[0]} rows")
    csls_k = _check_csls_k(csls_k)
    threads = check_num_threads(num_threads)
    qv = q if query_vocab is None else _query_vocab(query_vocab, q.shape[1])
    r_base = hub_scores(q, b, csls_k, num_threads=threads)
    r_query = hub_scores(b, qv, csls_k, num_threads=threads)
    scores, idx = knn(q, b, k, metric="csls", hub_penalty=r_query, num_threads=threads)
    full = 2.0 * scores.astype(np.float64) - r_base[:, None].astype(np.float64)
    return full.astype(np.float32), idx.astype(np.int64, copy=False)


def _query_vocab(query_vocab: Any, dim: int) -> np.ndarray:
    qv = unit_rows(query_vocab, "query_vocab")
    if qv.shape[1] != dim:
        raise ValueError(f"query_vocab: has dimension {qv.shape[1]} but queries have {dim}")
    return qv


def _mutual_csls(
    xw: np.ndarray, z: np.ndarray, csls_k: int, num_threads: Optional[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual CSLS nearest neighbours between unit-row ``xw`` and ``z``.

    Two ``k=1`` CSLS searches, forward (rows of ``xw`` over ``z``, penalty
    ``r_z``) and backward (rows of ``z`` over ``xw``, penalty ``r_x``); the
    query term is constant per query, so it does not change either argmax.
    Returns the pairs ``(i, j)`` that are each other's best match (ties go to
    the lower index on both sides).
    """
    r_x = hub_scores(xw, z, csls_k, num_threads=num_threads)
    r_z = hub_scores(z, xw, csls_k, num_threads=num_threads)
    _, fwd = knn(xw, z, 1, metric="csls", hub_penalty=r_z, num_threads=num_threads)
    _, bwd = knn(z, xw, 1, metric="csls", hub_penalty=r_x, num_threads=num_threads)
    fwd, bwd = fwd[:, 0].astype(np.int64), bwd[:, 0].astype(np.int64)
    src = np.arange(xw.shape[0], dtype=np.int64)
    mutual = bwd[fwd] == src
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
    for lineno, line in _text_lines(p):
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


def _text_lines(p: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 file, a leading byte-order mark removed."""
    with open(p, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{p}:{lineno}: not valid UTF-8 ({exc.reason})") from None
            yield lineno, line.lstrip("\ufeff") if lineno == 1 else line


def _word_index(words: Iterable[str]) -> dict[str, int]:
    """word -> row (first occurrence wins)."""
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(w, i)
    return index


def _check_words(words: Any, n_rows: int, name: str) -> list[str]:
    if isinstance(words, str):
        raise TypeError(f"{name}: expected a sequence of words, got a single string")
    lst = [str(w) for w in words]
    if len(lst) != n_rows:
        raise ValueError(f"{name}: has {len(lst)} words but the vectors have {n_rows} rows")
    return lst


def _pair(item: Any, n: int, name: str) -> tuple[Any, Any]:
    try:
        s, t = item
    except (TypeError, ValueError):
        raise ValueError(f"{name}: item {n} is not a (source_word, target_word) pair: {item!r}") from None
    return s, t


def _pairs_to_indices(
    pairs: Iterable[tuple[str, str]], src_index: dict[str, int], tgt_index: dict[str, int], name: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Unique ``(src_row, tgt_row)`` pairs found in both vocabularies, and the number missing."""
    seen: dict[tuple[int, int], None] = {}  # insertion-ordered set
    missing = 0
    for n, item in enumerate(pairs):
        s, t = _pair(item, n, name)
        i, j = src_index.get(s), tgt_index.get(t)
        if i is None or j is None:
            missing += 1
        else:
            seen.setdefault((i, j))
    rows = np.asarray(list(seen), dtype=np.int64).reshape(-1, 2)
    return rows[:, 0].copy(), rows[:, 1].copy(), missing


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


class Alignment(NamedTuple):
    """The result of :func:`align`: unpacks as ``W, report``."""

    W: np.ndarray
    report: AlignReport


@dataclass(frozen=True)
class _AlignOptions:
    iterations: int
    csls_k: int
    max_vocab: int
    tol: float
    num_threads: Optional[int]


def _align_options(iterations: Any, csls_k: Any, max_vocab: Any, tol: Any, num_threads: Any) -> _AlignOptions:
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
        raise ValueError(f"iterations: expected an int >= 0, got {iterations!r}")
    csls_k = _check_csls_k(csls_k)
    max_vocab = check_k(max_vocab, sys.maxsize, "any positive int", name="max_vocab")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 <= tol < 1:
        raise ValueError(f"tol: expected a number in [0, 1), got {tol!r}")
    return _AlignOptions(int(iterations), csls_k, max_vocab, float(tol), check_num_threads(num_threads))


def _seed(
    dictionary: Optional[Iterable[tuple[str, str]]], identical_seed: bool, src_words: list[str], tgt_words: list[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Seed pairs as row indices (dictionary pairs, then identically spelt words) and the number missing."""
    if dictionary is None and not identical_seed:
        raise ValueError("dictionary: a seed dictionary is required (or pass identical_seed=True)")
    src_index, tgt_index = _word_index(src_words), _word_index(tgt_words)
    seed: list[tuple[str, str]] = list(dictionary) if dictionary is not None else []
    if identical_seed:
        seed += [(w, w) for w in src_index if w in tgt_index]
    seed_s, seed_t, missing = _pairs_to_indices(seed, src_index, tgt_index, "dictionary")
    if seed_s.size == 0:
        raise ValueError(
            f"dictionary: none of the {len(seed)} seed pairs has both words in the vocabularies "
            "(wrong language order or tokenisation?)"
        )
    return seed_s, seed_t, missing


@dataclass
class _Aligner:
    """One :func:`align` run: the unit-row spaces, the report and the progress log."""

    x: np.ndarray
    z: np.ndarray
    report: AlignReport
    progress: bool

    def log(self, msg: str) -> None:
        if self.progress:
            print(f"align: {msg}", file=sys.stderr, flush=True)

    def solve(self, s_idx: np.ndarray, t_idx: np.ndarray, it: int, induced: int, t0: float) -> np.ndarray:
        """Procrustes on the pairs ``(s_idx, t_idx)``, recorded as iteration ``it``."""
        w = procrustes(self.x[s_idx], self.z[t_idx])
        obj = float(np.mean(np.einsum("ij,ij->i", self.x[s_idx] @ w, self.z[t_idx])))
        secs = time.perf_counter() - t0
        entry = {"iteration": it, "pairs": int(s_idx.size), "induced": induced, "objective": obj, "seconds": secs}
        self.report.iterations.append(entry)
        self.log(f"iteration {it}: {s_idx.size} pairs ({induced} induced), mean cos {obj:.4f}, {secs:.1f}s")
        return w

    def self_learn(self, w: np.ndarray, seed_s: np.ndarray, seed_t: np.ndarray, opts: _AlignOptions) -> np.ndarray:
        """Refine ``w``: mutual CSLS neighbours of the leading rows + the seed, Procrustes, until converged."""
        xs, zs = self.x[: opts.max_vocab], self.z[: opts.max_vocab]
        m = self.z.shape[0]
        seed_codes = seed_s * m + seed_t
        prev: Optional[np.ndarray] = None
        for it in range(1, opts.iterations + 1):
            t0 = time.perf_counter()
            xw = np.ascontiguousarray(xs @ w)
            xw /= np.linalg.norm(xw, axis=1, keepdims=True)  # exact unit rows after rounding
            ms, mt = _mutual_csls(xw, zs, opts.csls_k, opts.num_threads)
            codes = np.unique(np.concatenate([seed_codes, ms * m + mt]))
            if prev is not None:
                changed = np.setxor1d(codes, prev, assume_unique=True).size
                if changed <= opts.tol * codes.size:
                    self.report.converged = True
                    self.log(f"iteration {it}: dictionary changed by {changed} pair(s), converged")
                    break
            prev = codes
            w = self.solve(codes // m, codes % m, it, int(ms.size), t0)
        return w


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
) -> Alignment:
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
    Returns
    -------
    Alignment
        ``W`` (float32, shape (d, d), orthogonal; ``src_vecs @ W`` lives in the
        target space) and the :class:`AlignReport` of the run.

    Raises
    ------
    ValueError
        Dimension or word-count mismatch, zero/NaN rows, or no usable seed pair.
    """
    x = unit_rows(src_vecs, "src_vecs")
    z = unit_rows(tgt_vecs, "tgt_vecs")
    if x.shape[1] != z.shape[1]:
        raise ValueError(
            f"tgt_vecs: has dimension {z.shape[1]} but src_vecs has {x.shape[1]}; "
            "an orthogonal map needs both spaces to have the same dimension"
        )
    sw = _check_words(src_words, x.shape[0], "src_words")
    tw = _check_words(tgt_words, z.shape[0], "tgt_words")
    opts = _align_options(iterations, csls_k, max_vocab, tol, num_threads)
    seed_s, seed_t, missing = _seed(dictionary, identical_seed, sw, tw)
    run = _Aligner(x, z, AlignReport(seed_pairs=int(seed_s.size), seed_missing=int(missing)), progress)
    t0 = time.perf_counter()
    run.log(f"seed: {seed_s.size} pairs in vocabulary, {missing} out of vocabulary")
    w = run.solve(seed_s, seed_t, 0, 0, t0)
    w = run.self_learn(w, seed_s, seed_t, opts).astype(np.float32)
    return Alignment(w, run.report)


# ---------------------------------------------------------------------------
# Bilingual lexicon induction
# ---------------------------------------------------------------------------


def _mapped_spaces(src_vecs: Any, tgt_vecs: Any, W: Any) -> tuple[np.ndarray, np.ndarray]:
    """Unit-row ``src_vecs @ W`` (or ``src_vecs`` when ``W`` is None) and unit-row ``tgt_vecs``."""
    x = unit_rows(src_vecs, "src_vecs")
    z = unit_rows(tgt_vecs, "tgt_vecs")
    if W is not None:
        w = as_matrix(W, "W")
        if w.shape != (x.shape[1], z.shape[1]):
            raise ValueError(f"W: expected shape ({x.shape[1]}, {z.shape[1]}), got {w.shape}")
        x = unit_rows(x @ w, "src_vecs @ W")
    elif x.shape[1] != z.shape[1]:
        raise ValueError(f"tgt_vecs: has dimension {z.shape[1]} but src_vecs has {x.shape[1]}; pass W")
    return x, z


def _gold(
    pairs: list[Any], src_index: dict[str, int], tgt_index: dict[str, int]
) -> tuple[dict[int, set[int]], set[str]]:
    """Gold target rows per evaluable source row, and every source word of ``pairs``."""
    gold: dict[int, set[int]] = {}
    source_words: set[str] = set()
    for n, item in enumerate(pairs):
        s, t = _pair(item, n, "pairs")
        source_words.add(s)
        i, j = src_index.get(s), tgt_index.get(t)
        if i is not None and j is not None:
            gold.setdefault(i, set()).add(j)
    return gold, source_words


def _first_hit(queries: np.ndarray, idx: np.ndarray, gold: dict[int, set[int]]) -> np.ndarray:
    """Rank of the first correct target in each row of ``idx`` (``idx.shape[1]`` when none)."""
    first = np.full(queries.size, idx.shape[1], dtype=np.int64)
    for r, (q, row) in enumerate(zip(queries.tolist(), idx.tolist())):
        g = gold[q]
        for pos, j in enumerate(row):
            if j in g:
                first[r] = pos
                break
    return first


def _bli_cutoffs(methods: Sequence[str], ks: Iterable[int], n_targets: int) -> list[int]:
    """Check ``methods``; the sorted unique cut-offs ``ks`` (each at most ``n_targets``)."""
    for meth in methods:
        if meth not in ("nn", "csls"):
            raise ValueError(f"methods: unknown method {meth!r}; choose 'nn' or 'csls'")
    cutoffs = sorted({check_k(k, n_targets, f"target vocabulary has {n_targets} words", name="ks") for k in ks})
    if not cutoffs:
        raise ValueError("ks: give at least one cut-off")
    return cutoffs


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
    x, z = _mapped_spaces(src_vecs, tgt_vecs, W)
    sw = _check_words(src_words, x.shape[0], "src_words")
    tw = _check_words(tgt_words, z.shape[0], "tgt_words")
    ks = _bli_cutoffs(methods, ks, z.shape[0])
    threads = check_num_threads(num_threads)
    pairs = list(pairs)
    gold, source_words = _gold(pairs, _word_index(sw), _word_index(tw))
    queries = np.asarray(sorted(gold), dtype=np.int64)
    result: dict[str, Any] = {
        "n_pairs": len(pairs),
        "n_source_words": len(source_words),
        "n_found": int(queries.size),
        "coverage": queries.size / len(source_words) if source_words else float("nan"),
    }
    for meth in methods:
        if queries.size == 0:
            result[meth] = {f"p@{k}": float("nan") for k in ks}
            continue
        if meth == "nn":
            _, idx = knn(x[queries], z, ks[-1], num_threads=threads)
        else:
            _, idx = csls_knn(x[queries], z, ks[-1], csls_k=csls_k, query_vocab=x, num_threads=threads)
        first = _first_hit(queries, idx, gold)
        result[meth] = {f"p@{k}": float(np.mean(first < k)) for k in ks}
    return result
