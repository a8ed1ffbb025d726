"""The paper's vocabulary protocol, macro-F1, and shipping a model: ``eval --save-models`` and ``project --k auto``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from taskspec_rs.cli import main
from taskspec_rs.config import TaskspecError, TrainOptions, load_config, parse_config
from taskspec_rs.data import Dataset, Embeddings, training_vocabulary
from taskspec_rs.demo import write_demo
from taskspec_rs.model import Score, macro_f1

PAPER = "clwe_fixed,clwe_fixed_nnmap,clwe_opt_lp,clwe_opt_llm_k1,clwe_opt_llm_ktask,clwe_opt_llm_ktasklang,monolingual"


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> Path:
    """The demo configuration with fewer epochs (fast); its k grid is kept."""
    config = write_demo(tmp_path_factory.mktemp("demo") / "data")
    small = config.parent / "small.toml"
    small.write_text(config.read_text().replace("epochs = 15", "epochs = 4"))
    return small


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("taskspec-rs: error: "), err
    return err[0]


# --------------------------------------------------------------------------- vocabulary


def _table(words: list[str], dim: int = 4) -> Embeddings:
    return Embeddings(words, np.arange(1, len(words) * dim + 1, dtype=np.float32).reshape(len(words), dim))


def test_training_vocabulary_keeps_training_words_with_min_count():
    emb = _table(["apple", "bank", "cat", "dog", "egg"])
    texts = ["Dog cat dog", "cat, dog! zebra zebra", "egg"]  # zebra has no vector; bank and apple never occur
    once = training_vocabulary(texts, emb, tokenizer="regex")
    assert once.words == ["cat", "dog", "egg"]  # in the order of the embeddings
    np.testing.assert_array_equal(once.vectors, emb.vectors[[2, 3, 4]])
    assert training_vocabulary(texts, emb, tokenizer="regex", min_count=2).words == ["cat", "dog"]
    assert training_vocabulary(texts, emb, tokenizer="regex", min_count=3).words == ["dog"]
    with pytest.raises(TaskspecError, match="lower train.min_count"):
        training_vocabulary(texts, emb, tokenizer="regex", min_count=4)
    with pytest.raises(TaskspecError, match="min_count must be an integer >= 1, got 0"):
        training_vocabulary(texts, emb, tokenizer="regex", min_count=0)


def test_vocabulary_config_default_and_errors(tmp_path):
    raw = {
        "source": {"lang": "en", "train": "t.jsonl", "dev": "d.jsonl", "embeddings": "e.vec"},
        "target": [{"lang": "fr", "test": "f.jsonl", "embeddings": "f.vec"}],
    }
    cfg = parse_config(raw, base=tmp_path)
    assert cfg.train.vocabulary == "train" and cfg.train.min_count == 1
    cfg = parse_config({**raw, "train": {"vocabulary": "general", "min_count": 3}}, base=tmp_path)
    assert cfg.train.vocabulary == "general" and cfg.train.min_count == 3
    for train, message in [
        ({"vocabulary": "all"}, "train.vocabulary must be one of train, general, got 'all'"),
        ({"min_count": 0}, "train.min_count must be >= 1"),
        ({"min_count": 1.5}, "train.min_count must be int"),
    ]:
        with pytest.raises(TaskspecError, match=message):
            parse_config({**raw, "train": train}, base=tmp_path)


def test_train_classifier_vocabulary_is_the_training_words():
    from taskspec_rs.train import train_classifier

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    emb = Embeddings(words, rng.normal(size=(30, 6)).astype(np.float32))
    texts = [" ".join(f"w{j}" for j in rng.integers(0, 10, size=5)) + (" w10 w10" if i % 2 else "") for i in range(40)]
    labels = ["a" if "w10" in t else "b" for t in texts]
    train = Dataset(texts, labels, Path("toy"))
    dev = Dataset(["w20 w1", "w10 w2"], ["b", "a"], Path("dev"))  # w20 is a dev-only word
    opts = TrainOptions(epochs=2, hidden=8)
    model = train_classifier(train, dev, emb, labels=["a", "b"], lang="xx", tokenizer="regex", options=opts)
    assert model.words == [f"w{i}" for i in range(11)]  # the training words, in embedding order; not w20
    np.testing.assert_array_equal(model.x_gen, emb.rescaled().vectors[:11])  # rescaled on every general vector
    assert model.info["vocabulary"] == "train" and model.info["min_count"] == 1
    rare = dataclasses.replace(opts, min_count=35)  # w10 occurs 40 times, each of w0-w9 about 20
    assert train_classifier(train, dev, emb, labels=["a", "b"], lang="xx", tokenizer="regex", options=rare).words == [
        "w10"
    ]
    general = dataclasses.replace(opts, vocabulary="general")
    full = train_classifier(train, dev, emb, labels=["a", "b"], lang="xx", tokenizer="regex", options=general)
    assert full.words == words


def test_experiment_source_vocabulary_follows_the_protocol(small_config):
    from taskspec_rs.data import tokenize
    from taskspec_rs.experiment import load_experiment

    cfg = load_config(small_config)
    exp = load_experiment(cfg, with_targets=False)
    src = exp.source
    train_words = {w for t in src.train.texts for w in tokenize(t)}
    assert set(src.embeddings.words) == train_words & set(src.general.words)
    assert len(src.embeddings.words) < len(src.general.words)
    index = src.embeddings.index()
    for word, row in zip(exp.src_dev_vocab.words, exp.src_dev_rows):
        assert row == index.get(word, -1)  # dev words outside the vocabulary are projected, nothing excluded
    assert (exp.src_dev_rows == -1).any()
    general = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, vocabulary="general"))
    exp = load_experiment(general, with_targets=False)
    assert exp.source.general is None and (exp.src_dev_rows >= 0).all()


# --------------------------------------------------------------------------- macro-F1


def _reference_macro_f1(gold: list[str], predicted: list[str]) -> float:
    """F1 as the harmonic mean of precision and recall, label by label, over the labels seen (0 when undefined)."""
    f1s = []
    for label in sorted(set(gold) | set(predicted)):
        tp = sum(g == p == label for g, p in zip(gold, predicted))
        n_pred, n_gold = predicted.count(label), gold.count(label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(f1s) / len(f1s)


def test_macro_f1_matches_a_reference_on_a_toy_case():
    gold = ["pos", "pos", "neg", "neg", "neu", "pos"]
    pred = ["pos", "neg", "neg", "neg", "pos", "pos"]  # neu never predicted: its F1 is 0
    names = {"pos": 0, "neg": 1, "neu": 2}
    value = macro_f1([names[g] for g in gold], [names[p] for p in pred])
    # pos: P 2/3, R 2/3 -> 2/3; neg: P 2/3, R 1 -> 0.8; neu: 0
    assert value == pytest.approx((2 / 3 + 0.8 + 0) / 3, abs=1e-12)
    assert value == pytest.approx(_reference_macro_f1(gold, pred), abs=1e-12)
    assert macro_f1([0, 1], [0, 1]) == 1.0 and macro_f1([0, 0], [1, 1]) == 0.0
    assert macro_f1([0, 0, 0], [0, 0, 0]) == 1.0  # only the labels that occur are averaged
    score = Score.of(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert score.accuracy == 0.75 and score.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    with pytest.raises(ValueError, match="differ in length"):
        macro_f1([0, 1], [0])


# --------------------------------------------------------------------------- eval --save-models, predict


@pytest.fixture(scope="module")
def saved_eval(small_config, tmp_path_factory) -> tuple[Path, Path, dict]:
    """The demo's paper methods, 2 seeds, with every target model kept."""
    root = tmp_path_factory.mktemp("saved")
    out, models = root / "out", root / "models"
    argv = ["eval", str(small_config), "--seeds", "2", "--methods", PAPER, "--out", str(out), "--quiet"]
    assert main(argv + ["--save-models", str(models)]) == 0
    return out, models, json.loads((out / "results.json").read_text())


def test_results_report_macro_f1_beside_accuracy(saved_eval):
    out, _, data = saved_eval
    assert set(data["macro_f1"]) == set(data["results"])
    for method, by_lang in data["results"].items():
        assert set(data["macro_f1"][method]) == set(by_lang)
        for lang, r in by_lang.items():
            f1 = data["macro_f1"][method][lang]
            assert len(f1["runs"]) == len(r["runs"]) == 2 and all(0 < v <= 1 for v in f1["runs"])
    assert "Macro-F1 (%)" in (out / "results.md").read_text()


def test_saved_models_reproduce_the_eval_accuracy_exactly(saved_eval, small_config, tmp_path, capsys):
    _, models, data = saved_eval
    demo = small_config.parent
    checked = 0
    for method, by_lang in data["results"].items():
        for lang in ("tga", "tgb"):
            for seed in (0, 1):
                model_dir = models / method / lang / f"seed{seed}"
                meta = json.loads((model_dir / "model.json").read_text())
                assert meta["lang"] == lang and meta["info"]["method"] == method
                if method in data["k"] and lang in data["k"][method]:
                    assert meta["info"]["k"] == data["k"][method][lang][seed]
                preds = tmp_path / f"{method}-{lang}-{seed}.jsonl"
                assert main(["predict", str(model_dir), str(demo / lang / "test.jsonl"), "--out", str(preds)]) == 0
                rows = [json.loads(line) for line in preds.read_text().splitlines()]
                accuracy = float(np.mean([r["prediction"] == r["label"] for r in rows]))
                assert accuracy == by_lang[lang]["runs"][seed], (method, lang, seed)
                names = {
                    x: i for i, x in enumerate(sorted({r["label"] for r in rows} | {r["prediction"] for r in rows}))
                }
                f1 = macro_f1([names[r["label"]] for r in rows], [names[r["prediction"]] for r in rows])
                assert f1 == pytest.approx(data["macro_f1"][method][lang]["runs"][seed], abs=1e-12)
                checked += 1
    assert checked == 7 * 2 * 2
    # a projected model covers the whole target embedding vocabulary, not only the test words
    vocab = (models / "clwe_opt_llm_ktask" / "tga" / "seed0" / "vocab.txt").read_text().splitlines()
    assert len(vocab) == int((demo / "vectors" / "tga.vec").read_text().split()[0])
    assert "macro-F1" in capsys.readouterr().err


def test_save_models_refuses_a_non_empty_folder(small_config, tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    (models / "keep.txt").write_text("x")
    argv = ["eval", str(small_config), "--seeds", "1", "--methods", "clwe_fixed", "--out", str(tmp_path / "o")]
    assert main(argv + ["--save-models", str(models)]) == 2
    assert "--save-models" in _error_line(capsys) and not (tmp_path / "o").exists()


def test_resume_computes_again_what_has_no_saved_model(small_config, tmp_path):
    out, models = tmp_path / "out", tmp_path / "models"
    argv = ["eval", str(small_config), "--seeds", "1", "--methods", "clwe_fixed,clwe_opt_lp", "--quiet"]
    assert main(argv + ["--out", str(out)]) == 0
    first = json.loads((out / "results.json").read_text())
    assert main(argv + ["--resume", str(out), "--save-models", str(models)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["results"] == first["results"] and again["macro_f1"] == first["macro_f1"]
    assert sorted(p.name for p in models.iterdir()) == ["clwe_fixed", "clwe_opt_lp"]
    assert (models / "clwe_opt_lp" / "tgb" / "seed0" / "model.json").is_file()


# --------------------------------------------------------------------------- project --k auto


def test_project_k_auto_picks_the_k_of_eval(saved_eval, small_config, tmp_path, capsys):
    _, _, data = saved_eval
    demo = small_config.parent
    for seed in (0, 1):
        model_dir, out = tmp_path / f"src{seed}", tmp_path / f"tga{seed}"
        assert main(["train", str(small_config), "--seed", str(seed), "--out", str(model_dir), "--quiet"]) == 0
        recorded = json.loads((model_dir / "model.json").read_text())["info"]["source"]
        assert recorded["dev"] == str((demo / "src" / "dev.jsonl").resolve()) and recorded["k_grid"] == [
            1,
            2,
            3,
            5,
            10,
            20,
        ]
        argv = ["project", str(model_dir), "--embeddings", str(demo / "vectors" / "tga.vec"), "--lang", "tga"]
        assert main(argv + ["--k", "auto", "--out", str(out)]) == 0
        info = json.loads((out / "model.json").read_text())["info"]
        assert info["k"] == data["k"]["clwe_opt_llm_ktask"]["tga"][seed]
        assert info["k_selection"]["rule"] == "source self-projection"
        assert f"-> k = {info['k']}" in capsys.readouterr().out


def test_self_projection_scores_equal_those_of_eval(small_config):
    """``project --k auto`` computes the same source-dev accuracies for every k as eval's ``ktask``."""
    from taskspec_rs.evaluate import NEIGHBOR_WIDTH
    from taskspec_rs.experiment import NeighborCache, SeedRun, load_experiment
    from taskspec_rs.methods import source_k_scores
    from taskspec_rs.train import self_projection_scores

    cfg = load_config(small_config)
    exp = load_experiment(cfg, with_targets=False)
    run = SeedRun(exp, 0, NeighborCache(exp, width=max(max(cfg.k_grid), NEIGHBOR_WIDTH)))
    general = exp.source.general
    scores = self_projection_scores(run.model("opt"), exp.source.dev, general, k_grid=cfg.k_grid, reg=cfg.reg)
    assert scores == source_k_scores(run)


def test_k_auto_user_errors(small_config, tmp_path, capsys):
    from taskspec_rs.data import load_dataset, load_embeddings
    from taskspec_rs.train import train_classifier

    demo = small_config.parent
    emb = load_embeddings(demo / "vectors" / "src.vec")
    train, dev = load_dataset(demo / "src" / "train.jsonl"), load_dataset(demo / "src" / "dev.jsonl")
    labels = sorted(set(train.labels))
    model = train_classifier(
        train, dev, emb, labels=labels, lang="src", tokenizer="regex", options=TrainOptions(epochs=1)
    )
    model.save(tmp_path / "api")  # trained in Python: no configuration recorded
    base = ["project", str(tmp_path / "api"), "--embeddings", str(demo / "vectors" / "tga.vec"), "--lang", "tga"]
    out = ["--out", str(tmp_path / "o")]
    assert main(base + ["--k", "auto"] + out) == 2
    assert "--k auto" in (line := _error_line(capsys)) and "--dev PATH" in line
    assert main(base + ["--k", "auto", "--dev", str(demo / "src" / "dev.jsonl")] + out) == 2
    assert "--source-embeddings PATH" in _error_line(capsys)
    assert main(base + ["--k", "auto", "--method", "lp"] + out) == 2
    assert "use it with --method llm" in _error_line(capsys)
    assert main(base + ["--k", "0"] + out) == 2
    assert "--k" in _error_line(capsys)
    extra = ["--dev", str(demo / "src" / "dev.jsonl"), "--source-embeddings", str(demo / "vectors" / "src.vec")]
    assert main(base + ["--k", "auto", "--k-grid", "1,3"] + extra + out) == 0
    assert json.loads((tmp_path / "o" / "model.json").read_text())["info"]["k"] in (1, 3)


# --------------------------------------------------------------------------- committed results


def test_result_tables_match_the_committed_results():
    """Every table of README.md and docs/RESULTS.md is what examples/results_tables.py builds from docs/results."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "results_tables.py"
    spec = importlib.util.spec_from_file_location("results_tables", path)
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    for run in tables.RUNS:
        data = tables.load(run)
        assert {"results", "macro_f1", "k", "diagnostics", "meta"} <= set(data), run
        assert data["meta"]["train_options"]["vocabulary"] == run.split("_")[1]
    assert tables.main(["--check"]) == 0
