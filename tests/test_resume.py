"""``taskspec-rs eval --resume DIR``: an eval killed part-way continues where it stopped and gives the same table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from taskspec_rs.cli import main

CLI = "import sys; from taskspec_rs.cli import main; sys.exit(main(sys.argv[1:]))"
METHODS = "clwe_fixed,clwe_opt_llm_ktask"


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> Path:
    from taskspec_rs.demo import write_demo

    config = write_demo(tmp_path_factory.mktemp("demo") / "data")
    text = config.read_text().replace("epochs = 15", "epochs = 3")
    text = text.replace("k_grid = [1, 2, 3, 5, 10, 20]", "k_grid = [1, 3, 10]")
    small = config.parent / "small.toml"
    small.write_text(text)
    return small


def _argv(config: Path) -> list[str]:
    return ["eval", str(config), "--seeds", "2", "--methods", METHODS, "--quiet"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small_config) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("reference") / "out"
    proc = subprocess.run([sys.executable, "-c", CLI, *_argv(small_config), "--out", str(out)], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return out, proc.stdout.decode()


def _kill_when(argv: list[str], path: Path) -> None:
    """Start the command, SIGKILL it as soon as ``path`` exists."""
    with subprocess.Popen([sys.executable, "-c", CLI, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as p:
        t0 = time.perf_counter()
        while not path.exists():
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
            assert time.perf_counter() - t0 < 180
            time.sleep(0.02)
        p.kill()
    assert p.returncode == -9


def _without_elapsed(out: Path) -> tuple[dict, list[str]]:
    data = json.loads((out / "results.json").read_text())
    data["meta"].pop("elapsed_s")
    md = [line for line in (out / "results.md").read_text().splitlines() if not line.startswith("Elapsed: ")]
    return data, md


def test_resume_after_sigkill_gives_the_identical_table(tmp_path, small_config, uninterrupted):
    ref_out, ref_stdout = uninterrupted
    out = tmp_path / "out"
    _kill_when(_argv(small_config) + ["--out", str(out)], out / "runs" / "seed0" / "clwe_fixed.json")
    _kill_when(_argv(small_config) + ["--resume", str(out)], out / "runs" / "seed1" / "clwe_fixed.json")
    assert not (out / "results.json").exists()
    done = {(seed, method) for seed in (0, 1) for method in METHODS.split(",")}
    done = {(s, m) for s, m in done if (out / "runs" / f"seed{s}" / f"{m}.json").exists()}
    assert len(done) in (3, 4)  # killed while seed 1 trains its second model (or just after)
    argv = [a for a in _argv(small_config) if a != "--quiet"]
    proc = subprocess.run([sys.executable, "-c", CLI, *argv, "--resume", str(out)], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    log = proc.stderr.decode()
    for seed in (0, 1):
        for method in METHODS.split(","):
            assert (f"seed {seed}: {method} already done" in log) == ((seed, method) in done), (seed, method)
    table = proc.stdout.decode().split("Accuracy (%)", 1)[1].split("\nwrote ")[0]
    assert table == ref_stdout.split("Accuracy (%)", 1)[1].split("\nwrote ")[0]
    assert _without_elapsed(out) == _without_elapsed(ref_out)
    for path in (out / "runs").rglob("*.json"):  # the records are those of an uninterrupted run
        rel = path.relative_to(out)
        if rel.name != "manifest.json":
            mine, ref = json.loads(path.read_text()), json.loads((ref_out / rel).read_text())
            assert {k: v for k, v in mine.items() if k != "run"} == {k: v for k, v in ref.items() if k != "run"}
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_resume_of_a_finished_run_trains_nothing_and_gives_the_same_result(small_config, uninterrupted, monkeypatch):
    from taskspec_rs.config import load_config
    from taskspec_rs.evaluate import run_experiment
    from taskspec_rs.experiment import SeedRun

    ref_out, _ = uninterrupted
    monkeypatch.setattr(SeedRun, "train", lambda *a, **k: pytest.fail("trained although every seed was done"))
    result = run_experiment(
        load_config(small_config), seeds=2, methods=METHODS.split(","), out_dir=ref_out, resume=True
    )
    expected = json.loads((ref_out / "results.json").read_text())
    got = json.loads(json.dumps(result.to_json(), ensure_ascii=False))
    expected["meta"].pop("elapsed_s"), got["meta"].pop("elapsed_s")
    assert got == expected


def test_resume_refuses_another_configuration(tmp_path, small_config, uninterrupted, capsys):
    import shutil

    ref_out, _ = uninterrupted
    out = tmp_path / "copy"
    shutil.copytree(ref_out, out)
    other = small_config.with_name("other.toml")
    other.write_text(small_config.read_text().replace("epochs = 3", "epochs = 4"))
    assert main(_argv(other) + ["--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a run of another configuration (differs in: train.epochs)" in err[0], err
    assert json.loads((out / "results.json").read_text()) == json.loads((ref_out / "results.json").read_text())


def test_resume_refuses_a_folder_without_a_run_and_a_second_out(tmp_path, small_config, capsys):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(_argv(small_config) + ["--resume", str(tmp_path / "other")]) == 2
    assert "no interrupted eval there" in capsys.readouterr().err
    assert main(_argv(small_config) + ["--resume", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 2
    assert "drop --out" in capsys.readouterr().err


def test_a_new_run_never_reuses_records_of_an_earlier_run(tmp_path, small_config):
    from taskspec_rs.config import load_config
    from taskspec_rs.evaluate import MethodRun, RunStore

    config, log = load_config(small_config), lambda _msg: None
    first = RunStore.open(tmp_path, config, resume=False, log=log)
    first.start()
    first.save(0, "clwe_fixed", MethodRun({"src": 0.5}, {}, {}))
    assert RunStore.open(tmp_path, config, resume=True, log=log).load(0, "clwe_fixed") == MethodRun({"src": 0.5})
    second = RunStore.open(tmp_path, config, resume=False, log=log)  # eval --force into the same folder
    second.start()
    assert second.load(0, "clwe_fixed") is None
    assert RunStore.open(tmp_path, config, resume=True, log=log).load(0, "clwe_fixed") is None
