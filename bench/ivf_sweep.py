"""Recall and time of the IVF backend for several ``nprobe`` (and ``nlist`` / ``spill``) values: the knob table.

Synthetic embedding-like data (bench/datagen.py), d=300::

    python bench/ivf_sweep.py --sources 200000 --targets 200000 --nprobe auto,1,2,3,4,6,8

Real cross-lingual vectors (English base; every other language as queries, and
the English self-search with exclude_self)::

    python bench/ivf_sweep.py --real ../shared/data/vectors/use_m3_512d_fp16.npz

Recall@10 is measured against the exact search on ``--sample`` query rows; the
exact search time is measured on that sample and scaled linearly to all
queries (its cost is exactly linear in the number of queries).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import taskspec_rs as ts
from datagen import embedding_like

K = 10


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def _ints(text: str) -> list:
    """Comma-separated ints; ``auto`` stands for ``None`` (automatic ``nprobe``)."""
    return [None if v == "auto" else int(v) for v in text.split(",") if v]


def synthetic(args: argparse.Namespace) -> None:
    x = embedding_like(args.sources, seed=11)
    y = embedding_like(args.targets, seed=12)
    sample = np.random.default_rng(0).choice(args.targets, min(args.sample, args.targets), replace=False)
    t = time.perf_counter()
    exact = ts.knn(y[sample], x, K, num_threads=args.threads)[1]
    exact_s = (time.perf_counter() - t) * args.targets / len(sample)
    print(f"{args.sources} sources x {args.targets} targets, d={x.shape[1]}, k={K}, {args.threads} threads")
    print(f"exact: {exact_s:.2f} s (timed on {len(sample)} targets, scaled linearly)")
    for nlist in _ints(args.nlist) or [None]:
        for spill in _ints(args.spill) or [None]:
            t = time.perf_counter()
            index = ts.IvfIndex(x, nlist=nlist, spill=spill, num_threads=args.threads)
            build = time.perf_counter() - t
            print(f"{index}: build {build:.2f} s")
            for nprobe in _ints(args.nprobe):
                if nprobe is not None and nprobe > index.nlist:
                    continue
                t = time.perf_counter()
                idx = index.search(y, K, nprobe=nprobe)[1]
                search = time.perf_counter() - t
                r = recall(idx[sample], exact)
                label = f"{index.last_nprobe:3d}" + (" (automatic)" if nprobe is None else "")
                print(
                    f"  nprobe={label}  search {search:6.2f} s  build+search {build + search:6.2f} s"
                    f"  speed-up {exact_s / (build + search):5.1f}x  recall@10 {r:.3f}"
                )


def real(args: argparse.Namespace) -> None:
    z = np.load(args.real)
    langs = sorted(key.split("__")[0] for key in z.files if key.endswith("__vecs"))
    x = z["en__vecs"].astype(np.float32)
    queries = {lang: z[f"{lang}__vecs"].astype(np.float32) for lang in langs if lang != "en"}
    truth = {lang: ts.knn(q, x, K)[1] for lang, q in queries.items()}
    self_truth = ts.knn(x, x, K, exclude_self=True)[1]
    index = ts.IvfIndex(x, num_threads=args.threads)
    print(f"English base {x.shape[0]} x {x.shape[1]}: {index}")
    for nprobe in _ints(args.nprobe) or [None]:
        if nprobe is not None and nprobe > index.nlist:
            continue
        index.nprobe = nprobe
        rows, chosen = {}, {}
        for lang, q in queries.items():
            rows[lang] = recall(index.search(q, K)[1], truth[lang])
            chosen[lang] = index.last_nprobe
        rows["en (self)"] = recall(ts.knn(x, x, K, backend="ivf", index=index, exclude_self=True)[1], self_truth)
        chosen["en (self)"] = index.last_nprobe
        label = "automatic" if nprobe is None else f"nprobe={nprobe}"
        auto = nprobe is None
        cells = "  ".join(f"{lang} {r:.3f}" + (f" (nprobe {chosen[lang]})" if auto else "") for lang, r in rows.items())
        print(f"  {label:10s}  mean {np.mean(list(rows.values())):.3f}  min {min(rows.values()):.3f}  {cells}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", type=int, default=200_000)
    p.add_argument("--targets", type=int, default=200_000)
    p.add_argument("--nlist", default="", help="comma-separated; default: the index default")
    p.add_argument("--spill", default="", help="comma-separated; default: the index default")
    p.add_argument("--nprobe", default="auto,1,2,3,4,6,8", help="comma-separated; auto: chosen per search")
    p.add_argument("--sample", type=int, default=3000, help="query rows checked against the exact search")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--real", default="", help="an .npz of <lang>__vecs arrays (English is the base)")
    args = p.parse_args()
    real(args) if args.real else synthetic(args)


if __name__ == "__main__":
    main()
