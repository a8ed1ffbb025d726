"""Orthogonal alignment, CSLS retrieval and BLI evaluation (taskspec_rs.align)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from taskspec_rs.align import (
    align,
    bli_evaluate,
    csls_knn,
    normalize_embeddings,
    procrustes,
    read_dictionary,
)
from taskspec_rs.cli import main

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def random_rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def synthetic_pair(n: int = 400, d: int = 24, noise: float = 0.0, seed: int = 0):
    """Source vectors, a rotated (optionally noisy) copy, words and the rotation."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = random_rotation(d, seed + 1)
    y = (x @ q + noise * rng.standard_normal((n, d))).astype(np.float32)
    return x, y, [f"s{i}" for i in range(n)], [f"t{i}" for i in range(n)], q


# --------------------------------------------------------------------------- procrustes


def test_procrustes_recovers_known_rotation_exactly():
    x, _, _, _, q = synthetic_pair()
    x64 = x.astype(np.float64)
    w = procrustes(x64, x64 @ q)
    assert w.dtype == np.float64
    np.testing.assert_allclose(w, q, atol=1e-10)
    w32 = procrustes(x, (x64 @ q).astype(np.float32))
    assert w32.dtype == np.float32
    np.testing.assert_allclose(w32, q, atol=1e-4)


def test_procrustes_is_orthogonal_on_noisy_data():
    x, y, *_ = synthetic_pair(noise=0.5)
    w = procrustes(x, y).astype(np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(w.shape[0]), atol=1e-5)


def test_procrustes_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        procrustes(np.ones((4, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        procrustes(np.full((4, 3), np.nan), np.ones((4, 3)))
    with pytest.raises(ValueError, match="2-D"):
        procrustes(np.ones(3), np.ones(3))


# --------------------------------------------------------------------------- normalisation


def test_normalize_embeddings_default_steps():
    rng = np.random.default_rng(0)
    v = (rng.standard_normal((100, 8)) + 3.0) * rng.uniform(0.5, 5.0, (100, 1))
    before = v.copy()
    out = normalize_embeddings(v)
    assert out.dtype == np.float32 and out.shape == v.shape
    np.testing.assert_array_equal(v, before)  # input untouched
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    centred = normalize_embeddings(v, steps=("unit", "center"))
    np.testing.assert_allclose(centred.mean(axis=0), 0.0, atol=1e-6)
    unitdim = normalize_embeddings(v, steps=("unitdim",))
    np.testing.assert_allclose(unitdim.std(axis=0), 1.0, atol=1e-4)


def test_normalize_embeddings_zero_row_and_bad_step():
    v = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(normalize_embeddings(v, steps=("unit",)), [[0.6, 0.8], [0.0, 0.0]])
    with pytest.raises(ValueError, match="unknown step 'length'"):
        normalize_embeddings(v, steps=("length",))


# --------------------------------------------------------------------------- CSLS


def brute_csls(q: np.ndarray, b: np.ndarray, csls_k: int, qv: np.ndarray | None = None) -> np.ndarray:
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    qv = qn if qv is None else qv / np.linalg.norm(qv, axis=1, keepdims=True)
    cos = qn.astype(np.float64) @ bn.T.astype(np.float64)
    r_base = np.sort(cos, axis=1)[:, -csls_k:].mean(axis=1)
    cos_bq = bn.astype(np.float64) @ qv.T.astype(np.float64)
    r_query = np.sort(cos_bq, axis=1)[:, -csls_k:].mean(axis=1)
    return 2 * cos - r_base[:, None] - r_query[None, :]


@pytest.mark.parametrize("k", [1, 5, 70])
def test_csls_knn_matches_brute_force(k):
    rng = np.random.default_rng(3)
    q = rng.standard_normal((50, 16)).astype(np.float32)
    b = rng.standard_normal((70, 16)).astype(np.float32)
    ref = brute_csls(q, b, 4)
    scores, idx = csls_knn(q, b, k, csls_k=4)
    assert scores.dtype == np.float32 and idx.dtype == np.int64 and idx.shape == (50, k)
    np.testing.assert_array_equal(idx, np.argsort(-ref, axis=1, kind="stable")[:, :k])
    np.testing.assert_allclose(scores, np.take_along_axis(ref, idx, axis=1), atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_csls_knn_ties_go_to_the_lower_index():
    rng = np.random.default_rng(6)
    b = rng.standard_normal((30, 8)).astype(np.float32)
    b2 = np.concatenate([b, b])  # every base row twice: exact ties
    q = rng.standard_normal((20, 8)).astype(np.float32)
    ref = brute_csls(q, b2, 3)
    scores, idx = csls_knn(q, b2, 4, csls_k=3)
    np.testing.assert_array_equal(idx[:, 0], ref[:, :30].argmax(axis=1))
    np.testing.assert_array_equal(idx[:, 1], idx[:, 0] + 30)
    np.testing.assert_array_equal(idx[:, 3], idx[:, 2] + 30)
    assert np.all(idx[:, 2] < 30)
    np.testing.assert_array_equal(scores[:, 0], scores[:, 1])
    np.testing.assert_allclose(scores, np.take_along_axis(ref, idx, axis=1), atol=1e-5)


def test_csls_knn_query_vocab_and_k1():
    rng = np.random.default_rng(4)
    q = rng.standard_normal((10, 8)).astype(np.float32)
    qv = rng.standard_normal((60, 8)).astype(np.float32)
    b = rng.standard_normal((30, 8)).astype(np.float32)
    ref = brute_csls(q, b, 3, qv)
    scores, idx = csls_knn(q, b, 1, csls_k=3, query_vocab=qv)
    np.testing.assert_array_equal(idx[:, 0], ref.argmax(axis=1))
    np.testing.assert_allclose(scores[:, 0], ref.max(axis=1), atol=1e-5)
    # csls_k larger than a side is clipped to that side's size
    ref_all = brute_csls(q, b, 1000)  # slicing [-1000:] keeps every column, like the clipping
    np.testing.assert_array_equal(csls_knn(q, b, 1, csls_k=1000)[1][:, 0], ref_all.argmax(axis=1))


def test_csls_knn_rejects_zero_rows_and_bad_k():
    b = np.ones((5, 3), dtype=np.float32)
    q = np.ones((2, 3), dtype=np.float32)
    q[1] = 0
    with pytest.raises(ValueError, match="queries: row 1 has zero norm"):
        csls_knn(q, b, 1)
    with pytest.raises(ValueError, match="k: must be between 1 and 5"):
        csls_knn(b, b, 6)


# --------------------------------------------------------------------------- dictionaries


def test_read_dictionary_formats(tmp_path):
    p = tmp_path / "en-xx.txt"
    p.write_bytes("\ufeffthe\tel\nthe la\r\n\n  cat   gato  \n".encode())
    assert read_dictionary(p) == [("the", "el"), ("the", "la"), ("cat", "gato")]


def test_read_dictionary_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dictionary(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("the el\ncat gato\ndog\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt:3: expected two whitespace-separated words"):
        read_dictionary(bad)
    three = tmp_path / "three.txt"
    three.write_text("a b c\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"three\.txt:1: .*got 3 field"):
        read_dictionary(three)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"ok fine\ncaf\xe9 cafe\n")
    with pytest.raises(ValueError, match=r"latin\.txt:2: not valid UTF-8"):
        read_dictionary(latin)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no dictionary pairs"):
        read_dictionary(empty)


# --------------------------------------------------------------------------- BLI


def test_bli_perfect_mapping_and_coverage():
    x, y, sw, tw, q = synthetic_pair(n=300, d=16)
    pairs = [(f"s{i}", f"t{i}") for i in range(100)]
    pairs += [("s0", "t1")]  # a second gold translation: still one query
    pairs += [("unknown", "t5"), ("s200", "unknown")]  # not evaluable
    res = bli_evaluate(x, y, sw, tw, pairs, W=q)
    assert res["n_pairs"] == 103
    assert res["n_source_words"] == 102 and res["n_found"] == 100
    assert res["coverage"] == pytest.approx(100 / 102)
    for m in ("nn", "csls"):
        assert res[m] == {"p@1": 1.0, "p@5": 1.0}
    unmapped = bli_evaluate(x, y, sw, tw, pairs, methods=("nn",), ks=(1,))
    assert set(unmapped) >= {"nn"} and "csls" not in unmapped
    assert unmapped["nn"]["p@1"] < 0.2


def test_bli_no_query_found_and_bad_args():
    x, y, sw, tw, _ = synthetic_pair(n=20, d=4)
    res = bli_evaluate(x, y, sw, tw, [("zzz", "t1")])
    assert res["n_found"] == 0 and np.isnan(res["nn"]["p@1"])
    with pytest.raises(ValueError, match="unknown method 'cos'"):
        bli_evaluate(x, y, sw, tw, [("s1", "t1")], methods=("cos",))
    with pytest.raises(ValueError, match="W: expected shape"):
        bli_evaluate(x, y, sw, tw, [("s1", "t1")], W=np.eye(3))
    with pytest.raises(ValueError, match="src_words: has 19 words"):
        bli_evaluate(x, y, sw[:-1], tw, [("s1", "t1")])


# --------------------------------------------------------------------------- align


def test_align_supervised_recovers_rotation():
    x, y, sw, tw, q = synthetic_pair(n=400, d=24, noise=0.01)
    seed = [(f"s{i}", f"t{i}") for i in range(60)] + [("oov", "t1")]
    w, rep = align(x, y, sw, tw, dictionary=seed, iterations=0)
    assert w.dtype == np.float32 and w.shape == (24, 24)
    np.testing.assert_allclose(w, q, atol=0.02)
    assert rep.seed_pairs == 60 and rep.seed_missing == 1 and len(rep.iterations) == 1


def test_align_self_learning_extends_small_seed():
    x, y, sw, tw, q = synthetic_pair(n=600, d=24, noise=0.05, seed=5)
    seed = [(f"s{i}", f"t{i}") for i in range(16)]  # fewer pairs than dimensions
    test = [(f"s{i}", f"t{i}") for i in range(100, 600)]
    sup = align(x, y, sw, tw, dictionary=seed, iterations=0).W
    w, rep = align(x, y, sw, tw, dictionary=seed, iterations=5, csls_k=5)
    p_sup = bli_evaluate(x, y, sw, tw, test, W=sup)["csls"]["p@1"]
    p_self = bli_evaluate(x, y, sw, tw, test, W=w)["csls"]["p@1"]
    assert p_self == 1.0 and p_self > p_sup
    assert rep.iterations[-1]["pairs"] > 500 and rep.converged


def brute_mutual_csls(xw: np.ndarray, z: np.ndarray, csls_k: int) -> set[tuple[int, int]]:
    """Pairs that are each other's best CSLS match (dense float64 matrix; ties to the lower index)."""
    s = brute_csls(xw, z, csls_k)
    fwd, bwd = s.argmax(axis=1), s.argmax(axis=0)
    return {(i, int(j)) for i, j in enumerate(fwd) if bwd[j] == i}


def test_align_self_learning_step_matches_brute_force():
    x, y, sw, tw, _ = synthetic_pair(n=300, d=16, noise=1.0, seed=7)
    seed = [(f"s{i}", f"t{i}") for i in range(40)]
    w0 = align(x, y, sw, tw, dictionary=seed, iterations=0).W
    w1, rep = align(x, y, sw, tw, dictionary=seed, iterations=1, csls_k=5, max_vocab=250)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    mutual = brute_mutual_csls(xn[:250] @ w0, yn[:250], 5)
    assert 100 < len(mutual) < 250 and sum(i != j for i, j in mutual) > 20  # noisy: some wrong pairs induced
    pairs = sorted(mutual | {(i, i) for i in range(40)})
    assert rep.iterations[1]["induced"] == len(mutual)
    assert rep.iterations[1]["pairs"] == len(pairs)
    s_idx, t_idx = np.array(pairs).T
    np.testing.assert_allclose(w1, procrustes(xn[s_idx], yn[t_idx]), atol=1e-5)


def test_align_identical_seed_and_errors():
    x, y, _, _, q = synthetic_pair(n=200, d=8, noise=0.01)
    words = [f"w{i}" for i in range(200)]
    w = align(x, y, words, words, identical_seed=True, iterations=1).W
    np.testing.assert_allclose(w, q, atol=0.02)
    with pytest.raises(ValueError, match="seed dictionary is required"):
        align(x, y, words, words)
    with pytest.raises(ValueError, match="none of the 1 seed pairs"):
        align(x, y, words, words, dictionary=[("a", "b")])
    with pytest.raises(ValueError, match="same dimension"):
        align(x, y[:, :4], words, words, dictionary=[("w1", "w1")])


# --------------------------------------------------------------------------- CLI


def write_vec(path: Path, words: list[str], vecs: np.ndarray) -> None:
    lines = [f"{len(words)} {vecs.shape[1]}"]
    lines += [w + " " + " ".join(f"{v:.6f}" for v in row) for w, row in zip(words, vecs)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_cli_align_vec_and_npz(tmp_path, capsys):
    x, y, sw, tw, q = synthetic_pair(n=200, d=12, noise=0.01)
    write_vec(tmp_path / "src.vec", sw, x)
    write_vec(tmp_path / "tgt.vec", tw, y)
    (tmp_path / "train.txt").write_text("".join(f"s{i} t{i}\n" for i in range(40)), encoding="utf-8")
    (tmp_path / "test.txt").write_text("".join(f"s{i} t{i}\n" for i in range(100, 200)), encoding="utf-8")
    out = tmp_path / "W.npy"
    argv = ["align", str(tmp_path / "src.vec"), str(tmp_path / "tgt.vec"), "--dict", str(tmp_path / "train.txt")]
    assert main([*argv, "--test", str(tmp_path / "test.txt"), "--iterations", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "source: 200 words x 12; target: 200 words x 12" in captured.out
    assert "BLI before alignment: nn p@1=" in captured.out
    assert "BLI after alignment:  nn p@1=1.000" in captured.out
    assert "(100/100 source words found)" in captured.out
    assert f"wrote {out}" in captured.out
    assert "align: seed: 40 pairs in vocabulary, 0 out of vocabulary" in captured.err  # progress on stderr
    np.testing.assert_allclose(np.load(out), q, atol=0.02)

    npz = tmp_path / "vecs.npz"
    np.savez(npz, en__words=np.array(sw), en__vecs=x.astype(np.float16), xx__words=np.array(tw), xx__vecs=y)
    out2 = tmp_path / "sub" / "W2.npy"
    args = ["align", str(npz), str(npz), "--src-lang", "en", "--tgt-lang", "xx", "--dict", str(tmp_path / "train.txt")]
    assert main([*args, "--quiet", "--out", str(out2)]) == 0
    assert capsys.readouterr() == ("", "")
    np.testing.assert_allclose(np.load(out2), q, atol=0.02)


def test_cli_align_user_errors(tmp_path, capsys):
    x, y, sw, tw, _ = synthetic_pair(n=20, d=4)
    write_vec(tmp_path / "src.vec", sw, x)
    write_vec(tmp_path / "narrow.vec", tw, y[:, :3])
    (tmp_path / "bad.txt").write_text("s1 t1\ns2\n", encoding="utf-8")
    (tmp_path / "ok.txt").write_text("s1 t1\n", encoding="utf-8")
    np.savez(tmp_path / "v.npz", en__words=np.array(sw), en__vecs=x)
    src, ok, npz = str(tmp_path / "src.vec"), str(tmp_path / "ok.txt"), str(tmp_path / "v.npz")
    cases = [
        ([src, str(tmp_path / "nope.vec"), "--dict", str(tmp_path / "bad.txt")], "bad.txt:2"),
        ([src, src, "--dict", str(tmp_path / "missing.txt")], "missing.txt: no such file"),
        ([src, str(tmp_path / "nope.vec"), "--identical-seed"], f"file not found: {tmp_path / 'nope.vec'}"),
        ([src, src], "--dict is required (or --identical-seed)"),
        ([src, src, "--dict", ok, "--iterations", "-1"], "--iterations: must be >= 0, got -1"),
        ([src, src, "--dict", ok, "--max-vocab", "0"], "--max-vocab: must be >= 1, got 0"),
        ([src, src, "--dict", ok, "--csls-k", "0"], "--csls-k: must be >= 1, got 0"),
        ([src, src, "--dict", ok, "--threads", "0"], "--threads: must be >= 1, got 0"),
        ([src, str(tmp_path / "narrow.vec"), "--dict", ok], "dimensions differ: source 4, target 3"),
        ([npz, src, "--identical-seed"], "an .npz needs --src-lang"),
        ([npz, src, "--src-lang", "fr", "--identical-seed"], "no embeddings for key 'fr' (available: en)"),
        ([src, src, "--dict", ok, "--bogus"], "unrecognized arguments: --bogus"),
    ]
    for argv, message in cases:
        assert main(["align", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("taskspec-rs: error: ") and message in err and "\n" not in err, (argv, err)


def test_cli_align_seed_out_of_vocabulary(tmp_path, capsys):
    x, y, sw, tw, _ = synthetic_pair(n=20, d=4)
    write_vec(tmp_path / "src.vec", sw, x)
    write_vec(tmp_path / "tgt.vec", tw, y)
    (tmp_path / "d.txt").write_text("t1 s1\n", encoding="utf-8")  # wrong language order
    argv = ["align", str(tmp_path / "src.vec"), str(tmp_path / "tgt.vec"), "--dict", str(tmp_path / "d.txt")]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "taskspec-rs: error: dictionary: none of the 1 seed pairs has both words in the vocabularies "
        "(wrong language order or tokenisation?)"
    )


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (DATA / "vectors" / "use_m3_512d_fp16.npz").is_file(), reason=f"shared data absent ({DATA})")
def test_rotation_recovery_on_shared_vectors():
    """Rotate Spanish: BLI collapses; Procrustes + self-learning restores it.

    Vocabularies are cut to the words of the full en-es MUSE dictionary to keep
    the test quick; the same cut is used for every measurement.
    """
    npz = np.load(DATA / "vectors" / "use_m3_512d_fp16.npz", allow_pickle=False)
    dicts = DATA / "muse_dicts"
    sw, sv = npz["en__words"].tolist(), npz["en__vecs"]
    tw, tv = npz["es__words"].tolist(), npz["es__vecs"]
    full = read_dictionary(dicts / "en-es.txt")
    s_in, t_in = set(sw), set(tw)
    keep_s = sorted({s for s, t in full if s in s_in and t in t_in})
    keep_t = sorted({t for s, t in full if s in s_in and t in t_in})
    si, ti = {w: i for i, w in enumerate(sw)}, {w: i for i, w in enumerate(tw)}
    sv = sv[[si[w] for w in keep_s]].astype(np.float32)
    tv = tv[[ti[w] for w in keep_t]].astype(np.float32)
    sw, tw = keep_s, keep_t
    train = read_dictionary(dicts / "en-es.0-5000.approx.txt")
    test = read_dictionary(dicts / "en-es.5000-6500.approx.txt")

    rot = random_rotation(tv.shape[1], 0).astype(np.float32)
    tv_rot = tv @ rot
    base = bli_evaluate(sv, tv, sw, tw, test)
    rotated = bli_evaluate(sv, tv_rot, sw, tw, test)
    w = align(sv, tv_rot, sw, tw, dictionary=train, iterations=2).W
    aligned = bli_evaluate(sv, tv_rot, sw, tw, test, W=w)
    assert base["n_found"] > 400
    assert base["csls"]["p@1"] > 0.5
    for m in ("nn", "csls"):
        assert rotated[m]["p@1"] < 0.05
        assert abs(aligned[m]["p@1"] - base[m]["p@1"]) <= 0.03, (m, base, aligned)
