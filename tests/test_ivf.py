"""IVF backend: exactness at full probe, recall at the defaults, persistence, CSLS/exclusion, LLM, errors."""

from __future__ import annotations

import numpy as np
import pytest
import taskspec_rs as ts
from taskspec_rs import IvfIndex
from taskspec_rs.ivf import default_nlist

from .test_engine import XS, X, Y


def embedding_like(n: int, d: int = 160, *, centres: int = 200, seed: int = 0) -> np.ndarray:
    """Clusters in a low-dimensional latent space mapped to ``d`` dimensions (as bench/datagen.py, smaller)."""
    space = np.random.default_rng(1000)
    proj = space.standard_normal((16, d)) / 4.0
    c = space.standard_normal((centres, 16))
    rng = np.random.default_rng(seed)
    z = c[rng.integers(0, centres, n)] + 0.8 * rng.standard_normal((n, 16))
    return (z @ proj + 0.05 * rng.standard_normal((n, d))).astype(np.float32)


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


BASE = embedding_like(4000, seed=1)
QUERIES = embedding_like(3000, seed=2)


@pytest.fixture(scope="module")
def index() -> IvfIndex:
    return IvfIndex(BASE, num_threads=2)


def test_probing_every_row_gives_the_exact_answer():
    idx = IvfIndex(X, nlist=24, spill=2)
    for k in (1, 10):
        exact = ts.knn(Y, X, k)
        # nprobe = nlist - 1 misses one list per query, but with spill=2 every row is in a probed list:
        # the lists are searched and merged, and the answer is still the exact one, scores included.
        for nprobe in (idx.nlist - 1, idx.nlist):
            sims, nb = idx.search(Y, k, nprobe=nprobe)
            np.testing.assert_array_equal(nb, exact[1])
            np.testing.assert_array_equal(sims, exact[0])
            assert sims.dtype == np.float32 and nb.dtype == np.int64


def test_default_recall_on_embedding_like_data(index):
    assert index.nlist == default_nlist(len(BASE)) > 1 and index.nprobe is None
    exact = ts.knn(QUERIES, BASE, 10)[1]
    sims, nb = index.search(QUERIES, 10)
    assert recall(nb, exact) >= 0.95
    chosen = index.last_nprobe
    assert index.recall_curve[chosen - 1] >= 0.95 and (chosen == 1 or index.recall_curve[chosen - 2] < 0.96)
    assert chosen < index.nlist // 4  # approximate: far fewer lists than all of them were searched
    assert np.all(np.diff(sims, axis=1) <= 0)
    # At most as many queries as the calibration sample: they are searched exactly.
    np.testing.assert_array_equal(index.search(QUERIES[:1000], 10)[1], exact[:1000])
    assert index.last_nprobe == index.nlist
    # The scores are the true cosines of the rows returned.
    bn = BASE / np.linalg.norm(BASE, axis=1, keepdims=True)
    qn = QUERIES / np.linalg.norm(QUERIES, axis=1, keepdims=True)
    np.testing.assert_allclose(sims, np.einsum("nd,nkd->nk", qn, bn[nb]), atol=1e-5)


def test_recall_grows_with_nprobe(index):
    exact = ts.knn(QUERIES, BASE, 10)[1]
    curve = [recall(index.search(QUERIES, 10, nprobe=p)[1], exact) for p in (1, 2, 4, 8, index.nlist)]
    assert curve == sorted(curve) and curve[0] < 0.95 and curve[-1] == 1.0
    # The lists are shared among worker threads: the answer does not depend on how many.
    one, two = (index.search(QUERIES, 10, nprobe=3, num_threads=t) for t in (1, 2))
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[0], two[0])
    # The calibration predicts the recall of each nprobe (the same quantity, on a sample of the queries).
    index.search(QUERIES, 10)
    assert abs(index.recall_curve[0] - curve[0]) < 0.05 and abs(index.recall_curve[1] - curve[1]) < 0.05


def test_save_load_round_trip_and_refusals(index, tmp_path):
    path = tmp_path / "en.ivf.npz"
    index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["en.ivf.npz"]  # written atomically, no temporary left
    loaded = IvfIndex.load(path, BASE)
    assert (loaded.nlist, loaded.spill, loaded.nprobe, loaded.target_recall) == (
        index.nlist,
        index.spill,
        index.nprobe,
        index.target_recall,
    )
    for nprobe in (None, 3):
        expected = index.search(QUERIES, 5, nprobe=nprobe)[1]
        np.testing.assert_array_equal(loaded.search(QUERIES, 5, nprobe=nprobe)[1], expected)
    other = BASE.copy()
    other[len(other) // 2] += 1.0
    with pytest.raises(ValueError, match="base: is not the vectors the index in .* was built over"):
        IvfIndex.load(path, other)
    with pytest.raises(ValueError, match="base: is not the vectors"):
        IvfIndex.load(path, BASE[:-1])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="path: .*bad.npz is not a readable IVF index file"):
        IvfIndex.load(bad, BASE)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["perm"] = arrays["perm"][::-1].copy()
    arrays["perm"][0] = len(BASE) + 5
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="path: .* is a corrupt IVF index file \\(row numbers out of range\\)"):
        IvfIndex.load(bad, BASE)
    with pytest.raises(FileNotFoundError):
        IvfIndex.load(tmp_path / "missing.npz", BASE)


def test_csls_and_exclusions_through_knn(index):
    full = {"nlist": 16, "nprobe": 15, "spill": 2}  # every row is in a probed list: the exact answer
    exact = ts.knn(QUERIES, BASE, 5, metric="csls")
    np.testing.assert_array_equal(ts.knn(QUERIES, BASE, 5, metric="csls", backend="ivf", index=full)[1], exact[1])
    approx = ts.knn(QUERIES, BASE, 5, metric="csls", backend="ivf", index=index)[1]
    assert recall(approx, exact[1]) >= 0.95
    assert not np.array_equal(approx, ts.knn(QUERIES, BASE, 5, backend="ivf", index=index)[1])  # the bias acts
    nb = ts.knn(BASE, BASE, 5, backend="ivf", index=index, exclude_self=True)[1]
    assert not (nb == np.arange(len(BASE))[:, None]).any()
    assert recall(nb, ts.knn(BASE, BASE, 5, exclude_self=True)[1]) >= 0.95
    excl = ts.knn(QUERIES, BASE, 1)[1][:, 0]
    nb = ts.knn(QUERIES, BASE, 4, backend="ivf", index=index, exclude=excl)[1]
    assert not (nb == excl[:, None]).any()


def test_llm_projector_builds_the_index_once_and_reuses_it(index):
    for k in (1, 5):
        proj = ts.LLMProjector(k, backend="ivf", index=index).fit(BASE, _spec(BASE))
        assert proj.index_ is index
        res = proj.project(QUERIES)
        np.testing.assert_allclose(res.weights, ts.llm_weights(BASE, QUERIES, res.neighbors), atol=1e-6)
    every_row = {"nlist": 12, "nprobe": 11, "spill": 2}
    built = ts.LLMProjector(4, backend="ivf", index=every_row).fit(X, XS)
    assert isinstance(built.index_, IvfIndex) and built.index_.nlist == 12
    # Probing every list, the IVF projection is the exact one.
    np.testing.assert_allclose(built.transform(Y), ts.llm_project(X, XS, Y, 4), atol=1e-5)
    spec = ts.llm_project(X, XS, Y, 4, backend="ivf", metric="csls", index=every_row)
    np.testing.assert_allclose(spec, ts.llm_project(X, XS, Y, 4, metric="csls"), atol=1e-5)
    tuned = ts.LLMProjector(4, backend="ivf").fit(X, XS).project(X, exclude_self=True).neighbors
    assert not (tuned == np.arange(len(X))[:, None]).any()


def _spec(x: np.ndarray) -> np.ndarray:
    return np.random.default_rng(5).normal(size=(len(x), 6)).astype(np.float32)


def test_rows_with_too_few_candidates_still_get_k_valid_neighbours():
    # 400 lists of about 4 rows, each row in one: most queries' lists hold fewer than k=10 rows.
    idx = IvfIndex(X, nlist=400, spill=1)
    exact = ts.knn(Y, X, 10)
    short = idx.list_sizes[ts.knn(Y, idx.centroids, 1)[1][:, 0]] < 10
    assert short.mean() > 0.5
    for nprobe in (1, 2):
        sims, nb = idx.search(Y, 10, nprobe=nprobe)
        assert (nb >= 0).all() and (nb < len(X)).all() and np.isfinite(sims).all()
        assert all(len(set(row)) == 10 for row in nb)
        if nprobe == 1:  # those rows were searched exactly
            np.testing.assert_array_equal(nb[short], exact[1][short])


def test_duplicated_rows_are_returned_once():
    base = np.vstack([BASE[:1000], BASE[:1000]])  # every vector twice; spill puts rows in several lists
    idx = IvfIndex(base, nlist=40, spill=3)
    sims, nb = idx.search(QUERIES[:200], 6, nprobe=5)
    assert all(len(set(row)) == 6 for row in nb)
    exact = ts.knn(QUERIES[:200], base, 6)
    # Equal scores go to the lower index, as in the exact search (nprobe = 38 of 40 still covers every row).
    np.testing.assert_array_equal(idx.search(QUERIES[:200], 6, nprobe=38)[1], exact[1])
    assert recall(nb, exact[1]) >= 0.9


def test_small_bases_search_exactly_and_progress_is_reported():
    small = IvfIndex(X)
    assert small.nlist == 1 and len(X) < 2048
    np.testing.assert_array_equal(small.search(Y, 7)[1], ts.knn(Y, X, 7)[1])
    seen = []
    idx = IvfIndex(BASE, nlist=32, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(BASE), len(BASE))
    seen.clear()
    idx.search(QUERIES, 3, nprobe=4, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(QUERIES), len(QUERIES)) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_bad_arguments_name_the_argument(index):
    with pytest.raises(ValueError, match="nlist: must be a number of lists between 1 and 4000"):
        IvfIndex(BASE, nlist=0)
    with pytest.raises(ValueError, match="nlist: must be .* between 1 and 4000, got 4001"):
        IvfIndex(BASE, nlist=4001)
    with pytest.raises(ValueError, match="nprobe: must be .* between 1 and 10"):
        IvfIndex(BASE, nlist=10, nprobe=11)
    with pytest.raises(ValueError, match="spill: must be .* between 1 and 10"):
        IvfIndex(BASE, nlist=10, spill=0)
    with pytest.raises(ValueError, match="target_recall: must be a number in \\(0, 1\\]"):
        IvfIndex(BASE, target_recall=1.5)
    with pytest.raises(TypeError, match="nlist: expected a number of lists"):
        IvfIndex(BASE, nlist=2.5)
    with pytest.raises(ValueError, match=f"nprobe: must be .* between 1 and {index.nlist}"):
        index.search(QUERIES, 3, nprobe=0)
    with pytest.raises(ValueError, match="nprobe: must be"):
        index.nprobe = index.nlist + 1
    with pytest.raises(ValueError, match="queries: has dimension 5 but the index has 160"):
        index.search(QUERIES[:, :5], 3)
    with pytest.raises(ValueError, match="k: must be between 1 and 4000"):
        index.search(QUERIES, 4001)
    with pytest.raises(ValueError, match="bias: expected 4000 finite values"):
        index.search(QUERIES, 3, bias=np.zeros(3))
    with pytest.raises(ValueError, match="index: unknown IVF parameter\\(s\\) \\['ef'\\]"):
        ts.knn(QUERIES, BASE, 3, backend="ivf", index={"ef": 10})
    with pytest.raises(ValueError, match="index: IVF parameters were given but the backend is not 'ivf'"):
        ts.knn(QUERIES, BASE, 3, index={"nprobe": 4})
    with pytest.raises(ValueError, match="index: IVF parameters were given .* pass backend='ivf'"):
        ts.LLMProjector(3, index=index)
    with pytest.raises(TypeError, match="index: expected None, a dict of M/ef_construction/ef or an HnswIndex"):
        ts.knn(QUERIES, BASE, 3, backend="hnsw", index=index)
    with pytest.raises(TypeError, match="index: expected None, a dict of nlist/nprobe/spill/target_recall/seed or"):
        ts.knn(QUERIES, BASE, 3, backend="ivf", index=[4])
    with pytest.raises(ValueError, match="index: the IVF index holds 4000 x 160 vectors but x_gen/base is 3999"):
        ts.knn(QUERIES, BASE[:-1], 3, backend="ivf", index=index)
    with pytest.raises(ValueError, match="index: the IVF index was built over other vectors than x_gen/base"):
        ts.knn(QUERIES, BASE[::-1], 3, backend="ivf", index=index)
    zero = BASE.copy()
    zero[7] = 0
    with pytest.raises(ValueError, match="base: row 7 has zero norm"):
        IvfIndex(zero)
