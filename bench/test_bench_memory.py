"""Extra memory of llm_project stays bounded: 30k targets x 300k sources, d=300."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import THREADS, record

SCRIPT = textwrap.dedent(
    """
    import resource, sys, time
    sys.path.insert(0, sys.argv[1])
    from conftest import clustered
    import numpy as np, taskspec_rs as ts
    n, m = 30_000, 300_000
    x = clustered(m, seed=6); y = clustered(n, seed=7)
    xs = np.random.default_rng(8).standard_normal((m, 300), dtype=np.float32)
    ts.knn(y[:10], x[:20], 2)  # load the extension and start the pool
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    out = ts.llm_project(x, y, xs, 10, num_threads=int(sys.argv[2]))
    t = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024, t, out.nbytes / 2**20)
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
