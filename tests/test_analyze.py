"""``taskspec-rs analyze`` on the bundled synthetic demo data, and the identical-twin measurements."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from taskspec_rs.cli import main
from taskspec_rs.data import Embeddings
from taskspec_rs.demo import write_demo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = ["--set", "train.epochs=4", "--quiet"]


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def trained_once():
    """Train each (kind, language, seed, options) once per module: ``eval`` then reuses ``analyze``'s models."""
    from taskspec_rs.experiment import SeedRun

    models: dict = {}
    train = SeedRun.train

    def cached(self, kind, lang_data):
        key = (kind, lang_data.lang, self.seed, self.experiment.config.train)
        if key not in models:
            models[key] = train(self, kind, lang_data)
        return models[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SeedRun, "train", cached)
        yield models


@pytest.fixture(scope="module")
def analysed(demo_config, trained_once, tmp_path_factory):
    out = tmp_path_factory.mktemp("an") / "an"
    assert main(["analyze", str(demo_config), "--out", str(out), "--lang", "tga", "--set", "seeds=2", *FAST]) == 0
    return out


def _lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _json(out, name):
    return json.loads((out / name).read_text(encoding="utf-8"))


def test_analyze_writes_plots_and_tables(analysed, capsys):
    names = {p.name for p in analysed.iterdir()}
    assert names == {
        "analysis.md",
        "alpha.json",
        "alpha_hist.png",
        "k_curve.json",
        "k_curve.png",
        "neighbors.json",
        "neighbors.md",
        "twins.json",
        "twins_k_curve.png",
    }
    for png in ("alpha_hist.png", "k_curve.png", "twins_k_curve.png"):
        data = (analysed / png).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    curve = _json(analysed, "k_curve.json")
    assert curve["seeds"] == [0, 1] and set(curve["targets"]) == {"tga"}
    assert all(k in curve["k"] for k in curve["k_task"].values())
    assert all(0 <= v <= 1 for by_k in curve["source_dev"].values() for v in by_k.values())
    for k in map(str, curve["k"]):  # the mean is the mean of the seeds
        runs = [curve["targets"]["tga"][s][k] for s in ("0", "1")]
        assert curve["mean"]["tga"][k] == pytest.approx(np.mean(runs))
    index = (analysed / "analysis.md").read_text(encoding="utf-8")
    assert "seeds 0, 1" in index and "## Identical twins" in index
    assert not [p for p in analysed.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_alpha_is_taken_at_each_seeds_tuned_k(analysed):
    curve, alpha = _json(analysed, "k_curve.json"), _json(analysed, "alpha.json")
    assert alpha["alpha_k"] == "tuned"
    for seed, k in curve["k_task"].items():
        by_seed = alpha["seeds"][seed]
        assert by_seed["k"] == k
        s = by_seed["languages"]["tga"]["without_twin"]
        assert s["k"] == k and len(s["mean_abs_by_rank"]) == k and s["words"] > 0
        assert s["weight_sum_mean"] == pytest.approx(1.0, abs=1e-4)  # LLM weights sum to one by construction
        assert sum(s["mean_abs_by_rank"]) >= 1 - 1e-3  # so their absolute values sum to at least one
        assert 0 <= s["nearest_largest_fraction"] <= 1
        # the demo has no twins: excluding them changes nothing
        assert by_seed["languages"]["tga"]["twins_excluded"] == s
        assert by_seed["languages"]["tga"]["with_twin"] == {"words": 0}


def test_neighbour_table_queries_target_words_among_target_words(analysed, demo_config):
    table = _json(analysed, "neighbors.json")
    target_words = {line.split(" ", 1)[0] for line in _lines(demo_config.parent / "vectors" / "tga.vec")}
    source_words = {line.split(" ", 1)[0] for line in _lines(demo_config.parent / "vectors" / "src.vec")}
    assert len(table["words"]) == 4 and set(table["targets"]) == {"tga"}
    assert table["k_task"] == _json(analysed, "k_curve.json")["k_task"]["0"]
    first = table["source"][table["words"][0]]
    assert len(first["general"]) == 5 and len(first["task_specific"]) == 5
    assert table["words"][0] not in [w for w, _ in first["general"]]  # a word is not its own neighbour
    rows = table["targets"]["tga"]
    assert [r["source_word"] for r in rows] == table["words"]
    for r in rows:
        assert r["word"] in target_words and r["word"] not in source_words
        for space in ("general", "task_specific"):
            found = [w for w, _ in r[space]]
            assert len(found) == 5 and r["word"] not in found and set(found) <= target_words
    assert "| word | language |" in (analysed / "neighbors.md").read_text(encoding="utf-8")


def test_k_curve_agrees_with_eval(analysed, demo_config, tmp_path):
    """At each seed's tuned k the analysis gives exactly eval's clwe_opt_llm_ktask accuracy (same models)."""
    out = tmp_path / "ev"
    args = ["eval", str(demo_config), "--out", str(out), "--seeds", "2", "--methods", "clwe_opt_llm_ktask", *FAST]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    curve = _json(analysed, "k_curve.json")
    ktask = results["results"]["clwe_opt_llm_ktask"]["tga"]["runs"]
    assert results["k"]["clwe_opt_llm_ktask"]["tga"] == [curve["k_task"]["0"], curve["k_task"]["1"]]
    assert ktask == [curve["targets"]["tga"][s][str(curve["k_task"][s])] for s in ("0", "1")]


def test_analyze_refuses_non_empty_out_and_bad_options(demo_config, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("keep")
    assert main(["analyze", str(demo_config), "--out", str(out), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    fresh = tmp_path / "fresh"
    assert main(["analyze", str(demo_config), "--out", str(fresh), "--lang", "xx", "--quiet"]) == 2
    assert "not among the targets" in capsys.readouterr().err
    assert main(["analyze", str(demo_config), "--out", str(fresh), "--words", "nosuchword", "--quiet", "--force"]) == 2
    assert "not in the src vocabulary" in capsys.readouterr().err


# --------------------------------------------------------------------------- identical twins


def test_identical_twins_needs_the_same_spelling_and_direction():
    from taskspec_rs.analyze import identical_twins

    rng = np.random.default_rng(0)
    src = Embeddings(["a", "b", "c"], rng.normal(size=(3, 8)).astype(np.float32))
    vectors = np.stack([src.vectors[0] * 3.0, rng.normal(size=8), src.vectors[2]]).astype(np.float32)
    tgt = Embeddings(["a", "b", "x"], vectors)  # a: same word, parallel; b: other vector; x: other spelling
    assert identical_twins(src, tgt).tolist() == [0, -1, -1]
    assert identical_twins(src, Embeddings(["z"], vectors[:1])).tolist() == [-1]


def test_an_identical_neighbour_takes_almost_all_the_weight():
    """A twin's Gram row is zero, so the ridge-regularised solve gives it the weight 1/r: by construction."""
    from taskspec_rs import llm_weights

    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 16)).astype(np.float32)
    for k in (2, 3, 5):
        weights = llm_weights(x, x[[7]], np.array([[7] + list(range(10, 9 + k))]), reg=1e-3)
        assert weights[0, 0] > 0.95 and weights.sum() == pytest.approx(1.0, abs=1e-5)


def _with_twins(config, n: int = 6) -> list[str]:
    """Rename ``n`` target words of the demo's ``tga`` to frequent source training words, with their vectors."""
    root = config.parent
    src_vec = dict(line.split(" ", 1) for line in _lines(root / "vectors" / "src.vec")[1:])
    counts = Counter(w for line in _lines(root / "src" / "train.jsonl") for w in json.loads(line)["text"].split())
    twins = [w for w, _ in counts.most_common(n)]
    test_words = Counter(w for line in _lines(root / "tga" / "test.jsonl") for w in json.loads(line)["text"].split())
    renamed = dict(zip([w for w, _ in test_words.most_common(n)], twins))
    lines = _lines(root / "vectors" / "tga.vec")
    out = [lines[0]]
    for line in lines[1:]:
        word = line.split(" ", 1)[0]
        out.append(f"{renamed[word]} {src_vec[renamed[word]]}" if word in renamed else line)
    (root / "vectors" / "tga.vec").write_text("\n".join(out) + "\n")
    for split in ("train", "dev", "test"):
        path = root / "tga" / f"{split}.jsonl"
        rows = [json.loads(line) for line in _lines(path)]
        for r in rows:
            r["text"] = " ".join(renamed.get(w, w) for w in r["text"].split())
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return twins


def test_twins_are_found_and_measured(tmp_path, trained_once):
    config = write_demo(tmp_path / "demo")
    twins = _with_twins(config)
    out = tmp_path / "an"
    argv = ["analyze", str(config), "--out", str(out), "--lang", "tga", "--set", "seeds=1"]
    assert main(argv + ["--set", "train.rescale=false", *FAST]) == 0  # the twins' vectors stay bit-identical
    t = _json(out, "twins.json")["tga"]
    assert t["twins_in_vocabulary"] == len(twins) and t["projected_twins"] == len(twins)
    assert 0 < t["test_token_share"] < 1
    seed = t["seeds"]["0"]
    assert seed["nearest_is_twin"] == 1.0  # an identical vector is at cosine 1
    assert seed["twin_alpha_mean"] > 0.9 and seed["twin_alpha_about_1"] == 1.0
    assert set(seed["accuracy_at_k_task"]) == {"as_is", "no_twin_neighbours", "no_twin_words"}
    alpha = _json(out, "alpha.json")["seeds"]["0"]["languages"]["tga"]
    assert alpha["with_twin"]["words"] == len(twins) and alpha["twins_excluded"]["words"] > len(twins)
    assert alpha["with_twin"]["nearest_mean"] > 0.9
