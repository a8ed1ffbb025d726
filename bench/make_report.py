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

import numpy as np


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


def _save(fig, png: Path) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(png)
    print(f"\nplot: {png}")


def gpu_points(path: Path) -> list[tuple[int, int, float]]:
    """``(sources, targets, seconds)`` of the kNN stages in a gpu_check report (none when it is missing)."""
    if not path.exists():
        return []
    rows = json.loads(path.read_text()).get("timings", [])
    return [(r["sources"], r["targets"], r["seconds"]) for r in rows if r.get("op") == "knn" and "seconds" in r]


def paths_report(rows: list[dict], gpu: list[tuple[int, int, float]], png: Path) -> None:
    """Table and plot of kNN time against vocabulary size for every path, the fastest CPU path marked per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["n"] for r in rows})
    names = sorted({r["path"] for r in rows})
    print("| words (sources = targets) | " + " | ".join(names) + " | fastest |")
    print("|---" * (len(names) + 2) + "|")
    best = {}
    for n in sizes:
        at = {r["path"]: r for r in rows if r["n"] == n}
        best[n] = min(at.values(), key=lambda r: r["seconds"])["path"]
        cells = [_path_cell(at.get(p)) for p in names]
        print(f"| {n:,} | " + " | ".join(cells) + f" | {best[n]} |")
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colours = {}
    for p in names:
        pts = sorted((r["n"], r["seconds"], r["sampled_targets"] is not None) for r in rows if r["path"] == p)
        (line,) = ax.plot([q[0] for q in pts], [q[1] for q in pts], marker="o", label=p)
        colours[p] = line.get_color()
        hollow = [q for q in pts if q[2]]
        ax.plot([q[0] for q in hollow], [q[1] for q in hollow], "o", mfc="white", color=line.get_color())
    square = sorted((m, t) for m, n, t in gpu if m == n)
    if square:
        ax.plot([q[0] for q in square], [q[1] for q in square], "k*-", ms=10, label="GPU torch (H200)")
    for m, n, t in gpu:
        if n > m:
            ax.plot([n], [t], "k*", ms=10)
            ax.annotate(f"GPU: {m:.0e} sources x {n:.0e} targets", (n, t), fontsize=7, ha="right", va="bottom")
    edges = [sizes[0] / 1.5] + [np.sqrt(a * b) for a, b in zip(sizes, sizes[1:])] + [sizes[-1] * 1.5]
    for n, lo, hi in zip(sizes, edges, edges[1:]):
        ax.axvspan(lo, hi, color=colours[best[n]], alpha=0.08)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(8e3, 1.2e7)
    ax.set_xlabel("words in each vocabulary (targets = sources; GPU star: 10x the targets)")
    ax.set_ylabel("seconds (kNN, d=300, k=10; CPU: 2 threads)")
    ax.set_title("Time against vocabulary size; shading: fastest CPU path (recall@10 >= 0.95)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, png)


def _path_cell(r) -> str:
    if r is None:
        return "—"
    cell = f"{r['seconds']:.2f}"
    if r["sampled_targets"]:
        cell += "*"
    if r["recall"] < 1.0:
        cell += f" (recall {r['recall']:.3f})"
    return cell


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
        _save(fig, png)
    paths = latest(load(results, "paths"), "path", "n")
    if paths:
        docs = Path(__file__).parents[1] / "docs"
        paths_report(paths, gpu_points(docs / "data" / "gpu_check_h200.json"), png.with_name("paths.png"))
        print("(* exact time measured on a sample of targets and scaled: the cost is linear in the targets)")


if __name__ == "__main__":
    main()
