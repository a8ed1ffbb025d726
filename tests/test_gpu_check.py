"""``bench/gpu_check.py`` runs as is: its dry mode (the torch backend on the CPU, tiny sizes) passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--quick"]
    cmd += ["--cases", "2000:1000,4000:3000", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] is True
    assert len(report["correctness"]) == 6 and all(c["ok"] for c in report["correctness"])
    timed = [r for r in report["timings"] if "seconds" in r]
    assert {(r["op"], r["sources"], r["targets"]) for r in timed} == {
        (op, m, n) for op in ("knn", "llm") for m, n in ((2000, 1000), (4000, 3000))
    }
    for r in timed:
        assert r["spot"]["ok"] and r["screen_rows"]["rows"] >= r["targets"]
    assert "Checks (6 correctness checks, 4 spot checks of timed results): PASS" in proc.stdout
