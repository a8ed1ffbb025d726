"""``taskspec-rs analyze`` on the bundled synthetic demo data."""

from __future__ import annotations

import json

import pytest
from taskspec_rs.cli import main
from taskspec_rs.demo import write_demo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"))


def test_analyze_writes_plots_and_tables(demo_config, tmp_path, capsys):
    out = tmp_path / "an"
    assert main(["analyze", str(demo_config), "--out", str(out), "--lang", "tga", "--quiet"]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        "analysis.md",
        "alpha.json",
        "alpha_hist.png",
        "k_curve.json",
        "k_curve.png",
        "neighbors.json",
        "neighbors.md",
    }
    for png in ("alpha_hist.png", "k_curve.png"):
        data = (out / png).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    curve = json.loads((out / "k_curve.json").read_text())
    assert set(curve["targets"]) == {"tga"} and curve["k_task"] in curve["k"]
    assert all(0 <= v <= 1 for v in curve["source_dev"].values())
    alpha = json.loads((out / "alpha.json").read_text())["languages"]["tga"]
    assert alpha["nearest_mean"] > alpha["others_mean"]  # the nearest neighbour dominates (paper, Figure 2)
    table = json.loads((out / "neighbors.json").read_text())
    assert len(table["words"]) == 4 and set(table["targets"]) == {"tga"}
    first = table["source"][table["words"][0]]
    assert len(first["general"]) == 5 and len(first["task_specific"]) == 5
    assert table["words"][0] not in [w for w, _ in first["general"]]  # a word is not its own neighbour
    assert "| word | language |" in (out / "neighbors.md").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert "wrote" in capsys.readouterr().out


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
