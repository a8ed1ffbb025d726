"""How close is LP's least-squares map to the identity, for models of either vocabulary protocol?

For each saved source model (``taskspec-rs train CONFIG --out DIR``), fits LP's map W (X_gen W ≈ X_spec, least
squares over the model's vocabulary, as ``clwe_opt_lp`` does) and prints the vocabulary size, the share of
rows that training moved, ``‖W − I‖ / ‖I‖`` (Frobenius norms) and how much of the task update X_spec − X_gen
the map reproduces on the vocabulary itself: ``1 − ‖X_gen W − X_spec‖² / ‖X_gen − X_spec‖²`` (1: all of it;
0: no better than W = I).

    python examples/lp_identity.py runs/en-train runs/en-general
"""

from __future__ import annotations

import argparse

import numpy as np
from taskspec_rs.model import TaskModel
from taskspec_rs.project import LinearProjector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="source model directories")
    args = parser.parse_args()
    print("| model | vocabulary | words | moved by training | ‖W − I‖ / ‖I‖ | update explained by W |")
    print("|---|---|---|---|---|---|")
    for path in args.models:
        model = TaskModel.load(path)
        x_gen, x_spec = model.x_gen.astype(np.float64), model.network.word_vectors().astype(np.float64)
        w = LinearProjector("lstsq").fit(x_gen, x_spec).W_
        eye = np.eye(w.shape[0])
        moved = float(np.mean(np.any(x_spec != x_gen, axis=1)))
        update = np.linalg.norm(x_spec - x_gen) ** 2
        explained = 1 - np.linalg.norm(x_gen @ w - x_spec) ** 2 / update
        print(
            f"| {path} | {model.info.get('vocabulary', '?')} | {len(model.words)} | {100 * moved:.0f} % "
            f"| {np.linalg.norm(w - eye) / np.linalg.norm(eye):.3f} | {100 * explained:.1f} % |"
        )


if __name__ == "__main__":
    main()
