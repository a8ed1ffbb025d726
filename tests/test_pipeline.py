"""Unit tests of data loading, configuration, model, projection and a small real experiment."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from taskspec_rs.config import ALL_METHODS, DEFAULT_METHODS, TaskspecError, TrainOptions, load_config, parse_config
from taskspec_rs.data import (
    DataOptions,
    Embeddings,
    absa_sentence_label,
    encode,
    load_dataset,
    load_embeddings,
    tokenize,
)
from taskspec_rs.model import TaskModel
from taskspec_rs.neighbors import hub_scores, knn
from taskspec_rs.project import llm_from_neighbors, llm_project
from taskspec_rs.train import project_model, train_classifier

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# --------------------------------------------------------------------------- tokenisation


def test_regex_tokenizer_lowercases_and_keeps_apostrophes():
    assert tokenize("Don't STOP, l’homme!  42x") == ["don't", "stop", "l’homme", "42x"]
    assert tokenize("") == []


def test_janome_tokenizer_segments_japanese_and_keeps_case():
    tokens = tokenize("私はiPhoneを買った。", tokenizer="janome")
    assert tokens[:2] == ["私", "は"]
    assert "iPhone" in tokens
    assert all(t.strip() for t in tokens)


def test_unknown_tokenizer_is_user_error():
    with pytest.raises(TaskspecError, match="unknown tokenizer"):
        tokenize("x", tokenizer="spacy")


def test_encode_drops_unknown_words_and_pads():
    ids = encode(["a b zz", "zz", "b"], {"a": 0, "b": 1}, tokenizer="regex")
    assert ids.tolist() == [[1, 2], [0, 0], [2, 0]]


# --------------------------------------------------------------------------- datasets


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_loader_reads_and_skips_blank_and_empty_text(tmp_path):
    p = _write(
        tmp_path / "d.jsonl",
        '{"text": "hello", "label": "a"}\n\n{"text": "  ", "label": "b"}\n{"text": "x", "label": 3}\n',
    )
    ds = load_dataset(p)
    assert ds.texts == ["hello", "x"] and ds.labels == ["a", "3"]


@pytest.mark.parametrize(
    "body, message",
    [
        ('{"text": "ok", "label": "a"}\n{"text": "broken"\n', ":2: malformed JSON"),
        ('{"text": "ok", "label": "a"}\n{"text": "no label"}\n', ":2: missing key 'label'"),
        ("[1, 2]\n", ":1: expected a JSON object"),
        ('{"text": 5, "label": "a"}\n', ":1: 'text' must be a string"),
    ],
)
def test_jsonl_loader_reports_file_and_line(tmp_path, body, message):
    p = _write(tmp_path / "bad.jsonl", body)
    with pytest.raises(TaskspecError) as err:
        load_dataset(p)
    assert str(p) + message in str(err.value)


def test_tsv_loader_uses_named_columns_and_reports_bad_lines(tmp_path):
    opts = DataOptions(text_column="text", label_column="category")
    p = _write(tmp_path / "d.tsv", "index_id\tcategory\ttext\n1\tsports\tA goal!\n2\ttravel\tBy train\n")
    ds = load_dataset(p, options=opts)
    assert ds.labels == ["sports", "travel"] and ds.texts[0] == "A goal!"
    bad = _write(tmp_path / "bad.tsv", "index_id\tcategory\ttext\n1\tsports\tok\n2\tonly two\n")
    with pytest.raises(TaskspecError, match=r"bad\.tsv:3: expected 3 tab-separated fields, got 2"):
        load_dataset(bad, options=opts)
    with pytest.raises(TaskspecError, match=r"d\.tsv:1: header has no column 'label'"):
        load_dataset(p)


def test_dataset_errors_for_missing_empty_and_unknown_format(tmp_path):
    with pytest.raises(TaskspecError, match="file not found"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(TaskspecError, match="dataset is empty"):
        load_dataset(_write(tmp_path / "e.jsonl", "\n"))
    with pytest.raises(TaskspecError, match="cannot infer the data format"):
        load_dataset(_write(tmp_path / "d.csv", "a,b\n"))


@pytest.mark.parametrize(
    "polarities, three, binary",
    [
        (["positive"], "positive", "positive"),
        (["negative", "negative"], "negative", "negative"),
        (["neutral"], "neutral", None),
        (["positive", "negative"], None, None),
        (["positive", "neutral"], None, None),
        (["conflict"], None, None),
        ([], None, None),
    ],
)
def test_absa_sentence_label_rule(polarities, three, binary):
    assert absa_sentence_label(polarities, mode="three") == three
    assert absa_sentence_label(polarities, mode="binary") == binary


ABSA_XML = """<?xml version='1.0' encoding='UTF-8'?>
<Reviews><Review><sentences>
<sentence id="1"><text>Great food .</text><Opinions>
  <Opinion target="food" polarity="positive"/><Opinion target="x" polarity="positive"/></Opinions></sentence>
<sentence id="2"><text>Bad service but nice view .</text><Opinions>
  <Opinion polarity="negative"/><Opinion polarity="positive"/></Opinions></sentence>
<sentence id="3"><text>We went on Tuesday .</text></sentence>
<sentence id="4"><text>It was ok .</text><Opinions><Opinion polarity="neutral"/></Opinions></sentence>
<sentence id="5"><text></text><Opinions><Opinion polarity="negative"/></Opinions></sentence>
<sentence id="6"><text>Awful .</text><Opinions><Opinion polarity="negative"/></Opinions></sentence>
</sentences></Review></Reviews>
"""


def test_absa_xml_loader_applies_label_rule(tmp_path):
    p = _write(tmp_path / "r.xml", ABSA_XML)
    three = load_dataset(p)
    assert three.texts == ["Great food .", "It was ok .", "Awful ."]
    assert three.labels == ["positive", "neutral", "negative"]
    binary = load_dataset(p, options=DataOptions(absa_labels="binary"))
    assert binary.labels == ["positive", "negative"]


def test_absa_xml_loader_reports_parse_error_line(tmp_path):
    p = _write(tmp_path / "bad.xml", "<Reviews>\n<sentence>\n<text>x</sentence>\n</Reviews>\n")
    with pytest.raises(TaskspecError, match=r"bad\.xml:3: malformed XML"):
        load_dataset(p)


# --------------------------------------------------------------------------- embeddings


def test_word2vec_loader_drops_zero_rows_and_duplicates(tmp_path):
    p = _write(tmp_path / "v.vec", "4 2\na 1 0\nb 0 0\na 5 5\nc 0.5 0.5\n")
    emb = load_embeddings(p)
    assert emb.words == ["a", "c"]
    assert emb.vectors.dtype == np.float32 and emb.vectors.tolist() == [[1, 0], [0.5, 0.5]]


@pytest.mark.parametrize(
    "body, message",
    [
        ("2 3\na 1 2 3\nb 1 2\n", r"v\.vec, line 3: expected 3 values after the word \"b\", found 2"),
        ("2 2\na 1 x\n", r"v\.vec, line 2: .*\"x\""),
        ("2 2\na 1 nan\n", r"v\.vec, line 2: .*(NaN|nan)"),
        ("", r"v\.vec: empty file"),
    ],
)
def test_word2vec_loader_reports_file_and_line(tmp_path, body, message):
    with pytest.raises(TaskspecError, match=message):
        load_embeddings(_write(tmp_path / "v.vec", body))


def test_npz_loader_reads_keys_without_pickle(tmp_path):
    p = tmp_path / "v.npz"
    np.savez(p, fr__words=np.array(["chat", "chien"]), fr__vecs=np.eye(2, dtype=np.float16))
    emb = load_embeddings(p, key="fr")
    assert emb.words == ["chat", "chien"] and emb.dim == 2
    with pytest.raises(TaskspecError, match=r"no embeddings for key 'de' \(available: fr\)"):
        load_embeddings(p, key="de")


def test_rescaled_sets_mean_norm_and_is_idempotent():
    emb = Embeddings(["a", "b"], np.array([[3.0, 4.0], [0.0, 1.0]], dtype=np.float32))
    r = emb.rescaled()
    assert np.linalg.norm(r.vectors, axis=1).mean() == pytest.approx(np.sqrt(2), rel=1e-5)
    assert r.rescaled() is r


# --------------------------------------------------------------------------- configuration


BASE_CONFIG = {
    "source": {"lang": "en", "train": "en/train.jsonl", "dev": "en/dev.jsonl", "embeddings": "en.vec"},
    "target": [{"lang": "fr", "test": "fr/test.jsonl", "embeddings": "fr.vec"}],
}


def _config(**overrides):
    raw = json.loads(json.dumps(BASE_CONFIG))
    raw.update(overrides)
    return raw


def test_config_defaults_and_relative_paths(tmp_path):
    cfg = parse_config(_config(), base=tmp_path)
    assert cfg.seeds == 3 and cfg.k_grid == tuple(range(1, 11)) and cfg.methods == DEFAULT_METHODS
    assert cfg.source.train == tmp_path / "en" / "train.jsonl"
    assert cfg.targets[0].embeddings_key == "fr" and cfg.targets[0].tokenizer == "regex"
    assert cfg.train == TrainOptions()
    # the reference code's training settings, with the paper's hidden layer
    assert (cfg.train.epochs, cfg.train.patience, cfg.train.dropout, cfg.train.hidden) == (20, 0, 0.2, 128)


def test_config_data_defaults_apply_to_languages(tmp_path):
    raw = _config(data={"format": "tsv", "label_column": "category", "embeddings": "all.npz"})
    del raw["target"][0]["embeddings"]
    cfg = parse_config(raw, base=tmp_path)
    assert cfg.targets[0].embeddings == tmp_path / "all.npz"
    assert cfg.targets[0].data.format == "tsv" and cfg.source.data.label_column == "category"
    assert cfg.source.embeddings == tmp_path / "en.vec"  # a language's own key wins


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"sedes": 3}, "unknown key.*sedes"),
        ({"seeds": "3"}, "seeds must be int, got str"),
        ({"seeds": True}, "seeds must be int, got bool"),
        ({"seeds": 0}, "seeds must be >= 1"),
        ({"k_grid": [1, 0]}, "k_grid must be a non-empty list of positive integers"),
        ({"methods": ["clwe_fixed", "magic"]}, "unknown method.*magic"),
        ({"train": {"epochs": 2.5}}, "train.epochs must be int"),
        ({"train": {"lr": 0}}, "train.lr must be > 0"),
        ({"train": {"learning_rate": 1}}, r"unknown key.*learning_rate.*\[train\]"),
        ({"target": []}, "at least one"),
    ],
)
def test_config_validation_errors(tmp_path, overrides, message):
    with pytest.raises(TaskspecError, match=message):
        parse_config(_config(**overrides), base=tmp_path)


def test_config_language_errors(tmp_path):
    raw = _config()
    raw["target"][0]["colour"] = "red"
    with pytest.raises(TaskspecError, match=r"unknown key.*colour.*target\[0\]"):
        parse_config(raw, base=tmp_path)
    raw = _config()
    del raw["target"][0]["test"]
    with pytest.raises(TaskspecError, match=r"target\[0\] \(fr\)\.test is required"):
        parse_config(raw, base=tmp_path)
    raw = _config()
    raw["source"]["format"] = "csv"
    with pytest.raises(TaskspecError, match="source.format must be one of"):
        parse_config(raw, base=tmp_path)


def test_load_config_reports_missing_and_invalid_toml(tmp_path):
    with pytest.raises(TaskspecError, match="config file not found"):
        load_config(tmp_path / "none.toml")
    with pytest.raises(TaskspecError, match="invalid TOML"):
        load_config(_write(tmp_path / "bad.toml", "seeds = = 3\n"))


# --------------------------------------------------------------------------- model & projection


def _toy_task(rng: np.random.Generator):
    """Two-class toy data whose classes are two word groups of a random embedding table."""
    words = [f"w{i}" for i in range(40)]
    vecs = rng.normal(size=(40, 8)).astype(np.float32)
    vecs[:20, 0] += 2.0
    emb = Embeddings(words, vecs)

    def sample(n):
        from taskspec_rs.data import Dataset

        texts, labels = [], []
        for _ in range(n):
            c = int(rng.integers(2))
            ids = rng.integers(0, 20, size=6) + 20 * c
            texts.append(" ".join(words[i] for i in ids))
            labels.append("ab"[c])
        return Dataset(texts, labels, Path("toy"))

    return emb, sample(200), sample(60)


def test_train_save_load_round_trip(tmp_path):
    emb, train, dev = _toy_task(np.random.default_rng(0))
    opts = TrainOptions(epochs=5, hidden=16)
    model = train_classifier(train, dev, emb, labels=["a", "b"], lang="xx", tokenizer="regex", options=opts)
    assert model.accuracy(dev) > 0.9
    out = model.save(tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["labels.txt", "model.json", "vocab.txt", "weights.pt", "x_gen.npy"]
    loaded = TaskModel.load(out)
    assert loaded.words == model.words and loaded.labels == ["a", "b"] and loaded.kind == "opt"
    assert loaded.predict(dev.texts) == model.predict(dev.texts)
    np.testing.assert_allclose(loaded.network.word_vectors(), model.network.word_vectors())
    with pytest.raises(TaskspecError, match="exists and is not empty"):
        model.save(out)
    with pytest.raises(TaskspecError, match="not a model directory"):
        TaskModel.load(tmp_path)


def test_untrained_words_keep_their_general_vectors():
    """With the general vocabulary, words training never sees keep their general vectors."""
    emb, train, dev = _toy_task(np.random.default_rng(1))

    def keep(ds):  # words w0, w4, w8, ... never occur in train or dev
        return dataclasses.replace(ds, texts=[" ".join(w for w in t.split() if int(w[1:]) % 4) for t in ds.texts])

    train, dev = keep(train), keep(dev)
    seen = {w for t in train.texts + dev.texts for w in t.split()}
    opts = TrainOptions(epochs=2, rescale=False, vocabulary="general")  # every word of emb is in the vocabulary
    model = train_classifier(train, dev, emb, labels=["a", "b"], lang="xx", tokenizer="regex", options=opts)
    x_spec = model.network.word_vectors()
    unseen = [i for i, w in enumerate(emb.words) if w not in seen]
    trained = [i for i, w in enumerate(emb.words) if w in {x for t in train.texts for x in t.split()}]
    assert unseen and trained
    np.testing.assert_array_equal(x_spec[unseen], emb.vectors[unseen])
    assert not np.allclose(x_spec[trained], emb.vectors[trained])


def test_one_search_serves_every_k_and_the_self_projection():
    """The pipeline searches once at the widest k and projects every k from the first columns."""
    rng = np.random.default_rng(2)
    x_gen = rng.normal(size=(50, 6)).astype(np.float32)
    x_spec = rng.normal(size=(50, 4)).astype(np.float32)
    y_gen = rng.normal(size=(7, 6)).astype(np.float32)
    _, idx = knn(y_gen, x_gen, 10)
    for k in (1, 3, 10):
        multi = llm_from_neighbors(x_gen, x_spec, y_gen, idx[:, :k], reg=1e-3).y_spec
        np.testing.assert_allclose(multi, llm_project(x_gen, x_spec, y_gen, k, reg=1e-3), rtol=1e-4, atol=1e-5)
    # self-projection of a subset of source rows (exclude= their own rows) equals exclude_self on the whole vocabulary
    rows = np.array([3, 17, 40])
    _, own_idx = knn(x_gen[rows], x_gen, 5, exclude=rows)
    own = llm_from_neighbors(x_gen, x_spec, x_gen[rows], own_idx).y_spec
    full = llm_project(x_gen, x_spec, x_gen, 5, exclude_self=True)
    np.testing.assert_allclose(own, full[rows], rtol=1e-4, atol=1e-5)


def test_project_model_swaps_in_target_vocabulary():
    emb, train, dev = _toy_task(np.random.default_rng(3))
    model = train_classifier(
        train, dev, emb, labels=["a", "b"], lang="src", tokenizer="regex", options=TrainOptions(epochs=8, hidden=16)
    )
    assert model.accuracy(dev) > 0.9
    target = Embeddings([f"t{i}" for i in range(40)], emb.vectors + 0.01)
    projected = project_model(model, target, lang="tgt", tokenizer="regex", method="llm", k=3)
    assert projected.words == target.words and projected.lang == "tgt" and projected.info["k"] == 3
    texts = [t.replace("w", "t") for t in dev.texts]
    assert np.mean(np.array(projected.predict(texts)) == np.array(dev.labels)) > 0.9
    with pytest.raises(TaskspecError, match="dimension mismatch"):
        project_model(model, Embeddings(["z"], np.ones((1, 3), np.float32)), lang="t", tokenizer="regex")


# --------------------------------------------------------------------------- real data (reduced)


@pytest.mark.skipif(not (SHARED / "sib200").is_dir(), reason=f"shared data not found at {SHARED}")
def test_reduced_sib200_experiment_is_well_above_chance(tmp_path):
    from taskspec_rs.evaluate import run_experiment

    sib = SHARED / "sib200"
    vec = SHARED / "vectors" / "use_m3_512d_fp16.npz"
    raw = {
        "seeds": 1,
        "k_grid": [1, 5, 20],
        "methods": ["clwe_fixed", "clwe_opt_llm_ktask", "clwe_opt_llm_ktasklang"],
        "data": {"format": "tsv", "label_column": "category", "embeddings": str(vec)},
        "train": {"epochs": 8},
        "source": {"lang": "en", "train": str(sib / "eng_Latn/train.tsv"), "dev": str(sib / "eng_Latn/dev.tsv")},
        "target": [
            {"lang": "fr", "test": str(sib / "fra_Latn/test.tsv"), "dev": str(sib / "fra_Latn/dev.tsv")},
            {"lang": "de", "test": str(sib / "deu_Latn/test.tsv")},
        ],
    }
    result = run_experiment(parse_config(raw, base=tmp_path))
    summary = result.summary()
    assert set(summary) == {"clwe_fixed", "clwe_opt_llm_ktask", "clwe_opt_llm_ktasklang"}
    assert set(summary["clwe_opt_llm_ktasklang"]) == {"fr"}  # de has no dev set
    for method, by_lang in summary.items():
        for lang, r in by_lang.items():
            assert r["mean"] > 0.5, (method, lang, r)  # chance is 1/7
    assert result.k["clwe_opt_llm_ktask"]["fr"][0] in (1, 5, 20)


# --------------------------------------------------------------------------- beyond the paper


def test_new_methods_are_known_but_not_default(tmp_path):
    from taskspec_rs.config import parse_methods

    new = {"clwe_opt_orth", "clwe_opt_llm_csls_ktask", "clwe_opt_llm_margin"}
    assert new <= set(ALL_METHODS) and not new & set(DEFAULT_METHODS)
    assert parse_methods("clwe_opt_llm_margin,clwe_opt_lp,clwe_opt_llm_csls_ktask") == (
        "clwe_opt_lp",
        "clwe_opt_llm_csls_ktask",
        "clwe_opt_llm_margin",
    )
    cfg = parse_config(_config(csls_k=5, margin_grid=[0.1, 0, 0.05], train={"normalize": "center"}), base=tmp_path)
    assert cfg.csls_k == 5 and cfg.margin_grid == (0.0, 0.05, 0.1) and cfg.train.normalize == "center"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"csls_k": 0}, "csls_k must be >= 1"),
        ({"margin_grid": [0.1, -1]}, "margin_grid must be"),
        ({"margin_grid": []}, "margin_grid must be"),
        ({"margin_grid": [True]}, "margin_grid must be"),
        ({"train": {"normalize": "l2"}}, "train.normalize must be one of none, center, unit_center_unit"),
        ({"train": {"normalize": 1}}, "train.normalize must be str"),
    ],
)
def test_beyond_config_validation_errors(tmp_path, overrides, message):
    with pytest.raises(TaskspecError, match=message):
        parse_config(_config(**overrides), base=tmp_path)


def test_csls_neighbours_match_the_projector():
    rng = np.random.default_rng(4)
    x_gen = rng.normal(size=(60, 6)).astype(np.float32)
    x_spec = rng.normal(size=(60, 4)).astype(np.float32)
    y_gen = rng.normal(size=(9, 6)).astype(np.float32)
    _, csls_idx = knn(y_gen, x_gen, 5, metric="csls", csls_k=4)
    for k in (2, 5):
        multi = llm_from_neighbors(x_gen, x_spec, y_gen, csls_idx[:, :k]).y_spec
        ref = llm_project(x_gen, x_spec, y_gen, k, metric="csls", csls_k=4)
        np.testing.assert_allclose(multi, ref, rtol=1e-4, atol=1e-5)
    # the hub penalty changes the neighbours compared with cosine
    _, cos_idx = knn(y_gen, x_gen, 5)
    assert (cos_idx != csls_idx).any()
    # a precomputed penalty r(x) (cached across seeds by run_experiment) gives the same neighbours
    _, cached = knn(y_gen, x_gen, 5, metric="csls", hub_penalty=hub_scores(x_gen, y_gen, 4))
    np.testing.assert_array_equal(cached, csls_idx)
    # source self-projection with CSLS (penalty over the whole source vocabulary) equals exclude_self
    rows = np.array([1, 30, 59])
    penalty = hub_scores(x_gen, x_gen, 4, exclude_self=True)
    _, own_idx = knn(x_gen[rows], x_gen, 4, metric="csls", hub_penalty=penalty, exclude=rows)
    own = llm_from_neighbors(x_gen, x_spec, x_gen[rows], own_idx).y_spec
    full = llm_project(x_gen, x_spec, x_gen, 4, exclude_self=True, metric="csls", csls_k=4)
    np.testing.assert_allclose(own, full[rows], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="metric: must be one of"):
        knn(y_gen, x_gen, 3, metric="dot")


def test_margin_projections_match_engine_and_adapt_k():
    from taskspec_rs.neighbors import margin_counts

    rng = np.random.default_rng(5)
    x_gen = rng.normal(size=(80, 6)).astype(np.float32)
    x_spec = rng.normal(size=(80, 3)).astype(np.float32)
    y_gen = rng.normal(size=(12, 6)).astype(np.float32)
    sims, idx = knn(y_gen, x_gen, 8)
    counts = {}
    for m in (0.0, 0.1, 10.0):
        proj = llm_from_neighbors(x_gen, x_spec, y_gen, idx, scores=sims, margin=m)
        ref = llm_project(x_gen, x_spec, y_gen, 8, margin=m)
        np.testing.assert_allclose(proj.y_spec, ref, rtol=1e-4, atol=1e-5)
        counts[m] = margin_counts(sims, m)
        assert counts[m].min() >= 1 and counts[m].max() <= 8
        np.testing.assert_array_equal((proj.neighbors >= 0).sum(axis=1), counts[m])
        np.testing.assert_array_equal(proj.weights[proj.neighbors < 0], 0)
    assert (counts[0.0] == 1).all() and (counts[10.0] == 8).all()
    k1 = llm_from_neighbors(x_gen, x_spec, y_gen, idx[:, :1]).y_spec
    np.testing.assert_allclose(llm_from_neighbors(x_gen, x_spec, y_gen, idx, scores=sims, margin=0.0).y_spec, k1)


def test_normalize_vectors_modes():
    from taskspec_rs.data import normalize_vectors

    v = np.random.default_rng(6).normal(loc=3.0, size=(50, 8)).astype(np.float32)
    assert normalize_vectors(v, "none") is v
    np.testing.assert_allclose(normalize_vectors(v, "center").mean(axis=0), 0, atol=1e-5)
    ucu = normalize_vectors(v, "unit_center_unit")
    np.testing.assert_allclose(np.linalg.norm(ucu, axis=1), 1, atol=1e-5)
    with pytest.raises(TaskspecError, match="unknown normalisation"):
        normalize_vectors(v, "pca")


def test_orth_projection_in_project_model():
    emb, train, dev = _toy_task(np.random.default_rng(7))
    model = train_classifier(
        train, dev, emb, labels=["a", "b"], lang="src", tokenizer="regex", options=TrainOptions(epochs=4, hidden=16)
    )
    target = Embeddings([f"t{i}" for i in range(40)], emb.vectors + 0.01)
    projected = project_model(model, target, lang="tgt", tokenizer="regex", method="orth")
    assert projected.info["projection"] == "orth" and projected.network.word_vectors().shape == (40, 8)


def test_demo_experiment_with_new_methods_and_normalisation(tmp_path):
    from taskspec_rs.demo import write_demo
    from taskspec_rs.evaluate import run_experiment, write_results

    cfg = load_config(write_demo(tmp_path / "demo"))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=4, normalize="unit_center_unit"))
    methods = ["clwe_opt_llm_ktask", "clwe_opt_llm_csls_ktask", "clwe_opt_llm_margin", "clwe_opt_orth"]
    result = run_experiment(cfg, seeds=1, methods=methods)
    summary = result.summary()
    assert set(summary) == set(methods)
    for method in methods:
        assert summary[method]["tga"]["mean"] > 0.5, method  # 4 topics: chance 0.25
    diag = result.diagnostics
    assert diag["clwe_opt_llm_margin"]["tga"][0]["margin"] in cfg.margin_grid
    for method in ("clwe_opt_llm_ktask", "clwe_opt_llm_csls_ktask"):
        d = diag[method]["tga"][0]
        assert d["k"] == result.k[method]["tga"][0] and 0 < d["top_share"] <= 1 and len(d["hubs"]) == 5
    write_results(result, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    assert "chosen margin" in md and "Neighbour hubness" in md
    assert "diagnostics" in json.loads((tmp_path / "out" / "results.json").read_text())


def test_word2vec_loader_reads_gzip_and_binary(tmp_path):
    import gzip

    import taskspec_rs as ts

    x = np.array([[1, 0], [0.5, 0.5]], np.float32)
    ts.save_vectors(tmp_path / "v.bin", ["a", "c"], x)
    (tmp_path / "v.vec.gz").write_bytes(gzip.compress(b"3 2\na 1 0\nb 0 0\nc 0.5 0.5\n"))
    for name in ["v.bin", "v.vec.gz"]:
        emb = load_embeddings(tmp_path / name)
        assert emb.words == ["a", "c"] and emb.vectors.tolist() == x.tolist()
    with pytest.raises(TaskspecError, match="file not found"):
        load_embeddings(tmp_path / "missing.vec")


def test_a_registered_method_runs_for_every_seed_and_target(tmp_path, monkeypatch):
    """Adding a method is one registry entry: the runner loops over it without knowing its name."""
    from taskspec_rs import methods
    from taskspec_rs.demo import write_demo
    from taskspec_rs.evaluate import run_experiment

    calls = []

    def target(run, t, choice):
        calls.append((run.seed, t.lang, choice))
        return methods.Outcome(accuracy=t.test.accuracy(run.model("fixed"), t.vocab.vectors), k=choice)

    toy = methods.Method("toy_fixed", "fixed", target, choose=lambda run: 3 + run.seed)
    monkeypatch.setitem(methods.METHODS, "toy_fixed", toy)
    cfg = load_config(write_demo(tmp_path / "demo"))
    result = run_experiment(cfg, seeds=2, methods=["toy_fixed", "clwe_fixed"])
    assert calls == [(0, "tga", 3), (0, "tgb", 3), (1, "tga", 4), (1, "tgb", 4)]
    summary = result.summary()
    # same model and vectors as clwe_fixed, so the same accuracies; the chosen k is recorded per seed
    assert summary["toy_fixed"] == summary["clwe_fixed"]
    assert result.k["toy_fixed"] == {"tga": [3, 4], "tgb": [3, 4]}
    assert list(result.runs) == ["clwe_fixed", "toy_fixed"]  # registry (table) order
