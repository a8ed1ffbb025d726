"""Cross-lingual experiments: every method × target language × seed.

The methods and what each does are in :mod:`taskspec_rs.methods` (names used
in every output: ``clwe_fixed``, ``clwe_fixed_nnmap``, ``clwe_opt_lp``,
``clwe_opt_orth``, ``clwe_opt_llm_k1``, ``clwe_opt_llm_ktask``,
``clwe_opt_llm_csls_ktask``, ``clwe_opt_llm_margin``,
``clwe_opt_llm_ktasklang``, ``monolingual``). :func:`run_experiment` loads
the experiment once (:func:`~taskspec_rs.experiment.load_experiment`), then
loops over seeds × methods × languages. Each seed ``0 … seeds-1`` is a
separate training run; results are the mean and the sample standard
deviation over seeds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from ._io import atomic_write_text
from .config import ExperimentConfig
from .experiment import Experiment, NeighborCache, SeedRun, load_experiment
from .methods import METHODS, Method
from .model import default_device

__all__ = ["ExperimentResult", "hubness_table", "run_experiment", "write_results"]

Log = Callable[[str], None]


@dataclass
class ExperimentResult:
    """Accuracies per method, language and seed, plus the chosen k values."""

    runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    k: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    #: ``{method: {lang: [per-seed dict]}}``: chosen margin, neighbour hubness statistics …
    diagnostics: dict[str, dict[str, list[dict]]] = field(default_factory=dict)

    def add(self, method: str, lang: str, accuracy: float) -> None:
        self.runs.setdefault(method, {}).setdefault(lang, []).append(float(accuracy))

    def add_k(self, method: str, lang: str, k: int) -> None:
        self.k.setdefault(method, {}).setdefault(lang, []).append(int(k))

    def add_diagnostics(self, method: str, lang: str, values: dict) -> None:
        self.diagnostics.setdefault(method, {}).setdefault(lang, []).append(values)

    def canonical_order(self, names: Sequence[str]) -> None:
        """Order runs, chosen k and diagnostics by method (table order)."""
        for table in ("runs", "k", "diagnostics"):
            values = getattr(self, table)
            setattr(self, table, {m: values[m] for m in names if m in values})

    def summary(self) -> dict[str, dict[str, dict]]:
        """``{method: {lang: {"mean", "std", "runs"}}}`` (std: sample std, 0 for one run)."""
        out: dict[str, dict[str, dict]] = {}
        for method, by_lang in self.runs.items():
            for lang, runs in by_lang.items():
                arr = np.asarray(runs)
                std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
                out.setdefault(method, {})[lang] = {"mean": float(arr.mean()), "std": std, "runs": list(runs)}
        return out

    def languages(self) -> list[str]:
        langs: list[str] = []
        for by_lang in self.runs.values():
            langs += [lang for lang in by_lang if lang not in langs]
        return langs

    def to_json(self) -> dict:
        out = {"results": self.summary(), "k": self.k, "meta": self.meta}
        if self.diagnostics:
            out["diagnostics"] = self.diagnostics
        return out

    def table(self, *, markdown: bool = False) -> str:
        """Methods × languages table of mean accuracy (± std), in percent."""
        langs = self.languages()
        summary = self.summary()
        header = ["method"] + langs + ["avg"]
        rows = []
        for method, by_lang in summary.items():
            cells = [method]
            for lang in langs:
                r = by_lang.get(lang)
                cells.append("–" if r is None else f"{100 * r['mean']:.1f} ±{100 * r['std']:.1f}")
            targets = [r["mean"] for lang, r in by_lang.items() if lang != self.meta.get("source_lang")]
            cells.append(f"{100 * np.mean(targets):.1f}" if targets else "–")
            rows.append(cells)
        if markdown:
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
            return "\n".join(lines)
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

        def fmt(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def run_experiment(
    config: ExperimentConfig,
    *,
    seeds: int | None = None,
    methods: Sequence[str] | None = None,
    progress: bool = False,
    log: Log | None = None,
) -> ExperimentResult:
    """Run every requested method for every target language and seed.

    Parameters
    ----------
    config
        Validated experiment configuration.
    seeds
        Number of seeds (overrides ``config.seeds``).
    methods
        Methods to run (overrides ``config.methods``), names of :data:`~taskspec_rs.methods.METHODS`.
    progress
        Show tqdm progress bars.
    log
        Receives one-line progress messages (``None``: silent).

    Returns
    -------
    ExperimentResult
    """
    say = log or (lambda _msg: None)
    names = tuple(m for m in METHODS if m in (methods or config.methods))
    n_seeds = seeds or config.seeds
    t0 = time.perf_counter()
    exp = load_experiment(config, log=say)
    result = ExperimentResult(meta=_meta(exp, n_seeds, names))
    cache = NeighborCache(exp, width=max(max(config.k_grid), 10))
    for seed in tqdm(range(n_seeds), desc="seeds", disable=not progress):
        run = SeedRun(exp, seed, cache, progress=progress, log=say)
        for name in names:
            _run_method(METHODS[name], run, result, progress)
    result.canonical_order(names)
    result.meta["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return result


def _run_method(method: Method, run: SeedRun, result: ExperimentResult, progress: bool) -> None:
    """One method for one seed: its source test accuracy, its choice of k or margin, then every target."""
    exp = run.experiment
    if method.model != "monolingual" and exp.src_test is not None:
        result.add(method.name, exp.source.lang, exp.src_test.accuracy(run.model(method.model)))
    choice = method.choose(run) if method.choose else None
    desc = f"seed {run.seed} {method.name}"
    for t in tqdm(exp.targets, desc=desc, disable=not progress, leave=False):
        outcome = method.target(run, t, choice)
        if outcome is None:
            continue
        result.add(method.name, t.lang, outcome.accuracy)
        if outcome.k is not None:
            result.add_k(method.name, t.lang, outcome.k)
        if outcome.diagnostics is not None:
            result.add_diagnostics(method.name, t.lang, outcome.diagnostics)


def _meta(exp: Experiment, n_seeds: int, names: Sequence[str]) -> dict:
    config = exp.config
    return {
        "source_lang": exp.source.lang,
        "targets": [t.lang for t in exp.targets],
        "labels": exp.labels,
        "seeds": list(range(n_seeds)),
        "methods": list(names),
        "k_grid": list(config.k_grid),
        "csls_k": config.csls_k,
        "margin_grid": list(config.margin_grid),
        "device": str(default_device()),
        "train_options": dataclasses.asdict(config.train),
        "config": str(config.path) if config.path else None,
    }


def hubness_table(result: ExperimentResult) -> list[str]:
    """Markdown lines: share of neighbour slots taken by the 10 most used source words / max in-degree."""
    diag = {m: v for m, v in result.diagnostics.items() if v and "top_share" in next(iter(v.values()))[0]}
    if not diag:
        return []
    langs = [lang for lang in result.languages() if any(lang in v for v in diag.values())]
    lines = [
        "Neighbour hubness of the target projection (mean over seeds): share of all neighbour slots taken by the "
        "10 most used source words, % / largest in-degree; at the chosen k.",
        "",
        "| method | " + " | ".join(langs) + " |",
        "|" + "---|" * (len(langs) + 1),
    ]
    for method, by_lang in diag.items():
        cells = []
        for lang in langs:
            runs = by_lang.get(lang)
            if not runs:
                cells.append("–")
                continue
            share = 100 * np.mean([d["top_share"] for d in runs])
            cells.append(f"{share:.1f} / {np.mean([d['max_in_degree'] for d in runs]):.0f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_results(result: ExperimentResult, out_dir: str | Path, *, title: str = "Results") -> list[Path]:
    """Write ``results.json`` and ``results.md`` atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    atomic_write_text(json_path, json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    k_lines = []
    for method, by_lang in result.k.items():
        if method == "clwe_opt_llm_k1":
            continue
        ks = ", ".join(f"{lang}: {'/'.join(map(str, v))}" for lang, v in by_lang.items())
        k_lines.append(f"- `{method}` chosen k per seed — {ks}")
    margins = result.diagnostics.get("clwe_opt_llm_margin", {})
    if margins:
        first = next(iter(margins.values()))
        k_lines.append(
            "- `clwe_opt_llm_margin` chosen margin per seed — "
            + "/".join(str(d["margin"]) for d in first)
            + "; mean k per word — "
            + ", ".join(f"{lang}: {np.mean([d['mean_k'] for d in v]):.1f}" for lang, v in margins.items())
        )
    hub_table = hubness_table(result)
    meta = result.meta
    md = [
        f"# {title}",
        "",
        f"Accuracy (%) on the test sets, mean ±std over {len(meta.get('seeds', []))} seed(s); "
        f"source language `{meta.get('source_lang')}` (its column, if present, is the source test set; "
        "`avg` is over target languages).",
        "",
        result.table(markdown=True),
        "",
        *k_lines,
        "",
        *hub_table,
        f"Elapsed: {meta.get('elapsed_s')} s on {meta.get('device')}.",
        "",
    ]
    atomic_write_text(md_path, "\n".join(md))
    return [json_path, md_path]
