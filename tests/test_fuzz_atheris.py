"""A bounded coverage-guided fuzz run (atheris) of the public entry points, as CI runs it.

Runs ``fuzz/fuzz_vectors.py`` for ``TASKSPEC_FUZZ_SECONDS`` (default 20) seconds from the committed
seed corpus, with a fixed libFuzzer seed (``TASKSPEC_FUZZ_SEED``, default 1) so that a run is
repeatable. Any crash (an undocumented exception, an abort, a segfault, a hang past 30 s) fails the
test, printing the crashing input. Skipped when atheris is not installed (``pip install atheris``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_atheris_fuzz_run_finds_no_crash(tmp_path):
    pytest.importorskip("atheris")
    seconds = int(os.environ.get("TASKSPEC_FUZZ_SECONDS", "20"))
    seed = os.environ.get("TASKSPEC_FUZZ_SEED", "1")
    work = tmp_path / "corpus"
    work.mkdir()
    cmd = [
        sys.executable,
        os.path.join(ROOT, "fuzz", "fuzz_vectors.py"),
        f"-max_total_time={seconds}",
        f"-seed={seed}",
        "-timeout=30",
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
        str(work),
        os.path.join(ROOT, "fuzz", "corpus", "python"),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=seconds + 120)
    log = proc.stdout + proc.stderr
    tail = "\n".join(line for line in log.splitlines() if not line.startswith("INFO: Instrumenting"))[-4000:]
    assert proc.returncode == 0, f"the fuzzer found a crash (exit {proc.returncode}):\n{tail}"
    runs = re.search(r"stat::number_of_executed_units: (\d+)", log)
    assert runs and int(runs.group(1)) > 0, tail
    print(f"atheris: {runs.group(1)} executions in {seconds} s, no crash")
