"""Reproduce the BLI tables of docs/ALIGN.md.

Usage (from the repository root)::

    python bench/bli_table.py                      # both tables, markdown on stdout
    python bench/bli_table.py --rotate es fr de    # languages of the rotation experiment
    python bench/bli_table.py --skip-rotation      # only the as-given table

Data: ``../shared/data/vectors/use_m3_512d_fp16.npz`` and the MUSE
``en-xx.0-5000.approx.txt`` (train) / ``en-xx.5000-6500.approx.txt`` (test)
splits in ``../shared/data/muse_dicts`` (see ``--data``).

Table 1: en→xx BLI on the test split with the shared vectors as given
(no mapping). Table 1b: the same vectors on the full dictionary with
candidates restricted to dictionary words (closer to the protocol of the
data README's reference figures). Table 2: the target space is rotated by a random orthogonal
matrix (seed 0), BLI is measured rotated and after
``align(dictionary=train split, iterations=5)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from taskspec_rs.align import align, bli_evaluate, read_dictionary

LANGS = ("fr", "es", "pt", "it", "nl", "de", "tr", "ja", "da", "sv")
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _fmt(res: dict) -> str:
    return " | ".join(f"{res[m][f'p@{k}']:.3f}" for m in ("nn", "csls") for k in (1, 5))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    ap.add_argument("--langs", nargs="+", default=list(LANGS))
    ap.add_argument("--rotate", nargs="+", default=["es", "fr", "de"])
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-rotation", action="store_true")
    args = ap.parse_args(argv)

    npz = np.load(args.data / "vectors" / "use_m3_512d_fp16.npz", allow_pickle=False)
    dicts = args.data / "muse_dicts"

    def vocab(lang: str) -> tuple[list[str], np.ndarray]:
        return npz[f"{lang}__words"].tolist(), npz[f"{lang}__vecs"].astype(np.float32)

    sw, sv = vocab("en")
    print("### BLI en→xx, shared vectors as given (test split 5000-6500, full target vocabulary)\n")
    print("| pair | found / test words | NN P@1 | NN P@5 | CSLS P@1 | CSLS P@5 | seconds |")
    print("|---|---|---|---|---|---|---|")
    for lang in args.langs:
        tw, tv = vocab(lang)
        test = read_dictionary(dicts / f"en-{lang}.5000-6500.approx.txt")
        t0 = time.perf_counter()
        res = bli_evaluate(sv, tv, sw, tw, test)
        dt = time.perf_counter() - t0
        print(f"| en→{lang} | {res['n_found']} / {res['n_source_words']} | {_fmt(res)} | {dt:.1f} |", flush=True)

    print(
        "\n### Same, dictionary protocol: all pairs of the full en-xx.txt dictionary, candidates and "
        "queries restricted to words that occur in it\n"
    )
    print("| pair | found / dictionary words | NN P@1 | NN P@5 | CSLS P@1 | CSLS P@5 | seconds |")
    print("|---|---|---|---|---|---|---|")
    for lang in args.langs:
        tw, tv = vocab(lang)
        full = read_dictionary(dicts / f"en-{lang}.txt")
        s_in, t_in = set(sw), set(tw)
        keep_s = sorted({s for s, t in full if s in s_in and t in t_in})
        keep_t = sorted({t for s, t in full if s in s_in and t in t_in})
        si, ti = {w: i for i, w in enumerate(sw)}, {w: i for i, w in enumerate(tw)}
        t0 = time.perf_counter()
        res = bli_evaluate(sv[[si[w] for w in keep_s]], tv[[ti[w] for w in keep_t]], keep_s, keep_t, full)
        dt = time.perf_counter() - t0
        print(f"| en→{lang} | {res['n_found']} / {res['n_source_words']} | {_fmt(res)} | {dt:.1f} |", flush=True)

    if args.skip_rotation:
        return 0
    print(
        f"\n### Rotation recovery (target rotated by a random orthogonal matrix, seed {args.seed}; "
        f"align = Procrustes on the 0-5000 train split + up to {args.iterations} self-learning iterations)\n"
    )
    print("| pair | setting | NN P@1 | NN P@5 | CSLS P@1 | CSLS P@5 | align seconds (iterations run) |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    q, r = np.linalg.qr(rng.standard_normal((sv.shape[1], sv.shape[1])))
    rot = (q * np.sign(np.diag(r))).astype(np.float32)  # Haar-distributed orthogonal matrix
    for lang in args.rotate:
        tw, tv = vocab(lang)
        test = read_dictionary(dicts / f"en-{lang}.5000-6500.approx.txt")
        train = read_dictionary(dicts / f"en-{lang}.0-5000.approx.txt")
        tvr = tv @ rot
        base = bli_evaluate(sv, tv, sw, tw, test)
        rotated = bli_evaluate(sv, tvr, sw, tw, test)
        t0 = time.perf_counter()
        w0 = align(sv, tvr, sw, tw, dictionary=train, iterations=0).W
        t_sup = time.perf_counter() - t0
        sup = bli_evaluate(sv, tvr, sw, tw, test, W=w0)
        t0 = time.perf_counter()
        w, rep = align(sv, tvr, sw, tw, dictionary=train, iterations=args.iterations)
        t_self = time.perf_counter() - t0
        aligned = bli_evaluate(sv, tvr, sw, tw, test, W=w)
        err = float(np.linalg.norm(w - rot) / np.linalg.norm(rot))
        print(f"| en→{lang} | unrotated | {_fmt(base)} | |")
        print(f"| en→{lang} | rotated | {_fmt(rotated)} | |")
        print(f"| en→{lang} | aligned, supervised only | {_fmt(sup)} | {t_sup:.1f} (0) |")
        print(
            f"| en→{lang} | aligned, + self-learning | {_fmt(aligned)} | "
            f"{t_self:.1f} ({len(rep.iterations) - 1}; ‖W−R‖/‖R‖ = {err:.2f}) |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
