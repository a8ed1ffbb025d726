"""Loading a fastText-style .vec file: taskspec_rs.load_vectors vs gensim.

Both read the same generated ``N x 300`` text file (``N`` = 200k, 500k with
``TASKSPEC_BENCH_LARGE=1``; values printed with 4 decimals like the
published fastText vectors), written once per session with
``save_vectors``. The file stays in the page cache, so both loaders are
measured on parsing, not on the disk. ``test_load_speedup`` checks that the
Rust loader is at least 10x faster and records the ratio.

Run::

    python -m pytest bench/test_bench_io.py -q -s --benchmark-group-by=group
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import taskspec_rs as ts
from conftest import DIM, LARGE, THREADS, clustered, record

N = 500_000 if LARGE else 200_000
ROUNDS_OURS = 3
ROUNDS_GENSIM = 1
MIN_SPEEDUP = 10.0

_seconds: dict[str, float] = {}


@pytest.fixture(scope="session")
def vec_file(tmp_path_factory):
    """A ``N x DIM`` .vec file with a header, 4-decimal values and some non-ASCII words."""
    words = [f"w{i}" if i % 10 else f"wörd{i}" for i in range(N)]
    x = np.round(clustered(N, DIM, seed=7), 4)
    path = tmp_path_factory.mktemp("io") / f"vectors_{N}x{DIM}.vec"
    t = time.perf_counter()
    ts.save_vectors(path, words, x, num_threads=THREADS)
    print(f"\nwrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
    return path, words, x


def _run(benchmark, name, fn, rounds):
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    t = benchmark.stats.stats.min
    _seconds[name] = t
    benchmark.extra_info["rows_per_second"] = N / t
    record("load_vectors", {"impl": name, "n": N, "d": DIM, "threads": THREADS, "seconds": t})
    return result


@pytest.mark.benchmark(group="load_vectors")
@pytest.mark.parametrize("gz", [False, True], ids=["vec", "vec.gz"])
def test_load_taskspec(benchmark, vec_file, gz):
    """With ``gz``: the same file gzip-compressed (level 6, as fastText's .vec.gz; decompression is single-threaded)."""
    path, words, x = vec_file
    name = "taskspec_rs.load_vectors"
    if gz:
        import gzip

        packed = path.with_suffix(".vec.gz")
        if not packed.exists():
            packed.write_bytes(gzip.compress(path.read_bytes(), compresslevel=6))
        path, name = packed, name + " (.vec.gz)"
    w, v = _run(benchmark, name, lambda: ts.load_vectors(path, num_threads=THREADS), ROUNDS_OURS)
    assert w == words
    np.testing.assert_array_equal(v, x)


@pytest.mark.benchmark(group="load_vectors")
def test_load_gensim(benchmark, vec_file):
    models = pytest.importorskip("gensim.models")
    path, words, x = vec_file
    kv = _run(
        benchmark,
        "gensim KeyedVectors.load_word2vec_format",
        lambda: models.KeyedVectors.load_word2vec_format(str(path), binary=False),
        ROUNDS_GENSIM,
    )
    assert kv.index_to_key[:3] == words[:3] and kv.vectors.shape == (N, DIM)
    np.testing.assert_array_equal(kv.vectors[:1000], x[:1000])


@pytest.mark.benchmark(group="load_vectors")
def test_load_taskspec_limit(benchmark, vec_file):
    """``limit`` reads only the head: 10% of the rows cost about 10% of the time."""
    path, words, _ = vec_file
    w, _ = _run(
        benchmark,
        "taskspec_rs.load_vectors(limit=N/10)",
        lambda: ts.load_vectors(path, limit=N // 10, num_threads=THREADS),
        ROUNDS_OURS,
    )
    assert w == words[: N // 10]


def test_load_speedup():
    """Plain check after the timed runs: Rust loader >= 10x gensim on the same file."""
    ours = _seconds.get("taskspec_rs.load_vectors")
    theirs = _seconds.get("gensim KeyedVectors.load_word2vec_format")
    if ours is None or theirs is None:
        pytest.skip("needs test_load_taskspec and test_load_gensim in the same run")
    ratio = theirs / ours
    print(
        f"\nload_vectors {N}x{DIM} on {THREADS} threads: taskspec_rs {ours:.3f} s, "
        f"gensim {theirs:.3f} s, speed-up {ratio:.1f}x"
    )
    record("load_vectors", {"impl": "speedup vs gensim", "n": N, "d": DIM, "threads": THREADS, "ratio": ratio})
    assert ratio >= MIN_SPEEDUP, f"load_vectors is only {ratio:.1f}x faster than gensim"
