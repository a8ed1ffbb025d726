"""Command-line tests: demo end to end, train/project/predict, and user-error handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from taskspec_rs.cli import build_parser, cmd_align, main
from taskspec_rs.demo import write_demo

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


def test_eval_refuses_non_empty_out(small_config, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main(["eval", str(small_config), "--out", str(out), "--quiet"]) == 2
    assert "exists and is not empty" in _error_line(capsys)
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
    (action,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return action.choices


def test_every_subcommand_and_option_has_help():
    commands = _subparsers(build_parser())
    assert set(commands) == {"eval", "train", "project", "analyze", "align", "predict"}
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, (name, action.dest)


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


def test_train_refuses_non_empty_out_before_training(small_config, tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main(["train", str(small_config), "--out", str(out), "--quiet"]) == 2
    assert "exists and is not empty (use --force to replace it)" in _error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
