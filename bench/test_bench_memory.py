"""Extra memory of llm_project stays bounded: 30k targets x 300k sources, d=300.

The peak resident set (VmHWM, reset just before the call) minus the resident
set before the call: everything llm_project allocates, output included.
Inputs alone are 2 x 343 MiB (x_gen, x_spec) + 34 MiB (y_gen).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import THREADS, record

SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from conftest import clustered
    import numpy as np, taskspec_rs as ts
    n, m = 30_000, 300_000
    x = clustered(m, seed=6); y = clustered(n, seed=7)
    xs = np.random.default_rng(8).standard_normal((m, 300), dtype=np.float32)
    ts.knn(y[:10], x[:20], 2)  # load the extension and start the pool
    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size (VmHWM) to the current one
    before = status("VmRSS")
    t = time.perf_counter()
    out = ts.llm_project(x, xs, y, 10, num_threads=int(sys.argv[2]))
    t = time.perf_counter() - t
    print(status("VmHWM") - before, t, out.nbytes / 2**20)
    """
)


def test_llm_memory_bounded(tmp_path):
    from pathlib import Path

    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(Path(__file__).parent), str(THREADS)],
        capture_output=True,
        text=True,
        check=True,
    )
    extra_mib, seconds, out_mib = map(float, res.stdout.split())
    record(
        "memory",
        {"n_target": 30_000, "n_source": 300_000, "extra_mib": extra_mib, "output_mib": out_mib, "seconds": seconds},
    )
    print(f"\nllm_project 30k x 300k: peak extra {extra_mib:.0f} MiB (output {out_mib:.0f} MiB), {seconds:.1f}s")
    assert extra_mib <= 512
