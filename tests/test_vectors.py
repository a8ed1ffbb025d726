"""load_vectors / save_vectors: round trips, tolerance, every error naming file and line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import taskspec_rs as ts


def rand(n: int, d: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)


def wordlist(n: int) -> list[str]:
    return [f"w{i}" for i in range(n - 2)] + ["été", "日本語"][: min(n, 2)]


def write(path, content: str | bytes) -> str:
    mode = "wb" if isinstance(content, bytes) else "w"
    kw = {} if isinstance(content, bytes) else {"encoding": "utf-8", "newline": ""}
    with open(path, mode, **kw) as f:
        f.write(content)
    return str(path)


def binary(rows, header: str | None = None, newline: bool = True) -> bytes:
    dim = len(rows[0][1])
    out = (header if header is not None else f"{len(rows)} {dim}\n").encode()
    for w, v in rows:
        out += w.encode("utf-8") + b" " + np.asarray(v, dtype="<f4").tobytes() + (b"\n" if newline else b"")
    return out


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("ext", [".vec", ".txt", ".bin", ".npy"])
def test_round_trip_each_format(tmp_path, ext):
    words, x = wordlist(50), rand(50, 7)
    path = tmp_path / f"emb{ext}"
    ts.save_vectors(path, words, x)
    w2, x2 = ts.load_vectors(path)
    assert w2 == words
    assert isinstance(w2, list) and all(isinstance(w, str) for w in w2)
    assert x2.dtype == np.float32 and x2.flags.c_contiguous
    np.testing.assert_array_equal(x2, x)
    if ext == ".npy":
        assert (tmp_path / "emb.words.txt").read_text(encoding="utf-8").split("\n")[:2] == ["w0", "w1"]


def test_text_float64_round_trip_is_exact(tmp_path):
    x = rand(20, 5, dtype=np.float64) * 1e-3
    ts.save_vectors(tmp_path / "e.vec", wordlist(20), x)
    _, y = ts.load_vectors(tmp_path / "e.vec", dtype="float64")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("ext", [".vec", ".bin", ".npy"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", np.float64])
def test_dtypes(tmp_path, ext, dtype):
    x = rand(10, 4)
    ts.save_vectors(tmp_path / f"e{ext}", wordlist(10), x)
    _, y = ts.load_vectors(tmp_path / f"e{ext}", dtype=dtype)
    assert y.dtype == np.dtype(dtype)
    if ext == ".vec" and y.dtype == np.float64:
        # the text holds the shortest decimal of each float32; float64 reads that decimal
        np.testing.assert_array_equal(y.astype(np.float32), x)
        np.testing.assert_allclose(y, x, rtol=1e-7)
    else:
        np.testing.assert_array_equal(y, x.astype(dtype))


def test_float16_input_saves_and_loads(tmp_path):
    x = rand(6, 3).astype(np.float16)
    ts.save_vectors(tmp_path / "e.vec", wordlist(6), x)
    _, y = ts.load_vectors(tmp_path / "e.vec", dtype="float16")
    np.testing.assert_array_equal(y, x)


def test_format_override_and_unknown_extension(tmp_path):
    x = rand(3, 2)
    ts.save_vectors(tmp_path / "e.data", ["a", "b", "c"], x, format="binary")
    assert (tmp_path / "e.data").read_bytes().startswith(b"3 2\n")
    np.testing.assert_array_equal(ts.load_vectors(tmp_path / "e.data", format="bin")[1], x)
    with pytest.raises(ValueError, match="format: cannot infer"):
        ts.load_vectors(tmp_path / "e.data")
    with pytest.raises(ValueError, match="format: cannot infer"):
        ts.save_vectors(tmp_path / "e.gz", ["a"], x[:1])
    with pytest.raises(ValueError, match="format: expected"):
        ts.load_vectors(tmp_path / "e.data", format="hdf5")
    # npy without the suffix: used as is, words beside it
    ts.save_vectors(tmp_path / "plain", ["a", "b", "c"], x, format="npy")
    assert (tmp_path / "plain").exists() and (tmp_path / "plain.words.txt").exists()
    np.testing.assert_array_equal(ts.load_vectors(tmp_path / "plain", format="npy")[1], x)


def test_empty_matrix_round_trip(tmp_path):
    for ext in (".vec", ".bin"):
        ts.save_vectors(tmp_path / f"e{ext}", [], np.zeros((0, 3), np.float32))
        w, x = ts.load_vectors(tmp_path / f"e{ext}")
        assert w == [] and x.shape == (0, 3)


# ------------------------------------------------------------------ tolerance


def test_headerless_multispace_trailing_space_crlf(tmp_path):
    p = write(
        tmp_path / "e.vec",
        "\ufeffthe  0.5\t1.5   -2 \r\nof 1e-3 +2 3.\r\n  and 0 0 .25\n\n\n",
    )
    words, x = ts.load_vectors(p)
    assert words == ["the", "of", "and"]
    np.testing.assert_array_equal(x, np.array([[0.5, 1.5, -2], [1e-3, 2, 3], [0, 0, 0.25]], np.float32))


def test_header_with_spaces(tmp_path):
    p = write(tmp_path / "e.vec", " 2   3 \nthe 1 2 3 \nof 4 5 6\n")
    words, x = ts.load_vectors(p)
    assert words == ["the", "of"] and x.shape == (2, 3)


def test_non_ascii_words(tmp_path):
    p = write(tmp_path / "e.vec", "2 1\nnaïve 1\n\u00a0x 2\n")
    assert ts.load_vectors(p)[0] == ["naïve", "\u00a0x"]


# ------------------------------------------------------------------ limit


def test_limit_does_not_parse_the_rest(tmp_path):
    body = "".join(f"w{i} {i} {i + 0.5}\n" for i in range(5))
    p = write(tmp_path / "e.vec", "1000 2\n" + body + "garbage \xff nan x y z\n")
    words, x = ts.load_vectors(p, limit=3)
    assert words == ["w0", "w1", "w2"]
    np.testing.assert_array_equal(x[:, 0], [0, 1, 2])
    assert ts.load_vectors(p, limit=5)[1].shape == (5, 2)
    w0, x0 = ts.load_vectors(p, limit=0)
    assert w0 == [] and x0.shape == (0, 2)
    with pytest.raises(ValueError, match=r"line 7: value 1 is not a number"):
        ts.load_vectors(p, limit=6)
    # header-less: a limit beyond the end returns everything
    q = write(tmp_path / "f.vec", body)
    assert len(ts.load_vectors(q, limit=100)[0]) == 5


@pytest.mark.parametrize("ext", [".bin", ".npy"])
def test_limit_binary_and_npy(tmp_path, ext):
    x = rand(30, 4)
    ts.save_vectors(tmp_path / f"e{ext}", wordlist(30), x)
    words, y = ts.load_vectors(tmp_path / f"e{ext}", limit=7)
    assert words == wordlist(30)[:7]
    np.testing.assert_array_equal(y, x[:7])
    assert ts.load_vectors(tmp_path / f"e{ext}", limit=100)[1].shape == (30, 4)


def test_limit_binary_ignores_corrupt_tail(tmp_path):
    data = binary([("a", [1, 2]), ("b", [3, 4])], header="5 2\n") + b"c \x00"
    p = write(tmp_path / "e.bin", data)
    assert ts.load_vectors(p, limit=2)[0] == ["a", "b"]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_limit_validation(tmp_path, bad):
    p = write(tmp_path / "e.vec", "a 1\n")
    with pytest.raises((TypeError, ValueError), match="limit"):
        ts.load_vectors(p, limit=bad)


# ------------------------------------------------------------------ errors


TEXT_ERRORS = [
    ("2 3\nthe 1 2 3\nof 1 2\n", 'line 3: expected 3 values after the word "of", found 2'),
    ("2 3\nthe 1 2 3 4\nof 1 2 3\n", 'line 2: expected 3 values after the word "the", found 4'),
    ("the 1 2 3\nof 1 2\n", 'line 2: expected 3 values after the word "of", found 2'),
    ("2 2\nthe 1 zero\nof 1 2\n", 'line 2: value 2 is not a number: "zero"'),
    ("2 2\nthe 1 2\nof 1 2.5.1\n", 'line 3: value 2 is not a number: "2.5.1"'),
    ("2 2\nthe 1 2\nof nan 2\n", 'line 3: value 1 is "nan" (NaN and infinity are rejected)'),
    ("2 2\nthe 1 -inf\nof 1 2\n", 'line 2: value 2 is "-inf"'),
    ("2 2\nthe 1 2\nof 1e999 2\n", 'line 3: value 1 is "1e999"'),
    ("5 2\nthe 1 2\nof 1 2\n", "line 4: truncated file: header declares 5 vectors but the file has only 2"),
    ("5 2\nthe 1 2\nof 1", 'line 3: expected 2 values after the word "of", found 1 (truncated file?'),
    ("1 2\nthe 1 2\nof 1 2\n", "line 3: header declares 1 vectors but the file has 2"),
    ("the 1 2\n\nof 1 2\n", "line 2: blank line between vectors"),
    ("2 0\n", "line 1: header declares dimension 0"),
    ("lonely\n", 'line 1: expected a header "count dim" or a row'),
    ("", "empty file"),
    ("\n \n", "empty file"),
]


def test_invalid_utf8_names_line(tmp_path):
    p = write(tmp_path / "bad.vec", b"3 1\ngood 1\nb\xe9d 2\nok 3\n")
    with pytest.raises(ValueError, match=r"bad\.vec, line 3: word .* is not valid UTF-8"):
        ts.load_vectors(p)
    assert ts.load_vectors(p, limit=1)[0] == ["good"]


def test_error_line_is_exact_in_a_large_parallel_parse(tmp_path):
    n = 40_000
    lines = [f"w{i} {i % 97} 0.5 -1.25 3e-2" for i in range(n)]
    lines[31_337] = "w31337 1 2 3"
    p = write(tmp_path / "big.vec", f"{n} 4\n" + "\n".join(lines) + "\n")
    for threads in (1, 2, 4):
        with pytest.raises(ValueError, match=r"big\.vec, line 31339: expected 4 values"):
            ts.load_vectors(p, num_threads=threads)


def test_parallel_parse_matches_single_thread(tmp_path):
    x = rand(30_000, 8)
    ts.save_vectors(tmp_path / "e.vec", wordlist(30_000), x)
    w1, x1 = ts.load_vectors(tmp_path / "e.vec", num_threads=1)
    w4, x4 = ts.load_vectors(tmp_path / "e.vec", num_threads=4)
    assert w1 == w4 == wordlist(30_000)
    np.testing.assert_array_equal(x1, x)
    np.testing.assert_array_equal(x4, x)


BINARY_ERRORS = [
    (binary([("a", [1, 2]), ("b", [3, 4])], header="3 2\n"), "entry 3 (byte 26): truncated file (end of file)"),
    (binary([("a", [1, 2]), ("b", [3, 4])])[:-3], "entry 2 (byte 15): truncated file"),
    (binary([("a", [1, 2]), ("b", [3, np.nan])]), 'entry 2 (byte 15): value 2 of word "b" is NaN'),
    (binary([("a", [1, 2]), ("b", [np.inf, 4])]), 'entry 2 (byte 15): value 1 of word "b" is inf'),
    (binary([("a", [1, 2]), ("b\xff", [3, 4])]).replace("bÿ".encode(), b"b\xff"), "entry 2 (byte 15): word"),
    (binary([("a", [1, 2])]) + b"trailing", "header declares 1 vectors but the file continues"),
    (b"a 1 2 3\n", 'line 1: expected a header "count dim"'),
    (b"", "empty file"),
]


@pytest.mark.parametrize(
    "name,content,message",
    [("bad.vec", c, m) for c, m in TEXT_ERRORS] + [("bad.bin", c, m) for c, m in BINARY_ERRORS],
)
def test_format_errors_name_file_and_place(tmp_path, name, content, message):
    """Text errors name the line, binary errors the entry and byte offset."""
    p = write(tmp_path / name, content)
    with pytest.raises(ValueError) as info:
        ts.load_vectors(p)
    assert str(info.value).startswith(p), str(info.value)
    assert message in str(info.value)


def test_binary_without_newlines(tmp_path):
    p = write(tmp_path / "e.bin", binary([("a", [1, 2]), ("b", [3, 4])], newline=False))
    words, x = ts.load_vectors(p)
    assert words == ["a", "b"]
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])


def test_npy_errors(tmp_path):
    x = rand(4, 3)
    ts.save_vectors(tmp_path / "e.npy", ["a", "b", "c", "d"], x)
    write(tmp_path / "e.words.txt", "a\nb\nc\n")
    with pytest.raises(ValueError, match=r"e\.words\.txt: has 3 words but .*e\.npy has 4 rows"):
        ts.load_vectors(tmp_path / "e.npy")
    write(tmp_path / "e.words.txt", b"a\nb\n\xffc\nd\n")
    with pytest.raises(ValueError, match=r"e\.words\.txt, line 3: not valid UTF-8"):
        ts.load_vectors(tmp_path / "e.npy")
    write(tmp_path / "e.words.txt", "a\nb\nc\nd\n")
    y = x.copy()
    y[2, 1] = np.nan
    np.save(tmp_path / "e.npy", y)
    with pytest.raises(ValueError, match=r"e\.npy, row 3: the vector of 'c' contains NaN"):
        ts.load_vectors(tmp_path / "e.npy")
    assert ts.load_vectors(tmp_path / "e.npy", limit=2)[0] == ["a", "b"]
    np.save(tmp_path / "e.npy", np.arange(4))
    with pytest.raises(ValueError, match="expected a 2-D floating-point matrix"):
        ts.load_vectors(tmp_path / "e.npy")
    write(tmp_path / "e.npy", b"not numpy")
    with pytest.raises(ValueError, match=r"e\.npy: not a readable \.npy file"):
        ts.load_vectors(tmp_path / "e.npy")


@pytest.mark.parametrize("ext", [".vec", ".bin", ".npy"])
def test_missing_file(tmp_path, ext):
    with pytest.raises(FileNotFoundError) as info:
        ts.load_vectors(tmp_path / f"missing{ext}")
    assert "missing" in str(info.value)


def test_missing_npy_words_file(tmp_path):
    np.save(tmp_path / "e.npy", rand(2, 2))
    with pytest.raises(FileNotFoundError, match=r"e\.words\.txt"):
        ts.load_vectors(tmp_path / "e.npy")


def test_directory_is_an_oserror(tmp_path):
    with pytest.raises(IsADirectoryError):
        ts.load_vectors(tmp_path, format="text")


# ------------------------------------------------------------------ duplicates


@pytest.mark.parametrize("ext", [".vec", ".bin", ".npy"])
def test_duplicates_keep_first(tmp_path, ext):
    words = ["a", "b", "a", "c", "b", "a"]
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    p = tmp_path / f"e{ext}"
    if ext == ".vec":
        write(p, "6 2\n" + "".join(f"{w} {r[0]} {r[1]}\n" for w, r in zip(words, x)))
    elif ext == ".bin":
        write(p, binary(list(zip(words, x))))
    else:
        np.save(p, x)
        write(tmp_path / "e.words.txt", "\n".join(words) + "\n")
    w, y = ts.load_vectors(p)
    assert w == ["a", "b", "c"]
    np.testing.assert_array_equal(y, x[[0, 1, 3]])
    loaded = ts.load_vectors(p)
    w, y = loaded
    dropped = loaded.dropped
    assert loaded.words is w and loaded.vectors is y
    assert dropped == 3 and len(w) == 3
    assert ts.load_vectors(p, limit=2).dropped == 0
    with pytest.raises(ValueError, match="duplicate word 'a'|duplicate word \"a\"") as info:
        ts.load_vectors(p, duplicates="error")
    where = {".vec": "line 4", ".bin": "entry 3", ".npy": "line 3"}[ext]
    assert where in str(info.value)
    with pytest.raises(ValueError, match="duplicates"):
        ts.load_vectors(p, duplicates="last")


# ------------------------------------------------------------------ saving


@pytest.mark.parametrize("ext", [".vec", ".bin", ".npy"])
def test_save_validation(tmp_path, ext):
    p = tmp_path / f"e{ext}"
    x = rand(2, 3)
    with pytest.raises(ValueError, match="duplicate word 'a'|duplicate word \"a\""):
        ts.save_vectors(p, ["a", "a"], x)
    with pytest.raises(ValueError, match="empty"):
        ts.save_vectors(p, ["a", ""], x)
    with pytest.raises(ValueError, match=r"vectors: has 2 rows but there are 3 words"):
        ts.save_vectors(p, ["a", "b", "c"], x)
    y = x.copy()
    y[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"vectors: row 1 .*NaN or inf"):
        ts.save_vectors(p, ["a", "b"], y)
    with pytest.raises(TypeError, match="words: item 1 is int"):
        ts.save_vectors(p, ["a", 3], x)
    with pytest.raises(TypeError, match="words"):
        ts.save_vectors(p, "ab", x)
    with pytest.raises(TypeError, match="vectors: expected a floating-point array"):
        ts.save_vectors(p, ["a", "b"], np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="vectors: expected a 2-D array"):
        ts.save_vectors(p, ["a", "b"], np.ones(2))
    assert not p.exists()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("ext", [".vec", ".bin"])
def test_save_rejects_whitespace_in_words(tmp_path, ext):
    with pytest.raises(ValueError, match=r"words: word 1 \('b c'\)|words: word 1 \(\"b c\"\) contains whitespace"):
        ts.save_vectors(tmp_path / f"e{ext}", ["a", "b c"], rand(2, 2))


def test_npy_words_may_contain_spaces(tmp_path):
    ts.save_vectors(tmp_path / "e.npy", ["new york", "a"], rand(2, 2))
    assert ts.load_vectors(tmp_path / "e.npy")[0] == ["new york", "a"]
    with pytest.raises(ValueError, match="line break"):
        ts.save_vectors(tmp_path / "e.npy", ["a\nb", "c"], rand(2, 2))


def test_binary_rejects_float64_out_of_float32_range(tmp_path):
    x = np.array([[1e300]], dtype=np.float64)
    with pytest.raises(ValueError, match="outside the float32 range"):
        ts.save_vectors(tmp_path / "e.bin", ["a"], x)
    ts.save_vectors(tmp_path / "e.vec", ["a"], x)  # text keeps float64
    assert ts.load_vectors(tmp_path / "e.vec", dtype="float64")[1][0, 0] == 1e300


@pytest.mark.parametrize("ext", [".vec", ".bin", ".npy"])
def test_failed_save_keeps_old_file(tmp_path, ext):
    p = tmp_path / f"e{ext}"
    ts.save_vectors(p, ["a", "b"], rand(2, 3))
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    bad = rand(2, 3)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        ts.save_vectors(p, ["x", "y"], bad)
    assert {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)} == before


@pytest.mark.skipif(not hasattr(os, "setrlimit") and sys.platform == "win32", reason="POSIX only")
@pytest.mark.parametrize("ext", [".vec", ".bin", ".npy"])
def test_io_failure_mid_write_keeps_old_file(tmp_path, ext):
    """A write that fails half-way (file size limit: EFBIG) leaves the old file and no temporary."""
    p = tmp_path / f"e{ext}"
    ts.save_vectors(p, ["a", "b"], rand(2, 3))
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        import numpy as np
        import taskspec_rs as ts
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        x = np.random.default_rng(0).normal(size=(5000, 50)).astype(np.float32)
        try:
            ts.save_vectors({str(p)!r}, [f"w{{i}}" for i in range(5000)], x)
        except OSError as e:
            print("OSError", e.errno)
            sys.exit(0)
        sys.exit("no error")
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.startswith("OSError")
    assert {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)} == before


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        ts.save_vectors(tmp_path / "no" / "e.vec", ["a"], rand(1, 2))


def test_save_replaces_existing_file(tmp_path):
    p = tmp_path / "e.vec"
    ts.save_vectors(p, ["a", "b"], rand(2, 3))
    ts.save_vectors(p, ["c"], rand(1, 2, seed=1))
    assert ts.load_vectors(p)[0] == ["c"]
    assert os.listdir(tmp_path) == ["e.vec"]


def test_argument_validation(tmp_path):
    p = write(tmp_path / "e.vec", "a 1\n")
    with pytest.raises(ValueError, match="dtype"):
        ts.load_vectors(p, dtype="int32")
    with pytest.raises(ValueError, match="num_threads"):
        ts.load_vectors(p, num_threads=0)
    with pytest.raises(TypeError, match="path"):
        ts.load_vectors(3)


# ------------------------------------------------------------------ gensim


def test_matches_gensim(tmp_path):
    gensim_models = pytest.importorskip("gensim.models")
    kv_cls = gensim_models.KeyedVectors
    words, x = wordlist(300), rand(300, 16, seed=3)
    for ext, is_binary in ((".vec", False), (".bin", True)):
        ours = tmp_path / f"ours{ext}"
        ts.save_vectors(ours, words, x)
        kv = kv_cls.load_word2vec_format(str(ours), binary=is_binary)
        assert list(kv.index_to_key) == words
        np.testing.assert_array_equal(kv.vectors, x)
        theirs = tmp_path / f"theirs{ext}"
        kv.save_word2vec_format(str(theirs), binary=is_binary)
        w2, x2 = ts.load_vectors(theirs)
        assert w2 == words
        np.testing.assert_allclose(x2, x, rtol=1e-6, atol=0)
        if is_binary:
            np.testing.assert_array_equal(x2, x)
        w3, x3 = ts.load_vectors(theirs, limit=50)
        kv3 = kv_cls.load_word2vec_format(str(theirs), binary=is_binary, limit=50)
        assert w3 == list(kv3.index_to_key)
        np.testing.assert_array_equal(x3, kv3.vectors)


@pytest.mark.parametrize("ext", [".vec", ".bin"])
def test_gzip_files_load_directly(tmp_path, ext):
    import gzip

    words = [f"w{i}" for i in range(3000)]
    x = rand(3000, 5)
    ts.save_vectors(tmp_path / f"e{ext}", words, x)
    raw = (tmp_path / f"e{ext}").read_bytes()
    packed = gzip.compress(raw)
    (tmp_path / f"e{ext}.gz").write_bytes(packed)
    w, v = ts.load_vectors(tmp_path / f"e{ext}.gz")
    assert w == words
    np.testing.assert_array_equal(v, x)
    w, v = ts.load_vectors(tmp_path / f"e{ext}.gz", limit=10)
    assert w == words[:10]
    np.testing.assert_array_equal(v, x[:10])
    # The compression is recognised from the content, whatever the name.
    (tmp_path / "renamed").write_bytes(packed)
    np.testing.assert_array_equal(ts.load_vectors(tmp_path / "renamed", format=ext[1:])[1], x)
    (tmp_path / f"cut{ext}.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=r"cut.*\.gz.*corrupt or truncated gzip data"):
        ts.load_vectors(tmp_path / f"cut{ext}.gz")


def test_gzip_output_and_gzip_npy_are_refused(tmp_path):
    with pytest.raises(ValueError, match="path: .*gzip output"):
        ts.save_vectors(tmp_path / "e.vec.gz", ["a"], rand(1, 2))
    assert not (tmp_path / "e.vec.gz").exists()
    (tmp_path / "e.npy.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(ValueError, match="path: .*gzip-compressed .npy"):
        ts.load_vectors(tmp_path / "e.npy.gz")


# ------------------------------------------------------------------ untrusted sizes

HOSTILE_FILES = {
    # The two headers of the original report: an allocation of the header's size (abort) and a
    # capacity overflow (PanicException). Both are format errors naming the file and line now.
    "a.vec": (b"1 100000000000000\nw 1\n", 'line 2: expected 100000000000000 values after the word "w", found 1'),
    "b.vec": (b"43 4611686018427387904\nw 1\n", "line 1: header declares dimension 4611686018427387904, too large"),
    "c.vec.gz": (b"1 100000000000000\nw 1\n", "line 2: expected 100000000000000 values"),
    "d.vec": (b"0 18446744073709551615\n", "line 1: header declares dimension 18446744073709551615, too large"),
    "e.bin": (b"1 100000000000000\nw \x00\x00\x80\x3f\n", "entry 1 (byte 18): truncated file"),
    "f.bin.gz": (b"3 4611686018427387904\nw \x00\x00\x80\x3f\n", "line 1: header declares dimension"),
}


def test_hostile_headers_are_value_errors(tmp_path):
    """Run in a child process, so that a regression (an abort) fails this test instead of the whole run."""
    import gzip

    for name, (data, _) in HOSTILE_FILES.items():
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    child = textwrap.dedent(
        f"""
        import sys, taskspec_rs as ts
        for name in {sorted(HOSTILE_FILES)!r}:
            try:
                ts.load_vectors({str(tmp_path)!r} + "/" + name)
                print(name, "LOADED")
            except Exception as e:
                print(name, type(e).__name__, str(e).replace("\\n", " "))
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    for name, (_, message) in HOSTILE_FILES.items():
        assert got[name].startswith("ValueError ") and message in got[name], (name, got[name])


def test_limit_is_bounded(tmp_path):
    p = write(tmp_path / "e.vec", "a 1\n")
    assert ts.load_vectors(p, limit=2**40)[0] == ["a"]
    with pytest.raises(ValueError, match=r"limit: must be None or an int between 0 and 2\*\*40"):
        ts.load_vectors(p, limit=2**40 + 1)
    with pytest.raises(ValueError, match="limit"):
        ts.load_vectors(p, limit=10**30)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_not_read_forever():
    with pytest.raises(ValueError, match="is a device, not a regular file"):
        ts.load_vectors("/dev/zero", format="text")


def _npy_with_header(path, shape, descr="<f4", payload=b"\0" * 16):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    path.write_bytes(buf.getvalue() + payload)
    (path.parent / (path.stem + ".words.txt")).write_text("a\nb\n")
    return path


@pytest.mark.parametrize(
    "shape, descr, message",
    [
        (
            (10**15, 10**15),
            "<f4",
            r"declares shape \(1000000000000000, 1000000000000000\) of float32 .* holds 16 bytes",
        ),
        ((2**62, 4), "<f4", "declares shape"),
        ((10**40, 4), "<f4", "declares shape"),
        ((2, 4), "<f8", r"\(64 bytes\) but the file holds 16 bytes"),
        ((-1, 4), "<f4", "expected a 2-D floating-point matrix"),
        ((2, 2, 2), "<f4", "expected a 2-D floating-point matrix"),
        ((2, 2), "<i4", "expected a 2-D floating-point matrix"),
        ((2, 2), "<c8", "expected a 2-D floating-point matrix"),
    ],
)
def test_npy_header_is_checked_against_the_file_size(tmp_path, shape, descr, message):
    p = _npy_with_header(tmp_path / "e.npy", shape, descr)
    with pytest.raises(ValueError, match=message):
        ts.load_vectors(p)


def test_npy_values_beyond_the_requested_dtype(tmp_path):
    x = np.ones((3, 2))
    x[1, 0] = 1e300
    ts.save_vectors(tmp_path / "e.npy", ["a", "b", "c"], x)
    with pytest.raises(ValueError, match=r"e\.npy, row 2 \('b'\): a value lies beyond the range of float32"):
        ts.load_vectors(tmp_path / "e.npy")
    assert ts.load_vectors(tmp_path / "e.npy", dtype="float64")[1][1, 0] == 1e300
    assert ts.load_vectors(tmp_path / "e.npy", limit=1)[0] == ["a"]


def test_empty_npy_with_words(tmp_path):
    p = tmp_path / "e.npy"
    np.save(p, np.zeros((0, 3), np.float32))
    (tmp_path / "e.words.txt").write_text("")
    words, x = ts.load_vectors(p)
    assert words == [] and x.shape == (0, 3)


@pytest.mark.parametrize("ext", [".vec", ".bin", ".npy"])
def test_float16_overflow_is_an_error_not_inf(tmp_path, ext):
    """Found by the atheris fuzzer: dtype='float16' turned values past 65504 into inf."""
    x = np.array([[1.0, 2.0], [1e5, 3.0]], dtype=np.float32)
    ts.save_vectors(tmp_path / f"e{ext}", ["a", "b"], x)
    with pytest.raises(ValueError, match=r"row 2 \('b'\): a value lies beyond the range of float16"):
        ts.load_vectors(tmp_path / f"e{ext}", dtype="float16")
    assert ts.load_vectors(tmp_path / f"e{ext}", dtype="float16", limit=1)[1].tolist() == [[1.0, 2.0]]
