"""English dev accuracy of the `opt` model under the training settings of the paper's reference code.

For each setting and each seed, trains the ``opt`` model on the source language and reports its best-epoch
**dev** accuracy and the dev accuracy of the source self-projection at the k it tunes (the
``clwe_opt_llm_ktask`` criterion). No target data is read, so the numbers can choose defaults without
touching a test set. Every setting gives all four options explicitly, so the table does not depend on the
configuration's ``[train]`` section: "before" is the earlier default of this project (hidden 128, dropout
0.3, 30 epochs, early stop after 8), "reference code" is what github.com/jyori112/task-spec trains (no
hidden layer, dropout 0.2, 20 epochs, no early stop), and "default" is today's default (the reference
code's dropout and epochs, the paper's hidden layer).

    python examples/compare_train_settings.py examples/sib200.toml examples/semeval16.toml \
        --k-grid 1,2,3,5,10,20,50 [--seeds 3] [--settings NAME,...]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from taskspec_rs.config import load_config
from taskspec_rs.experiment import NeighborCache, SeedRun, load_experiment
from taskspec_rs.methods import best_choice, source_k_scores

BEFORE = {"hidden": 128, "dropout": 0.3, "epochs": 30, "patience": 8}
SETTINGS = {
    "before": BEFORE,
    "hidden = 0": {**BEFORE, "hidden": 0},
    "dropout = 0.2": {**BEFORE, "dropout": 0.2},
    "epochs = 20 without early stop": {**BEFORE, "epochs": 20, "patience": 0},
    "reference code": {"hidden": 0, "dropout": 0.2, "epochs": 20, "patience": 0},
    "default": {"hidden": 128, "dropout": 0.2, "epochs": 20, "patience": 0},
}


def dev_scores(config, seeds: int) -> list[tuple[float, float, int]]:
    """``(opt dev accuracy, self-projection dev accuracy at the tuned k, tuned k)`` for each seed."""
    exp = load_experiment(config, with_targets=False)
    cache = NeighborCache(exp, width=max(config.k_grid))
    rows = []
    for seed in range(seeds):
        run = SeedRun(exp, seed, cache)
        scores = source_k_scores(run)
        k = best_choice(scores)
        rows.append((run.model("opt").info["dev_accuracy"], scores[k], k))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--k-grid", help="comma-separated k grid of the self-projection (default: the configuration's)")
    parser.add_argument("--settings", help=f"comma-separated subset of: {', '.join(SETTINGS)}")
    args = parser.parse_args()
    names = args.settings.split(",") if args.settings else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"--settings: unknown {unknown}; choose from {list(SETTINGS)}")
    print("| configuration | setting | dev (opt) | dev (self-projection) | tuned k |")
    print("|---|---|---|---|---|")
    for path in args.configs:
        base = load_config(path)
        if args.k_grid:
            base = dataclasses.replace(base, k_grid=tuple(int(k) for k in args.k_grid.split(",")))
        for name in names:
            config = dataclasses.replace(base, train=dataclasses.replace(base.train, **SETTINGS[name]))
            rows = dev_scores(config, args.seeds)
            dev, proj = (100 * np.array([r[i] for r in rows]) for i in (0, 1))
            ks = " / ".join(str(r[2]) for r in rows)
            cells = [path, name, f"{dev.mean():.1f} ±{dev.std(ddof=1):.1f}", f"{proj.mean():.1f}", ks]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
