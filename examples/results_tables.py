"""Build the result tables of README.md and docs/RESULTS.md from the JSON files committed under docs/results.

Every table of results in those two pages sits between two markers,

    <!-- begin results_tables.py: NAME -->
    ...
    <!-- end results_tables.py: NAME -->

and is written by this script from the JSON files under ``docs/results/<run>/`` (copies of what
``taskspec-rs eval``, ``taskspec-rs analyze`` and ``python -m taskspec_rs.baselines sentence`` wrote; the
command of each run is in ``RUNS`` and ``ANALYSES`` below and in docs/RESULTS.md). Nothing is
aggregated by hand: means, standard deviations and averages over languages are recomputed here from the
per-seed values.

    python examples/results_tables.py           # rewrite the blocks
    python examples/results_tables.py --check   # exit 1 if a block differs from what the JSON files give
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from taskspec_rs.evaluate import ExperimentResult

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
PAGES = (REPO / "README.md", REPO / "docs" / "RESULTS.md")

ALL = "--methods all"
#: run name -> the command that wrote its results.json (copied to docs/results/<name>/results.json).
RUNS = {
    "sib200_train": f"taskspec-rs eval examples/sib200.toml {ALL} --out results/sib200_train",
    "sib200_general": f"taskspec-rs eval examples/sib200.toml {ALL} --set train.vocabulary=general "
    "--out results/sib200_general",
    "semeval16_train": f"taskspec-rs eval examples/semeval16.toml {ALL} --out results/semeval16_train",
    "semeval16_general": f"taskspec-rs eval examples/semeval16.toml {ALL} --set train.vocabulary=general "
    "--out results/semeval16_general",
}
NORM_METHODS = "clwe_fixed,clwe_opt_lp,clwe_opt_orth,clwe_opt_llm_ktask,clwe_opt_llm_csls_ktask,clwe_opt_llm_margin"
for _norm in ("unit_center_unit", "center"):
    RUNS[f"sib200_general_{_norm}"] = (
        f"taskspec-rs eval examples/sib200.toml --methods {NORM_METHODS} --set train.vocabulary=general "
        f"--set train.normalize={_norm} --out results/sib200_general_{_norm}"
    )
#: The earlier training settings (before the defaults followed the paper's reference code).
BEFORE = "--set train.dropout=0.3 --set train.epochs=30 --set train.patience=8 --set 'k_grid=[1,2,3,5,10,20,50]'"
for _task in ("sib200", "semeval16"):
    for _protocol in ("train", "general"):
        _run = f"{_task}_{_protocol}"
        RUNS[f"{_run}_before"] = RUNS[_run].replace(" --out ", f" {BEFORE} --out ").replace(_run, f"{_run}_before")
#: analysis run -> the command that wrote its k_curve.json, alpha.json, twins.json and neighbors.json.
ANALYSES = {
    "analyze_sib200": "taskspec-rs analyze examples/sib200.toml --out results/analyze_sib200",
    "analyze_semeval16": "taskspec-rs analyze examples/semeval16.toml --out results/analyze_semeval16",
    "analyze_sib200_general": "taskspec-rs analyze examples/sib200.toml --set train.vocabulary=general "
    "--out results/analyze_sib200_general",
    "analyze_sib200_words": "taskspec-rs analyze examples/sib200.toml --out results/analyze_sib200_words "
    "--words disease,government,team,travel --lang de,fr,es,nl,da,ja,tr --set seeds=1",
    "analyze_semeval16_words": "taskspec-rs analyze examples/semeval16.toml --out results/analyze_semeval16_words "
    "--words food,service,delicious,rude --set seeds=1",
}
#: Table 6 rows shown in docs/RESULTS.md: (analysis run, target language, source word of the translation).
TABLE6 = (
    ("analyze_sib200_words", "fr", "disease"),
    ("analyze_sib200_words", "es", "team"),
    ("analyze_sib200_words", "tr", "team"),
    ("analyze_sib200_words", "de", "travel"),
    ("analyze_sib200_words", "ja", "travel"),
    ("analyze_semeval16_words", "nl", "delicious"),
    ("analyze_semeval16_words", "es", "rude"),
    ("analyze_sib200_words", "da", "disease"),
)
TASKS = {"sib200": "SIB-200", "semeval16": "SemEval-2016"}
PROTOCOLS = ("train", "general")

PAPER = (
    "clwe_fixed",
    "clwe_fixed_nnmap",
    "clwe_opt_lp",
    "clwe_opt_llm_k1",
    "clwe_opt_llm_ktask",
    "clwe_opt_llm_ktasklang",
    "monolingual",
)
BEYOND = ("clwe_opt_lp", "clwe_opt_orth", "clwe_opt_llm_ktask", "clwe_opt_llm_csls_ktask", "clwe_opt_llm_margin")
BEGIN = re.compile(r"<!-- begin results_tables\.py: ([\w.-]+) -->\n")


# --------------------------------------------------------------------------- reading


def load(run: str, name: str = "results.json") -> dict:
    return json.loads((RESULTS / run / name).read_text(encoding="utf-8"))


def as_result(data: dict, methods: tuple[str, ...] | None = None) -> ExperimentResult:
    """The per-seed values of a results.json as an :class:`ExperimentResult` (its tables recompute the means)."""
    keep = [m for m in data["results"] if methods is None or m in methods]
    return ExperimentResult(
        runs={m: {lang: r["runs"] for lang, r in data["results"][m].items()} for m in keep},
        k={m: v for m, v in data["k"].items() if m in keep},
        meta=data["meta"],
        diagnostics={m: v for m, v in data.get("diagnostics", {}).items() if m in keep},
        f1_runs={m: {lang: r["runs"] for lang, r in data.get("macro_f1", {}).get(m, {}).items()} for m in keep},
    )


def target_mean(data: dict, method: str, metric: str = "results") -> float:
    """Mean over the target languages of the per-language means (percent)."""
    source = data["meta"]["source_lang"]
    by_lang = data[metric].get(method, {})
    values = [np.mean(r["runs"]) for lang, r in by_lang.items() if lang != source]
    return 100 * float(np.mean(values)) if values else float("nan")


def source_value(data: dict, method: str, metric: str = "results") -> float:
    r = data[metric].get(method, {}).get(data["meta"]["source_lang"])
    return 100 * float(np.mean(r["runs"])) if r else float("nan")


def _num(x: float, signed: bool = False) -> str:
    if np.isnan(x):
        return "–"
    if signed and abs(x) < 0.05:  # no "-0.0"
        return "±0.0"
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def _ks(data: dict, method: str) -> str:
    """Chosen k per seed (one value per seed when it is shared by all targets)."""
    by_lang = data["k"].get(method, {})
    if not by_lang:
        return "–"
    per_lang = list(by_lang.values())
    if all(v == per_lang[0] for v in per_lang):
        return " / ".join(map(str, per_lang[0]))
    flat = [k for v in per_lang for k in v]
    return f"{min(flat)}–{max(flat)} (per language)"


# --------------------------------------------------------------------------- blocks


def accuracy_table(run: str, metric: str = "accuracy", methods: tuple[str, ...] = PAPER) -> list[str]:
    result = as_result(load(run), methods)
    return [result.table(markdown=True, metric=metric)]


def protocol_table(task: str) -> list[str]:
    """Per method: average accuracy and macro-F1 over the targets under both protocols, and the source test."""
    train, general = load(f"{task}_train"), load(f"{task}_general")
    lines = [
        "| method | accuracy, train vocabulary | accuracy, general | Δ | macro-F1, train | macro-F1, general | Δ "
        "| en test, train | en test, general |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method in PAPER + ("clwe_opt_orth", "clwe_opt_llm_csls_ktask", "clwe_opt_llm_margin"):
        if method not in train["results"] or method not in general["results"]:
            continue
        a = [target_mean(d, method) for d in (train, general)]
        f = [target_mean(d, method, "macro_f1") for d in (train, general)]
        e = [source_value(d, method) for d in (train, general)]
        cells = [_num(a[0]), _num(a[1]), _num(a[0] - a[1], True), _num(f[0]), _num(f[1]), _num(f[0] - f[1], True)]
        lines.append(f"| {method} | " + " | ".join(cells + [_num(e[0]), _num(e[1])]) + " |")
    lines += ["", "Chosen k per seed (seeds 0 / 1 / 2):", ""]
    for method in ("clwe_opt_llm_ktask", "clwe_opt_llm_csls_ktask", "clwe_opt_llm_ktasklang"):
        lines.append(f"- `{method}`: train vocabulary {_ks(train, method)}; general {_ks(general, method)}")
    margins = [
        "/".join(str(d["margin"]) for d in next(iter(data["diagnostics"]["clwe_opt_llm_margin"].values())))
        for data in (train, general)
    ]
    lines.append(f"- `clwe_opt_llm_margin` margin: train vocabulary {margins[0]}; general {margins[1]}")
    sizes = [data["meta"].get("vocabulary_size") for data in (train, general)]
    if all(sizes):
        lines.append(f"- source vocabulary: {sizes[0]} words (train) / {sizes[1]} (general)")
    return lines


def claims_table(task: str) -> list[str]:
    """The paper's comparisons as differences of average target accuracy (points), for both protocols."""
    rows = [
        ("`ktask` − `clwe_fixed`", "clwe_opt_llm_ktask", "clwe_fixed"),
        ("`ktask` − `k1`", "clwe_opt_llm_ktask", "clwe_opt_llm_k1"),
        ("`ktasklang` − `ktask`", "clwe_opt_llm_ktasklang", "clwe_opt_llm_ktask"),
        ("`lp` − `ktask`", "clwe_opt_lp", "clwe_opt_llm_ktask"),
        ("`lp` − `clwe_fixed`", "clwe_opt_lp", "clwe_fixed"),
        ("`nnmap` − `clwe_fixed`", "clwe_fixed_nnmap", "clwe_fixed"),
        ("`monolingual` − `clwe_fixed`", "monolingual", "clwe_fixed"),
    ]
    runs = {p: load(f"{task}_{p}") for p in PROTOCOLS}
    lines = [
        "| comparison (average target accuracy, points) | train vocabulary | general |",
        "|---|---|---|",
    ]
    for label, a, b in rows:
        cells = [_num(target_mean(d, a) - target_mean(d, b), True) for d in runs.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    closed = []
    for d in runs.values():
        gap = target_mean(d, "monolingual") - target_mean(d, "clwe_fixed")
        closed.append(f"{100 * (target_mean(d, 'clwe_opt_llm_ktask') - target_mean(d, 'clwe_fixed')) / gap:.0f} %")
    lines.append("| share of the `clwe_fixed` → `monolingual` gap that `ktask` closes | " + " | ".join(closed) + " |")
    return lines


def beyond_claims_table() -> list[str]:
    """The extensions against the paper's methods: differences of average target accuracy (points)."""
    rows = [
        ("`csls_ktask` − `ktask`", "clwe_opt_llm_csls_ktask", "clwe_opt_llm_ktask"),
        ("`margin` − `ktask`", "clwe_opt_llm_margin", "clwe_opt_llm_ktask"),
        ("`orth` − `lp`", "clwe_opt_orth", "clwe_opt_lp"),
    ]
    runs = {f"{name}, {p}": load(f"{task}_{p}") for task, name in TASKS.items() for p in PROTOCOLS}
    lines = ["| average target accuracy, points | " + " | ".join(runs) + " |", "|" + "---|" * (len(runs) + 1)]
    for label, a, b in rows:
        cells = [_num(target_mean(d, a) - target_mean(d, b), True) for d in runs.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def normalize_table() -> list[str]:
    """SIB-200, general vocabulary: average target accuracy / macro-F1 and English test, per normalisation."""
    norms = {
        "none": "sib200_general",
        "center": "sib200_general_center",
        "unit_center_unit": "sib200_general_unit_center_unit",
    }
    runs = {name: load(run) for name, run in norms.items()}
    lines = [
        "| method | "
        + " | ".join(f"`{n}`: accuracy / macro-F1" for n in norms)
        + " | en test: "
        + " / ".join(norms)
        + " |",
        "|" + "---|" * (len(norms) + 2),
    ]
    for method in NORM_METHODS.split(","):
        cells = [f"{_num(target_mean(d, method))} / {_num(target_mean(d, method, 'macro_f1'))}" for d in runs.values()]
        en = " / ".join(_num(source_value(d, method)) for d in runs.values())
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {en} |")
    lines += [
        "",
        "Chosen k (`ktask`, per seed): " + "; ".join(f"`{n}` {_ks(d, 'clwe_opt_llm_ktask')}" for n, d in runs.items()),
    ]
    return lines


def hubness_table(run: str) -> list[str]:
    """Cosine vs CSLS neighbours: top-10 share / max in-degree at k = 10, and the trained share at the chosen k."""
    data = load(run)
    diag = data["diagnostics"]
    langs = [lang for lang in data["meta"]["targets"] if lang in diag.get("clwe_opt_llm_ktask", {})]
    lines = ["| | " + " | ".join(langs) + " |", "|" + "---|" * (len(langs) + 1)]
    for label, method in (("cosine", "clwe_opt_llm_ktask"), ("CSLS", "clwe_opt_llm_csls_ktask")):
        cells = [
            f"{100 * np.mean([d['top_share_k10'] for d in diag[method][lang]]):.1f} / "
            f"{np.mean([d['max_in_degree_k10'] for d in diag[method][lang]]):.0f}"
            for lang in langs
        ]
        lines.append(f"| {label}: top-10 share / max in-degree | " + " | ".join(cells) + " |")
    for label, method in (("cosine (ktask)", "clwe_opt_llm_ktask"), ("CSLS (csls_ktask)", "clwe_opt_llm_csls_ktask")):
        cells = [f"{100 * np.mean([d['trained_share'] for d in diag[method][lang]]):.0f}" for lang in langs]
        lines.append(f"| {label}: trained % | " + " | ".join(cells) + " |")
    return lines


def elapsed_lines() -> list[str]:
    lines = ["| run | command | wall time (`meta.elapsed_s`) |", "|---|---|---|"]
    for run, command in RUNS.items():
        lines.append(f"| `{run}` | `{command}` | {load(run)['meta']['elapsed_s']:.0f} s |")
    return lines


def readme_table() -> list[str]:
    methods = ("clwe_fixed", "clwe_opt_lp", "clwe_opt_llm_ktask", "monolingual")
    lines = [
        "| task (targets), vocabulary | " + " | ".join(f"`{m}`" for m in methods) + " |",
        "|" + "---|" * (len(methods) + 1),
    ]
    for task, name in TASKS.items():
        for protocol in PROTOCOLS:
            data = load(f"{task}_{protocol}")
            n = len(data["meta"]["targets"])
            cells = [f"{_num(target_mean(data, m))} / {_num(target_mean(data, m, 'macro_f1'))}" for m in methods]
            label = "train (the paper's)" if protocol == "train" else "general"
            lines.append(f"| {name} ({n}), {label} | " + " | ".join(cells) + " |")
    return lines


def _pct(values, std: bool = True) -> str:
    """Mean (±sample std) of fractions, in %."""
    values = 100 * np.asarray(list(values), dtype=float)
    if len(values) > 1 and std:
        return f"{values.mean():.1f} ±{values.std(ddof=1):.1f}"
    return f"{values.mean():.1f}"


def k_curve_table(run: str) -> list[str]:
    """Figure 3 as a table: per k, the source-dev accuracy of the self-projection and the target test accuracy
    (mean over seeds; the last column is the mean over targets, with its min–max over the seeds)."""
    data = load(run, "k_curve.json")
    seeds, langs = [str(s) for s in data["seeds"]], list(data["targets"])
    lines = [
        "| k | en dev (self-projection) | " + " | ".join(langs) + " | mean over targets (min–max over seeds) |",
        "|" + "---|" * (len(langs) + 3),
    ]
    for k in map(str, data["k"]):
        per_seed = [np.mean([data["targets"][lang][s][k] for lang in langs]) for s in seeds]
        cells = [_pct([data["source_dev"][s][k] for s in seeds], std=False)]
        cells += [_pct([data["targets"][lang][s][k] for s in seeds], std=False) for lang in langs]
        cells.append(f"{100 * np.mean(per_seed):.1f} ({100 * min(per_seed):.1f}–{100 * max(per_seed):.1f})")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    tuned = " / ".join(str(data["k_task"][s]) for s in seeds)
    return lines + ["", f"Tuned k (`ktask`, seeds {' / '.join(seeds)}): {tuned}."]


def _pooled_alpha(languages: dict) -> dict:
    """|α| summaries of the words without a twin of several languages, pooled over their words."""
    parts = [v["without_twin"] for v in languages.values() if v["without_twin"].get("words")]
    words = np.array([p["words"] for p in parts], dtype=float)
    by_rank = np.array([p["mean_abs_by_rank"] for p in parts])
    mean_by_rank = (words[:, None] * by_rank).sum(axis=0) / words.sum()
    others = [p["others_mean"] for p in parts]
    return {
        "words": int(words.sum()),
        "nearest_mean": float(mean_by_rank[0]),
        "others_mean": float(np.dot(words, others) / words.sum()) if None not in others else float("nan"),
        "nearest_share": float(mean_by_rank[0] / mean_by_rank.sum()),
        "nearest_largest": float(np.dot(words, [p["nearest_largest_fraction"] for p in parts]) / words.sum()),
        "by_rank": mean_by_rank,
    }


def alpha_table(runs: dict[str, str]) -> list[str]:
    """Figure 2 as a table: |α| at each seed's tuned k, pooled over the target words without an identical twin."""
    bar = "\\|α\\|"
    lines = [
        f"| task, seed | k | words | mean {bar}: nearest | mean {bar}: each other neighbour "
        f"| nearest's share of Σ{bar} | nearest has the largest {bar} | mean {bar} by rank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        for seed, entry in load(run, "alpha.json")["seeds"].items():
            p = _pooled_alpha(entry["languages"])
            ranks = ", ".join(f"{x:.2f}" for x in p["by_rank"][:5]) + (" …" if len(p["by_rank"]) > 5 else "")
            others = "–" if np.isnan(p["others_mean"]) else f"{p['others_mean']:.3f}"
            lines.append(
                f"| {name}, seed {seed} | {entry['k']} | {p['words']:,} | {p['nearest_mean']:.3f} | {others} | "
                f"{100 * p['nearest_share']:.0f} % | {100 * p['nearest_largest']:.0f} % | {ranks} |"
            )
    return lines


def twin_alpha_table(runs: dict[str, str]) -> list[str]:
    """The weight of the identical twin at each seed's tuned k (mean over the target languages)."""
    lines = [
        "| task, seed | k | nearest neighbour is the twin | mean α of the twin | twin α ≥ 0.9 |",
        "|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        for seed, entry in load(run, "alpha.json")["seeds"].items():
            langs = [v for v in entry["languages"].values() if v["nearest_is_twin"] is not None]
            cells = [
                _pct([v["nearest_is_twin"] for v in langs], std=False) + " %",
                f"{np.mean([v['twin_alpha_mean'] for v in langs if v['twin_alpha_mean'] is not None]):.3f}",
                _pct([v["twin_alpha_about_1"] for v in langs], std=False) + " %",
            ]
            lines.append(f"| {name}, seed {seed} | {entry['k']} | " + " | ".join(cells) + " |")
    return lines


TWIN_VARIANTS = {
    "as_is": "as it is (`clwe_opt_llm_ktask`)",
    "no_twin_neighbours": "each twin excluded from its word's neighbours",
    "no_twin_words": "twin words removed from the target texts",
}


def twins_table(run: str) -> list[str]:
    """Per target language: the twins, their share of the test tokens, and accuracy at the tuned k with and
    without them (mean ±std over the seeds, %)."""
    data = load(run, "twins.json")
    head = "| | " + " | ".join(data) + " |"
    lines = [head, "|" + "---|" * (len(data) + 1)]
    lines.append(
        "| words with a twin / all words (of the embeddings) | "
        + " | ".join(f"{t['twins_in_vocabulary']:,} / {t['vocabulary']:,}" for t in data.values())
        + " |"
    )
    lines.append(
        "| projected words with a twin in the pool / projected words | "
        + " | ".join(f"{t['projected_twins']:,} / {t['projected_words']:,}" for t in data.values())
        + " |"
    )
    lines.append(
        "| their share of the test tokens | "
        + " | ".join(f"{100 * t['test_token_share']:.1f} %" for t in data.values())
        + " |"
    )
    for variant, label in TWIN_VARIANTS.items():
        cells = [_pct([s["accuracy_at_k_task"][variant] for s in t["seeds"].values()]) for t in data.values()]
        lines.append(f"| accuracy: {label} | " + " | ".join(cells) + " |")
    return lines


def twins_summary_table(runs: dict[str, str]) -> list[str]:
    """Mean over targets and seeds of the accuracy at the tuned k, per twin variant, for several analyses;
    and the median of the k that the target test set would choose."""
    data = {name: load(run, "twins.json") for name, run in runs.items()}
    lines = ["| variant | " + " | ".join(data) + " |", "|" + "---|" * (len(data) + 1)]
    for variant, label in TWIN_VARIANTS.items():
        cells = []
        for twins in data.values():
            values = [s["accuracy_at_k_task"][variant] for t in twins.values() for s in t["seeds"].values()]
            cells.append(f"{100 * np.mean(values):.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for key, label in (("best_k_on_test", "test set"), ("best_k_on_dev_head", "first 100 target dev examples")):
        for variant, vlabel in TWIN_VARIANTS.items():
            cells = []
            for twins in data.values():
                ks = [s[key][variant] for t in twins.values() for s in t["seeds"].values() if s[key][variant]]
                cells.append(f"{np.median(ks):g} ({min(ks)}–{max(ks)})" if ks else "–")
            lines.append(
                f"| best k on the {label}, median (range): {vlabel.split(' (')[0]} | " + " | ".join(cells) + " |"
            )
    return lines


def neighbors_table() -> list[str]:
    """Table 6: chosen target words, their neighbours among the words of their language in both spaces."""
    lines = ["| word (translation of) | lang | general space | task-specific space (LLM, seed 0, tuned k) |"]
    lines.append("|---|---|---|---|")
    for run, lang, source_word in TABLE6:
        table = load(run, "neighbors.json")
        row = next((r for r in table["targets"].get(lang, []) if r["source_word"] == source_word), None)
        if row is None:
            raise SystemExit(f"{run}/neighbors.json: no {lang} row for {source_word!r}")

        def cell(pairs: list) -> str:
            return ", ".join(w for w, _ in pairs).replace("|", "\\|")

        word = f"{row['word']} ({source_word})"
        lines.append(f"| {word} | {lang} | {cell(row['general'])} | {cell(row['task_specific'])} |")
    ks = sorted({load(run, "neighbors.json")["k_task"] for run, _, _ in TABLE6})
    return lines + ["", "Tuned k of the projection: " + " / ".join(map(str, ks)) + " (SIB-200 / SemEval-2016)."]


def sentence_table(task: str) -> list[str]:
    """The sentence-encoder baseline beside `clwe_opt_llm_ktask` and `clwe_fixed` (accuracy and macro-F1, %)."""
    base, ours = load(f"sentence_{task}", "baseline.json"), load(f"{task}_train")
    source, targets = ours["meta"]["source_lang"], list(ours["meta"]["targets"])
    langs = [source] + targets
    lines = ["| | " + " | ".join(langs) + " | avg |", "|" + "---|" * (len(langs) + 2)]
    for metric, mname in (("accuracy", "results"), ("macro_f1", "macro_f1")):
        label = "accuracy" if metric == "accuracy" else "macro-F1"
        cells = [_pct(base["results"][lang][metric]["runs"], std=False) for lang in langs]
        avg = 100 * np.mean([np.mean(base["results"][lang][metric]["runs"]) for lang in targets])
        lines.append(f"| sentence encoder + LR, {label} | " + " | ".join(cells) + f" | {avg:.1f} |")
        for method in ("clwe_opt_llm_ktask", "clwe_fixed"):
            cells = [_pct(ours[mname][method][lang]["runs"]) for lang in langs]
            lines.append(
                f"| `{method}`, {label} | " + " | ".join(cells) + f" | {_num(target_mean(ours, method, mname))} |"
            )
    cs = ", ".join(str(c["C"]) for c in base["choices"])
    return lines + ["", f"C chosen on the English dev set, per seed: {cs}."]


def timing_table() -> list[str]:
    """Inference cost per 1,000 sentences: sentence encoder + LR against the bag-of-embeddings model."""
    data = {TASKS[t]: load(f"sentence_{t}", "baseline.json")["timing"] for t in ("sib200", "semeval16")}
    lines = ["| seconds per 1,000 sentences | " + " | ".join(data) + " |", "|" + "---|" * (len(data) + 1)]
    enc = [t["sentence_encoder_lr_s_per_1000"] for t in data.values()]
    boe = [t["boe_s_per_1000"] for t in data.values()]
    lines.append("| sentence encoder + LR | " + " | ".join(f"{x:.2f} s" for x in enc) + " |")
    lines.append("| bag-of-embeddings model | " + " | ".join(f"{x:.3f} s" for x in boe) + " |")
    lines.append("| ratio | " + " | ".join(f"{a / b:.0f}×" for a, b in zip(enc, boe)) + " |")
    t = next(iter(data.values()))
    n = ", ".join(f"{v['sentences']}" for v in data.values())
    return lines + [
        "",
        f"English test sentences ({n}), raw text to label, {t['threads']} thread{'s' * (t['threads'] != 1)}, "
        f"minimum of {t['repeats']} "
        f"runs; CPU: {t['cpu']}.",
    ]


def defaults_table() -> list[str]:
    """Average target accuracy under the earlier training settings and under today's defaults, and ktask's k."""
    runs = [(f"{TASKS[t]}, {p}", f"{t}_{p}") for t in TASKS for p in PROTOCOLS]
    lines = ["| method | " + " | ".join(name for name, _ in runs) + " |", "|" + "---|" * (len(runs) + 1)]
    for method in PAPER:
        cells = []
        for _, run in runs:
            before, now = target_mean(load(f"{run}_before"), method), target_mean(load(run), method)
            cells.append(f"{_num(before)} → {_num(now)} ({_num(now - before, True)})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    cells = [
        f"{_ks(load(f'{run}_before'), 'clwe_opt_llm_ktask')} → {_ks(load(run), 'clwe_opt_llm_ktask')}"
        for _, run in runs
    ]
    lines.append("| `ktask`: k per seed | " + " | ".join(cells) + " |")
    cells = [
        " → ".join(_num(source_value(load(name), "clwe_opt_llm_ktask")) for name in (f"{run}_before", run))
        for _, run in runs
    ]
    lines.append("| `opt` model, English test | " + " | ".join(cells) + " |")
    return lines


def commands_table() -> list[str]:
    lines = ["| files under docs/results/ | command |", "|---|---|"]
    for run, command in ANALYSES.items():
        lines.append(f"| `{run}/` | `{command}` |")
    return lines


def blocks() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {
        "readme-summary": readme_table(),
        "runs": elapsed_lines(),
        "beyond-claims": beyond_claims_table(),
        "sib200-normalize": normalize_table(),
        "analysis-commands": commands_table(),
        "defaults-change": defaults_table(),
        "alpha": alpha_table({"SIB-200": "analyze_sib200", "SemEval": "analyze_semeval16"}),
        "twin-alpha": twin_alpha_table({"SIB-200": "analyze_sib200", "SemEval": "analyze_semeval16"}),
        "twins-summary": twins_summary_table(
            {
                "SIB-200 (train)": "analyze_sib200",
                "SIB-200 (general)": "analyze_sib200_general",
                "SemEval (train)": "analyze_semeval16",
            }
        ),
        "sib200-twins": twins_table("analyze_sib200"),
        "table6": neighbors_table(),
        "sentence-timing": timing_table(),
    }
    for task in TASKS:
        out[f"{task}-k-curve"] = k_curve_table(f"analyze_{task}")
        out[f"{task}-sentence"] = sentence_table(task)
    for norm in ("center", "unit_center_unit"):
        run = f"sib200_general_{norm}"
        out[f"{run}-accuracy"] = accuracy_table(run, methods=tuple(NORM_METHODS.split(",")))
    for task in TASKS:
        out[f"{task}-protocols"] = protocol_table(task)
        out[f"{task}-claims"] = claims_table(task)
        for protocol in PROTOCOLS:
            run = f"{task}_{protocol}"
            out[f"{run}-accuracy"] = accuracy_table(run)
            out[f"{run}-f1"] = accuracy_table(run, "macro_f1")
            out[f"{run}-beyond"] = accuracy_table(run, methods=BEYOND)
            out[f"{run}-hubness"] = hubness_table(run)
    return out


# --------------------------------------------------------------------------- pages


def render(text: str, tables: dict[str, list[str]], page: Path) -> str:
    """``text`` with every marked block replaced by its table."""
    out, pos = [], 0
    for match in BEGIN.finditer(text):
        name = match.group(1)
        end_marker = f"<!-- end results_tables.py: {name} -->"
        end = text.find(end_marker, match.end())
        if end < 0:
            raise SystemExit(f"{page}: block {name} has no end marker")
        if name not in tables:
            raise SystemExit(f"{page}: unknown block {name} (known: {', '.join(sorted(tables))})")
        out += [text[pos : match.end()], "\n".join(tables[name]) + "\n"]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the pages are up to date")
    args = parser.parse_args(argv)
    tables = blocks()
    stale = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        new = render(text, tables, page)
        if new != text:
            stale.append(page)
            if not args.check:
                tmp = page.with_name(page.name + ".tmp")
                tmp.write_text(new, encoding="utf-8")
                tmp.replace(page)
    if args.check and stale:
        print("out of date: " + ", ".join(str(p.relative_to(REPO)) for p in stale), file=sys.stderr)
        return 1
    print(("checked " if args.check else "wrote ") + ", ".join(str(p.relative_to(REPO)) for p in PAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
