"""Coverage-guided fuzzing (atheris / libFuzzer) of the public entry points of taskspec_rs.

Each input is one call. Its first byte picks the entry point:

* ``0``-``4`` (mod 16): :func:`taskspec_rs.load_vectors` on a file written from the input: text
  (``.vec``), word2vec binary (``.bin``), gzip of either (the input compressed by the harness;
  plain inputs starting with the gzip magic reach the gzip path too) and ``.npy`` (with a
  ``.words.txt`` of as many words as the input's next byte says). The second byte picks
  ``limit``, ``dtype`` and ``duplicates``.
* ``5``-``15``: the array entry points (``knn``, ``llm_project``, ``llm_weights``,
  ``llm_from_neighbors``, ``lp_project``, ``orthogonal_project``, ``procrustes``, ``hub_scores``,
  ``HnswIndex``) on matrices whose shape, dtype, memory layout (C, Fortran, strided) and values
  (bounded, any double with NaN/inf, huge, tiny, zero) and whose ``k`` / parameters come from the
  input.

A crash is anything but a documented outcome: the call returns (with finite results where the
inputs were bounded and valid) or raises ValueError, TypeError, an OSError subclass,
``taskspec_rs.NumericalError`` or ``taskspec_rs.TaskspecError``. An abort, segfault or hang
(``-timeout``) is reported by libFuzzer itself. With ``TASKSPEC_FUZZ_WARNINGS=error`` in the
environment a warning (e.g. numpy's overflow ``RuntimeWarning``) is a crash too.

Run: ``bash fuzz/run.sh SECONDS`` (or ``python fuzz/fuzz_vectors.py -max_total_time=60
-print_final_stats=1 WORK_DIR fuzz/corpus/python``); libFuzzer prints the executions
(``stat::number_of_executed_units``) and stops at the first crash, saving the input as ``crash-*``.
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
import warnings

import atheris
import numpy as np

with atheris.instrument_imports():
    import taskspec_rs as ts

ALLOWED = (ValueError, TypeError, OSError, ts.NumericalError, ts.TaskspecError)
WARNINGS = os.environ.get("TASKSPEC_FUZZ_WARNINGS", "ignore")
TMP = tempfile.mkdtemp(prefix="taskspec-fuzz-")

LIMITS = [None, 0, 1, 2, 5, 100, 2**40, 2**40 + 1, -1, 10**30]
DTYPES = ["float32", "float64", "float16"]
THREADS = [None, 1, 2, None, 0, -1, 1025, 10**6, True, 2.0]
BIG_INTS = [0, -1, 1, 2, 3, 5, 2**31, 2**63, 2**64, 10**30, True, 2.5, "3", None]
ARRAY_DTYPES = [np.float32, np.float64, np.float16, np.float32, np.float64, np.int64, np.bool_, object, np.complex64]


def _write(name: str, payload: bytes) -> str:
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(payload)
    return path


def fuzz_file(sel: int, opts: int, payload: bytes) -> None:
    limit = LIMITS[opts % len(LIMITS)]
    dtype = DTYPES[(opts >> 4) % 3]
    duplicates = "error" if opts & 64 else "keep_first"
    if sel == 4:
        n_words = payload[0] if payload else 0
        path = _write("e.npy", payload[1:])
        _write("e.words.txt", "".join(f"w{i}\n" for i in range(n_words)).encode())
    else:
        ext = [".vec", ".bin", ".vec.gz", ".bin.gz"][sel]
        path = _write("e" + ext, gzip.compress(payload, 1) if ext.endswith(".gz") else payload)
    words, vectors = ts.load_vectors(path, limit=limit, dtype=dtype, duplicates=duplicates, num_threads=2)
    assert vectors.ndim == 2 and vectors.shape[0] == len(words), (vectors.shape, len(words))
    assert vectors.dtype == np.dtype(dtype) and vectors.flags.c_contiguous
    assert np.isfinite(vectors).all()
    assert limit is None or len(words) <= limit
    assert all(isinstance(w, str) and w for w in words)


def _matrix(fdp: atheris.FuzzedDataProvider, rows: int, cols: int) -> tuple[np.ndarray, bool]:
    """A fuzzed matrix and whether its values are bounded (|v| <= 4, no NaN/inf) and float."""
    kind = fdp.ConsumeIntInRange(0, 5)
    n = rows * cols
    if kind <= 2:
        vals = np.array(fdp.ConsumeFloatListInRange(n, -4.0, 4.0), dtype=np.float64)
    elif kind == 3:
        vals = np.array(fdp.ConsumeFloatList(n), dtype=np.float64)  # any double: NaN, inf, 1e308, denormals
    elif kind == 4:
        vals = np.array(fdp.ConsumeIntListInRange(n, -3, 3), dtype=np.float64)  # many zeros and ties
    else:
        scale = [1e-40, 1e-20, 1e20, 3e38, 1e300][fdp.ConsumeIntInRange(0, 4)]
        vals = np.array(fdp.ConsumeFloatListInRange(n, -1.0, 1.0), dtype=np.float64) * scale
    dtype = ARRAY_DTYPES[fdp.ConsumeIntInRange(0, len(ARRAY_DTYPES) - 1)]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = vals.reshape(rows, cols).astype(dtype)
    layout = fdp.ConsumeIntInRange(0, 3)
    if layout == 1:
        arr = np.asfortranarray(arr)
    elif layout == 2:  # a strided view: every other column of a wider array
        wide = np.zeros((rows, 2 * cols), dtype=arr.dtype)
        wide[:, ::2] = arr
        arr = wide[:, ::2]
    elif layout == 3 and rows == cols:
        arr = arr.T.copy().T
    bounded = kind in (0, 1, 2, 4) and dtype in (np.float32, np.float64, np.float16)
    return arr, bounded


def _pick(fdp: atheris.FuzzedDataProvider, options: list):
    return options[fdp.ConsumeIntInRange(0, len(options) - 1)]


def _k(fdp: atheris.FuzzedDataProvider):
    return fdp.ConsumeIntInRange(1, 8) if fdp.ConsumeBool() else _pick(fdp, BIG_INTS)


def _finite(*arrays: np.ndarray) -> None:
    for a in arrays:
        assert np.isfinite(a).all(), a


def fuzz_arrays(sel: int, fdp: atheris.FuzzedDataProvider) -> None:
    n, m = fdp.ConsumeIntInRange(0, 12), fdp.ConsumeIntInRange(0, 12)
    d, e = fdp.ConsumeIntInRange(0, 9), fdp.ConsumeIntInRange(0, 5)
    if fdp.ConsumeIntInRange(0, 15) == 0:  # a ragged or non-array argument
        q, qb = _pick(fdp, [[[1.0, 2.0], [3.0]], "abc", None, 3.0, [[]], [[1, 2], [3, 4]]]), False
    else:
        q, qb = _matrix(fdp, n, d)
    b, bb = _matrix(fdp, m, d if fdp.ConsumeIntInRange(0, 7) else fdp.ConsumeIntInRange(0, 9))
    xs, sb = _matrix(fdp, m if fdp.ConsumeIntInRange(0, 7) else fdp.ConsumeIntInRange(0, 12), e)
    threads = _pick(fdp, THREADS)
    ok = qb and bb and sb
    which = sel % 9
    if which == 0:
        metric = _pick(fdp, ["cosine", "csls", "l2"])
        excl = fdp.ConsumeBool()
        s, i = ts.knn(q, b, _k(fdp), metric=metric, exclude_self=excl, num_threads=threads)
        if ok:
            _finite(s)
    elif which == 1:
        reg = _pick(fdp, [1e-3, 0.0, 1.0, -1.0, float("nan"), float("inf"), "x"])
        margin = _pick(fdp, [None, None, 0.0, 0.1, -1.0, float("nan")])
        y = ts.llm_project(b, xs, q, _k(fdp), reg=reg, margin=margin, num_threads=threads)
        if ok and reg == 1e-3:
            _finite(y)
    elif which == 2:
        nb = np.array(fdp.ConsumeIntListInRange(max(n, 0) * 3, -2, 14), dtype=np.int64).reshape(n, 3)
        if fdp.ConsumeBool():
            nb = nb.astype(_pick(fdp, [np.int32, np.float64, np.uint8, object]))
        w = ts.llm_weights(b, q, nb, reg=_pick(fdp, [1e-3, 0.0, 10.0]), num_threads=threads)
        if ok:
            _finite(w)
    elif which == 3:
        nb = np.array(fdp.ConsumeIntListInRange(max(n, 0) * 2, -1, 13), dtype=np.int64).reshape(n, 2)
        margin = _pick(fdp, [None, 0.05])
        scores = np.sort(np.asarray(fdp.ConsumeFloatListInRange(n * 2, -1, 1)).reshape(n, 2))[:, ::-1]
        p = ts.llm_from_neighbors(b, xs, q, nb, scores=scores, margin=margin, num_threads=threads)
        if ok:
            _finite(p.y_spec, p.weights)
    elif which == 4:
        y = ts.lp_project(b, xs, q, block_rows=_pick(fdp, [1, 2, 65536, 0, -1, 2**31, 2**63, 2.0]))
        if ok:
            _finite(y)
    elif which == 5:
        y = ts.orthogonal_project(b, xs, q, block_rows=_pick(fdp, [1, 3, 65536, 0, True]))
        if ok:
            _finite(y)
    elif which == 6:
        w = ts.procrustes(q, b)
        if ok:
            _finite(w)
    elif which == 7:
        r = ts.hub_scores(b, q, _k(fdp), exclude_self=fdp.ConsumeBool(), num_threads=threads)
        if ok:
            _finite(r)
    else:
        index = ts.HnswIndex(
            b,
            M=_pick(fdp, [2, 4, 16, 1, 0, 1025, 2**40, 2.0]),
            ef_construction=_pick(fdp, [1, 10, 100, 0, 10**7]),
            ef=_pick(fdp, [1, 10, 0, -3, 10**7]),
            seed=_pick(fdp, [0, 100, -1, 2**64, 2**64 - 1]),
            num_threads=_pick(fdp, [1, 2, None, 0]),
        )
        s, i = index.search(q, _k(fdp), ef=_pick(fdp, [None, 5, 0, 2**40]))
        if ok:
            _finite(s)


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    sel = data[0] % 16
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(WARNINGS)
            if sel <= 4:
                fuzz_file(sel, data[1], data[2:])
            else:
                fuzz_arrays(sel - 5, atheris.FuzzedDataProvider(data[1:]))
    except ALLOWED:
        pass


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
