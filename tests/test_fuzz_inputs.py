"""Property-based fuzzing (hypothesis) of the public API and of every file parser.

Every call either returns a well-formed result (finite wherever the inputs were finite, bounded and
valid) or raises one of the documented exception types: ValueError, TypeError, an OSError subclass,
``taskspec_rs.NumericalError`` or ``taskspec_rs.TaskspecError``. Anything else (another exception,
an abort, a hang) fails. Inputs cover shapes (empty, one row, mismatched), dtypes (float16/32/64,
integers, bools, complex, object), memory layouts (C, Fortran, strided views), values (NaN, inf,
zero rows, denormals, values past the float32 range) and scalar arguments of every type and size.
Files: valid text, binary, gzip and ``.npy`` files are truncated, overwritten, extended and given
hostile headers.

The examples are derandomised (the same on every run, so CI is repeatable); set
``TASKSPEC_FUZZ_EXAMPLES`` to a larger number for a longer, fresh search
(``TASKSPEC_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_inputs.py``).
"""

from __future__ import annotations

import gzip
import io
import os
import tempfile
import warnings

import numpy as np
import pytest
import taskspec_rs as ts
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

DOCUMENTED = (ValueError, TypeError, OSError, ts.NumericalError, ts.TaskspecError)
_EXAMPLES = int(os.environ.get("TASKSPEC_FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int):
    """``examples`` derandomised cases (or ``TASKSPEC_FUZZ_EXAMPLES`` fresh ones)."""
    return settings(
        max_examples=_EXAMPLES or examples,
        derandomize=not _EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def outcome(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or ``None`` when it raised a documented exception (anything else propagates)."""
    name = getattr(fn, "__name__", "call")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy may warn about the hostile values themselves
            result = fn(*args, **kwargs)
    except DOCUMENTED as exc:
        assert str(exc), f"{type(exc).__name__} without a message"
        event(f"{name}: {type(exc).__name__}")
        return None
    event(f"{name}: returned")
    return result


# ------------------------------------------------------------------ strategies


def mostly(common, rare):
    """``common`` about nine draws in ten, ``rare`` (the hostile values) otherwise."""
    return st.sampled_from([False] * 9 + [True]).flatmap(lambda hostile: rare if hostile else common)


VALUES = {
    "bounded": st.floats(-4, 4, allow_nan=False),
    "any": st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    "ties": st.sampled_from([0.0, 1.0, -1.0, 0.5]),
    "huge": st.sampled_from([3e38, -3.4e38, 1e300, -1e200, 1e-45, 1e-320, 0.0]),
}
KINDS = ("bounded", "bounded", "bounded", "ties", "any", "huge")
DTYPES = [np.float32, np.float32, np.float32, np.float64, np.float64, np.float16, np.int32, np.bool_, np.complex64]
DTYPES += [object]


@st.composite
def matrices(draw, rows=None, cols=None, kinds=KINDS, dtypes=tuple(DTYPES)):
    """``(array, bounded)``: a matrix of any dtype/layout; ``bounded``: finite float values in [-4, 4]."""
    n = draw(mostly(st.integers(1, 9), st.just(0))) if rows is None else rows
    d = draw(mostly(st.integers(1, 7), st.just(0))) if cols is None else cols
    kind = draw(st.sampled_from(kinds))
    vals = draw(st.lists(VALUES[kind], min_size=n * d, max_size=n * d))
    dtype = draw(st.sampled_from(dtypes))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = np.array(vals, dtype=np.float64).reshape(n, d).astype(dtype)
    layout = draw(st.sampled_from(["C", "F", "strided", "negative-stride"]))
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided":
        wide = np.zeros((n, 2 * d), dtype=a.dtype)
        wide[:, ::2] = a
        a = wide[:, ::2]
    elif layout == "negative-stride":
        a = a[::-1, ::-1].copy()[::-1, ::-1]
    bounded = kind in ("bounded", "ties") and dtype in (np.float32, np.float64, np.float16)
    return a, bounded


def valid_matrix(rows, cols, seed):
    """Finite, non-zero rows (a valid input for every cosine entry point)."""
    x = np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32)
    x[np.abs(x).sum(axis=1) == 0] = 1.0
    return x


INTS = mostly(
    st.integers(1, 6),
    st.one_of(
        st.integers(-3, 12),
        st.sampled_from([2**31, 2**40, 2**40 + 1, 2**63, 2**64, 10**30, -(2**63)]),
        st.sampled_from([True, 2.0, 2.5, "3", None, np.int64(3), np.uint8(2)]),
    ),
)
THREADS = mostly(st.sampled_from([None, 1, 2]), st.sampled_from([0, -1, 1025, 10**6, 2**64, True, 2.0, "2"]))
REG = mostly(st.just(1e-3), st.sampled_from([0.0, 1.0, -1.0, float("nan"), float("inf"), "0.1", None]))


@st.composite
def same_space(draw, count):
    """``count`` matrices that share their column count (usually)."""
    d = draw(mostly(st.integers(1, 7), st.just(0)))
    return [draw(matrices(cols=draw(mostly(st.just(d), st.integers(0, 7))))) for _ in range(count)]


# ------------------------------------------------------------------ array entry points


@fuzz_settings(150)
@given(qb=same_space(2), k=INTS, metric=mostly(st.sampled_from(["cosine", "csls"]), st.just("dot")), data=st.data())
def test_knn_any_input(qb, k, metric, data):
    (qa, qb), (ba, bb) = qb
    excl = data.draw(st.sampled_from([None, None, "self", "array"]))
    kw = {"exclude_self": True} if excl == "self" else {}
    if excl == "array":
        kw["exclude"] = data.draw(st.lists(st.integers(-2, 10), min_size=len(qa), max_size=len(qa)))
    res = outcome(ts.knn, qa, ba, k, metric=metric, num_threads=data.draw(THREADS), **kw)
    if res is not None:
        sims, idx = res
        assert sims.shape == idx.shape == (qa.shape[0], int(k))
        assert ((idx >= 0) & (idx < ba.shape[0])).all()
        if qb and bb:
            assert np.isfinite(sims).all()


@fuzz_settings(100)
@given(xy=same_space(2), k=INTS, data=st.data())
def test_llm_project_any_input(xy, k, data):
    x, y = xy
    xs = data.draw(matrices(rows=data.draw(mostly(st.just(x[0].shape[0]), st.integers(0, 9)))))
    reg = data.draw(REG)
    margin = data.draw(mostly(st.none(), st.sampled_from([0.0, 0.1, -1.0, float("nan")])))
    out = outcome(ts.llm_project, x[0], xs[0], y[0], k, reg=reg, margin=margin, num_threads=data.draw(THREADS))
    if out is not None:
        assert out.shape == (y[0].shape[0], xs[0].shape[1]) and out.dtype == np.float32
        if x[1] and xs[1] and y[1] and reg == 1e-3:
            assert np.isfinite(out).all()


@fuzz_settings(100)
@given(xy=same_space(2), data=st.data())
def test_llm_weights_and_from_neighbors_any_input(xy, data):
    x, y = xy
    n, m = y[0].shape[0], x[0].shape[0]
    k = data.draw(mostly(st.integers(1, 4), st.just(0)))
    idx = mostly(st.integers(0, max(m - 1, 0)), st.integers(-2, 10))
    nb = np.array(data.draw(st.lists(idx, min_size=n * k, max_size=n * k)), dtype=np.int64)
    nb_type = mostly(st.just(np.int64), st.sampled_from([np.int32, np.uint16, np.float64, object]))
    nb = nb.reshape(n, k).astype(data.draw(nb_type))
    w = outcome(ts.llm_weights, x[0], y[0], nb, reg=data.draw(REG))
    if w is not None and x[1] and y[1]:
        assert w.shape == (n, k) and np.isfinite(w).all()
    xs = matrices(rows=x[0].shape[0], kinds=("bounded",), dtypes=(np.float32,))
    p = outcome(ts.llm_from_neighbors, x[0], data.draw(xs)[0], y[0], nb, reg=1e-3)
    if p is not None and x[1] and y[1]:
        assert np.isfinite(p.y_spec).all() and np.isfinite(p.weights).all()


@fuzz_settings(100)
@given(xy=same_space(2), block=INTS, which=st.sampled_from(["lp", "orthogonal", "procrustes"]), data=st.data())
def test_linear_maps_any_input(xy, block, which, data):
    x, y = xy
    xs = data.draw(matrices(rows=data.draw(mostly(st.just(x[0].shape[0]), st.integers(0, 9)))))
    if which == "procrustes":
        out = outcome(ts.procrustes, x[0], data.draw(matrices(rows=x[0].shape[0], cols=x[0].shape[1])))
    else:
        fn = ts.lp_project if which == "lp" else ts.orthogonal_project
        out = outcome(fn, x[0], xs[0], y[0], block_rows=block)
    if out is not None and x[1] and xs[1] and y[1]:
        assert np.isfinite(out).all()


@fuzz_settings(60)
@given(
    bq=same_space(2),
    k=INTS,
    params=st.fixed_dictionaries(
        {
            "M": mostly(st.sampled_from([2, 4, 16]), st.sampled_from([0, 1, 1025, 2**40, 2.0, True, None])),
            "ef_construction": mostly(st.sampled_from([1, 8, 100]), st.sampled_from([0, -5, 10**6 + 1, 3.5])),
            "ef": mostly(st.sampled_from([1, 10, 10**6]), st.sampled_from([0, 10**6 + 1])),
            "seed": mostly(st.sampled_from([0, 100, 2**64 - 1]), st.sampled_from([-1, 2**64, 1.0])),
        }
    ),
    search_ef=mostly(st.sampled_from([None, 1, 50]), st.sampled_from([0, 10**7, 2.0])),
)
def test_hnsw_any_input(bq, k, params, search_ef):
    b, q = bq
    index = outcome(ts.HnswIndex, b[0], num_threads=1, **params)
    if index is None:
        return
    res = outcome(index.search, q[0], k, ef=search_ef, num_threads=1)
    if res is not None and b[1] and q[1]:
        assert np.isfinite(res[0]).all() and res[1].shape == (q[0].shape[0], int(k))


@fuzz_settings(80)
@given(n=st.integers(1, 30), m=st.integers(2, 40), d=st.integers(1, 12), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_valid_inputs_give_finite_results(n, m, d, seed, data):
    x, y, xs = valid_matrix(m, d, seed), valid_matrix(n, d, seed + 1), valid_matrix(m, 3, seed + 2)
    k = data.draw(st.integers(1, m - 1))
    layout = data.draw(st.sampled_from(["C", "F", "float64", "float16-safe"]))
    if layout == "F":
        x, y = np.asfortranarray(x), np.asfortranarray(y)
    elif layout == "float64":
        x, y = x.astype(np.float64), y.astype(np.float64)
    sims, idx = ts.knn(y, x, k)
    assert np.isfinite(sims).all() and (np.abs(sims) <= 1 + 1e-5).all()
    assert (np.diff(sims, axis=1) <= 1e-6).all() and ((idx >= 0) & (idx < m)).all()
    p = ts.LLMProjector(k).fit(x, xs).project(y)
    assert np.isfinite(p.y_spec).all() and np.allclose(p.weights.sum(axis=1), 1, atol=1e-3)
    assert np.isfinite(ts.lp_project(x, xs, y, block_rows=data.draw(st.integers(1, 50)))).all()


# ------------------------------------------------------------------ files


def _valid_file(fmt: str, rows: int, dim: int, seed: int) -> bytes:
    """The bytes save_vectors writes (built in memory: no fsync per example)."""
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, x, allow_pickle=False)
        return buf.getvalue()
    out = f"{rows} {dim}\n".encode()
    for i, row in enumerate(x):
        if fmt == "binary":
            out += f"w{i} ".encode() + row.astype("<f4").tobytes() + b"\n"
        else:
            out += (f"w{i} " + " ".join(repr(float(v)) for v in row) + "\n").encode()
    return out


HEADER_FIELDS = st.one_of(
    st.integers(0, 8).map(str),
    st.sampled_from(["100000000000000", "4611686018427387904", str(2**64 - 1), str(2**64), "9" * 30, "-1", "1e3"]),
)


@st.composite
def mutated(draw, fmt):
    data = bytearray(_valid_file(fmt, draw(st.integers(0, 6)), draw(st.integers(1, 5)), draw(st.integers(0, 99))))
    how = draw(st.sampled_from(["none", "none", "truncate", "overwrite", "insert", "header"]))
    if how == "truncate":
        del data[draw(st.integers(0, len(data))) :]
    elif how == "overwrite" and data:
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif how == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif how == "header" and fmt != "npy":
        nl = data.find(b"\n")
        data[: max(nl, 0)] = f"{draw(HEADER_FIELDS)} {draw(HEADER_FIELDS)}".encode()
    elif how == "header":  # a hostile .npy header: any shape and dtype, data as before
        shape = draw(st.tuples(*[st.sampled_from([0, 1, 3, 2**31, 2**62, 10**20])] * draw(st.integers(1, 3))))
        descr = draw(st.sampled_from(["<f4", ">f8", "<f2", "<i4", "|b1", "<c8", "O"]))
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf, {"descr": descr, "fortran_order": draw(st.booleans()), "shape": shape}
        )
        data = bytearray(buf.getvalue()) + data[128:]
    return bytes(data)


@fuzz_settings(300)
@given(
    fmt=st.sampled_from(["text", "binary", "npy"]),
    data=st.data(),
    compress=st.booleans(),
    limit=mostly(st.one_of(st.none(), st.integers(0, 8)), st.sampled_from([2**40, 2**40 + 1, -1, 1.0, True, "2"])),
    dtype=mostly(st.sampled_from(["float32", "float64", "float16", "f4"]), st.sampled_from(["int8", "(2)f4", "x", 3])),
    duplicates=mostly(st.sampled_from(["keep_first", "error"]), st.just("other")),
)
def test_load_vectors_on_mutated_files(fmt, data, compress, limit, dtype, duplicates):
    payload = data.draw(mutated(fmt))
    with tempfile.TemporaryDirectory() as tmp:
        ext = {"text": ".vec", "binary": ".bin", "npy": ".npy"}[fmt]
        path = os.path.join(tmp, "e" + ext + (".gz" if compress and fmt != "npy" else ""))
        with open(path, "wb") as f:
            f.write(gzip.compress(payload) if compress and fmt != "npy" else payload)
        if fmt == "npy":
            n_words = data.draw(st.integers(0, 8))
            with open(os.path.join(tmp, "e.words.txt"), "w") as f:
                f.write("".join(f"w{i}\n" for i in range(n_words)))
        res = outcome(ts.load_vectors, path, limit=limit, dtype=dtype, duplicates=duplicates, num_threads=2)
    if res is not None:
        words, vectors = res
        assert vectors.ndim == 2 and vectors.shape[0] == len(words) and vectors.flags.c_contiguous
        assert np.isfinite(vectors).all()
        assert limit is None or len(words) <= limit


@fuzz_settings(200)
@given(
    content=st.binary(max_size=64), fmt=st.sampled_from(["text", "binary", "npy"]), limit=st.sampled_from([None, 0, 1])
)
def test_load_vectors_on_random_bytes(content, fmt, limit):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "e")
        with open(path, "wb") as f:
            f.write(content)
        with open(path + ".words.txt", "wb") as f:
            f.write(b"a\nb\n")
        res = outcome(ts.load_vectors, path, format=fmt, limit=limit)
    if res is not None:
        assert np.isfinite(res[1]).all() and res[1].shape[0] == len(res[0])


@fuzz_settings(30)
@given(
    words=mostly(
        st.lists(st.from_regex(r"[a-z]{1,5}", fullmatch=True), unique=True, min_size=4, max_size=4),
        st.lists(st.text(max_size=6), max_size=6),
    ),
    x=matrices(rows=4),
    fmt=st.sampled_from(["text", "binary", "npy"]),
)
def test_save_vectors_any_input(words, x, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "e." + {"text": "vec", "binary": "bin", "npy": "npy"}[fmt])
        if outcome(ts.save_vectors, path, words, x[0]) is None:
            return
        w, v = ts.load_vectors(path, dtype="float64" if x[0].dtype == np.float64 else "float32")
    assert w == list(words) and v.shape == x[0].shape


def test_fuzz_settings_are_repeatable():
    """The CI run is derandomised unless a longer search is asked for."""
    if _EXAMPLES:
        pytest.skip("TASKSPEC_FUZZ_EXAMPLES asks for a fresh search")
    assert fuzz_settings(5).derandomize


# ------------------------------------------------------------------ documented bounds


def test_argument_bounds_name_the_argument_and_range(tmp_path):
    x = valid_matrix(20, 4, 0)
    bad = [
        (lambda: ts.HnswIndex(x, M=1), ValueError, r"M: must be a positive int \(HNSW graph degree\) between 2 and"),
        (lambda: ts.HnswIndex(x, M=1025), ValueError, "M: .* between 2 and 1024, got 1025"),
        (lambda: ts.HnswIndex(x, M=2.0), TypeError, "M: expected"),
        (lambda: ts.HnswIndex(x, ef_construction=0), ValueError, "ef_construction: .* between 1 and 1000000"),
        (lambda: ts.HnswIndex(x, ef=10**6 + 1), ValueError, "ef: .* between 1 and 1000000"),
        (lambda: ts.HnswIndex(x, seed=-1), ValueError, r"seed: .* between 0 and 18446744073709551615"),
        (lambda: ts.HnswIndex(x).search(x, 2.5), TypeError, "k: expected a positive int"),
        (lambda: ts.HnswIndex(x).search(x, 21), ValueError, "k: must be between 1 and 20"),
        (lambda: ts.HnswIndex(x).search(x, 3, ef=0), ValueError, "ef: .* between 1 and 1000000"),
        (
            lambda: ts.knn(x, x, 3, num_threads=1025),
            ValueError,
            "num_threads: must be None or an int between 1 and 1024",
        ),
        (lambda: ts.knn(x, x, 21), ValueError, "k: must be between 1 and 20"),
        (
            lambda: ts.knn(x.astype(np.float64) * 1e300, x, 3),
            ValueError,
            "queries: has values beyond the float32 range",
        ),
        (lambda: ts.load_vectors(tmp_path / "e.vec", limit=2**40 + 1), ValueError, "limit: .* between 0 and 2\\*\\*40"),
        (
            lambda: ts.llm_weights(x, x[:1], np.zeros((1, 4097), np.int64)),
            ValueError,
            "neighbors: 4097 neighbours per row: .* at most 4096",
        ),
    ]
    for call, exc, message in bad:
        with pytest.raises(exc, match=message):
            call()


def test_hnsw_smallest_graph_answers_or_names_k():
    """M=2 (the smallest degree) with k close to the rows: an answer, or a ValueError naming k (not hnswlib's
    RuntimeError)."""
    x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    index = ts.HnswIndex(x, M=2, num_threads=1)
    try:
        sims, idx = index.search(x, 199, num_threads=1)
    except ValueError as exc:
        assert str(exc).startswith("k: the HNSW graph found fewer than 199 neighbours"), exc
    else:
        assert sims.shape == idx.shape == (200, 199)
