"""Build the result tables of README.md and docs/RESULTS.md from the committed ``results.json`` files.

Every table of results in those two pages sits between two markers,

    <!-- begin results_tables.py: NAME -->
    ...
    <!-- end results_tables.py: NAME -->

and is written by this script from ``docs/results/<run>/results.json`` (copies of what ``taskspec-rs eval``
wrote; the command of each run is in ``RUNS`` below and in docs/RESULTS.md). Nothing is aggregated by hand:
means, standard deviations and averages over languages are recomputed here from the per-seed values.

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


def load(run: str) -> dict:
    return json.loads((RESULTS / run / "results.json").read_text(encoding="utf-8"))


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


def blocks() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {
        "readme-summary": readme_table(),
        "runs": elapsed_lines(),
        "beyond-claims": beyond_claims_table(),
        "sib200-normalize": normalize_table(),
    }
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
