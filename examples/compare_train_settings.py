"""English dev accuracy of the `opt` model under the training settings of the paper's reference code.

For each setting (the configuration's own; ``hidden = 0``; ``dropout = 0.2``; 20 epochs without early
stopping; all three together, which is what github.com/jyori112/task-spec trains) and each seed, trains the
``opt`` model on the source language and reports its best-epoch **dev** accuracy and the dev accuracy of the
source self-projection at the k it tunes (the ``clwe_opt_llm_ktask`` criterion). No target data is read, so
the numbers can choose defaults without touching a test set.

    python examples/compare_train_settings.py examples/sib200.toml examples/semeval16.toml [--seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from taskspec_rs.config import load_config
from taskspec_rs.experiment import NeighborCache, SeedRun, load_experiment
from taskspec_rs.methods import best_choice, source_k_scores

SETTINGS = {
    "configuration": {},
    "hidden = 0": {"hidden": 0},
    "dropout = 0.2": {"dropout": 0.2},
    "epochs = 20, patience = 0": {"epochs": 20, "patience": 0},
    "all three (reference code)": {"hidden": 0, "dropout": 0.2, "epochs": 20, "patience": 0},
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
    args = parser.parse_args()
    print("| configuration | setting | dev (opt) | dev (self-projection) | tuned k |")
    print("|---|---|---|---|---|")
    for path in args.configs:
        base = load_config(path)
        for name, change in SETTINGS.items():
            config = dataclasses.replace(base, train=dataclasses.replace(base.train, **change))
            rows = dev_scores(config, args.seeds)
            dev, proj = (100 * np.array([r[i] for r in rows]) for i in (0, 1))
            ks = " / ".join(str(r[2]) for r in rows)
            cells = [path, name, f"{dev.mean():.1f} ±{dev.std(ddof=1):.1f}", f"{proj.mean():.1f}", ks]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
