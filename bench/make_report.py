"""Summarise bench/results/*.jsonl into markdown tables and the scaling plot.

Usage: python bench/make_report.py [RESULTS_DIR] [PNG_PATH]
(defaults: bench/results and docs/scaling.png). The latest row of each
(implementation, size) wins.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path


def load(results: Path, name: str) -> list[dict]:
    p = results / f"{name}.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def latest(rows: list[dict], *keys: str) -> list[dict]:
    seen: dict = {}
    for r in rows:
        seen[tuple(r.get(k) for k in keys)] = r
    return list(seen.values())


def ratio_table(rows: list[dict], ours: str, head: list[str], cells: Callable[[dict, float], list[str]]) -> None:
    """Print ``rows`` fastest first as a markdown table; ``cells(row, seconds of ours)`` follow the name."""
    t = next(r["seconds"] for r in rows if r["impl"] == ours)
    print("| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
    for r in sorted(rows, key=lambda r: r["seconds"]):
        print("| " + " | ".join([r["impl"], *cells(r, t)]) + " |")
    print()


def main() -> None:
    results = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    png = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parents[1] / "docs" / "scaling.png"
    knn = latest(load(results, "knn"), "impl")
    if knn:
        ratio_table(
            knn,
            "taskspec_rs.knn",
            ["exact kNN 40k x 40k, d=300, k=10", "seconds", "GFLOP/s", "vs taskspec-rs"],
            lambda r, t: [f"{r['seconds']:.2f}", f"{r['gflops']:.0f}", f"{r['seconds'] / t:.2f}x"],
        )
    llm = latest(load(results, "llm"), "impl")
    if llm:
        ratio_table(
            llm,
            "taskspec_rs.llm_project",
            ["llm_project 10k targets x 100k sources", "seconds", "taskspec-rs speed-up"],
            lambda r, t: [f"{r['seconds']:.2f}", f"{r['seconds'] / t:.2f}x"],
        )
    io = [r for r in latest(load(results, "load_vectors"), "impl") if "seconds" in r]
    if io:
        ratio_table(
            io,
            "taskspec_rs.load_vectors",
            ["load a 200k x 300 .vec file", "seconds", "vs taskspec-rs"],
            lambda r, t: [f"{r['seconds']:.2f}", f"{r['seconds'] / t:.1f}x"],
        )
    for r in latest(load(results, "scale"), "n_source", "n_target"):
        print(
            f"Scale run (HNSW): {r['n_source']} sources x {r['n_target']} targets x {r['d']}: {r['seconds']:.0f} s "
            f"(index build {r['build_seconds']:.0f} s), peak RSS {r['peak_rss_mib']:.0f} MiB; "
            f"{r['exact_agreement']:.3f} of sampled rows equal to the exact projection\n"
        )
    for r in latest(load(results, "memory"), "n_source"):
        print(
            f"Memory: llm_project {r['n_target']} x {r['n_source']}: peak extra {r['extra_mib']:.0f} MiB "
            f"(of which output {r['output_mib']:.0f} MiB), {r['seconds']:.1f} s\n"
        )
    for r in latest(load(results, "hnsw"), "n_source", "n_target"):
        extra = " (extrapolated from 50k targets)" if r["exact_extrapolated"] else ""
        print(
            f"HNSW: {r['n_source']} sources x {r['n_target']} targets: llm_project via HNSW "
            f"{r['hnsw_seconds']:.1f} s (index build {r['hnsw_build_seconds']:.1f} s) vs exact kNN alone "
            f"{r['exact_knn_seconds']:.1f} s{extra}; recall@10 {r['recall_at_10']:.3f}\n"
        )
    scaling = latest(load(results, "scaling"), "impl", "n_source")
    if scaling:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        sizes = sorted({r["n_source"] for r in scaling})
        impls = sorted({r["impl"] for r in scaling})
        print("| sources (10k targets) | " + " | ".join(impls) + " |")
        print("|---" * (len(impls) + 1) + "|")
        for m in sizes:
            cells = [
                next((f"{r['seconds']:.2f}" for r in scaling if r["impl"] == i and r["n_source"] == m), "—")
                for i in impls
            ]
            print(f"| {m:,} | " + " | ".join(cells) + " |")
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for i in impls:
            pts = sorted((r["n_source"], r["seconds"]) for r in scaling if r["impl"] == i)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=i)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("source vocabulary (words)")
        ax.set_ylabel("seconds (10k targets, d=300, k=10, 2 threads)")
        ax.set_title("llm_project time vs source vocabulary")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        png.parent.mkdir(parents=True, exist_ok=True)
        tmp = png.with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=110)
        tmp.replace(png)
        print(f"\nplot: {png}")


if __name__ == "__main__":
    main()
