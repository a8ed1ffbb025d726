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
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import numpy as np
from tqdm.auto import tqdm

from ._io import atomic_write_text, check_writable, deferred_interrupt
from .config import ExperimentConfig
from .errors import TaskspecError
from .experiment import Experiment, NeighborCache, SeedRun, Target, load_experiment
from .methods import METHODS, NEIGHBOR_WIDTH, Method, Outcome
from .model import TaskModel, default_device

__all__ = [
    "ExperimentResult",
    "MethodRun",
    "ModelStore",
    "RunStore",
    "hubness_table",
    "results_markdown",
    "run_experiment",
    "target_model",
    "write_results",
]

Log = Callable[[str], None]

#: What results.json reports per method, language and seed: ``results`` (accuracy) and ``macro_f1``.
METRICS = ("accuracy", "macro_f1")


@dataclass
class ExperimentResult:
    """Accuracies per method, language and seed, plus the chosen k values."""

    runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    k: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    #: ``{method: {lang: [per-seed dict]}}``: chosen margin, neighbour hubness statistics …
    diagnostics: dict[str, dict[str, list[dict]]] = field(default_factory=dict)
    #: Macro-F1 per method, language and seed (as ``runs`` holds accuracy).
    f1_runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, method: str, lang: str, accuracy: float, macro_f1: float | None = None) -> None:
        self.runs.setdefault(method, {}).setdefault(lang, []).append(float(accuracy))
        if macro_f1 is not None:
            self.f1_runs.setdefault(method, {}).setdefault(lang, []).append(float(macro_f1))

    def add_k(self, method: str, lang: str, k: int) -> None:
        self.k.setdefault(method, {}).setdefault(lang, []).append(int(k))

    def add_diagnostics(self, method: str, lang: str, values: dict) -> None:
        self.diagnostics.setdefault(method, {}).setdefault(lang, []).append(values)

    def canonical_order(self, names: Sequence[str]) -> None:
        """Order runs, chosen k and diagnostics by method (table order)."""
        for table in ("runs", "k", "diagnostics", "f1_runs"):
            values = getattr(self, table)
            setattr(self, table, {m: values[m] for m in names if m in values})

    def summary(self, metric: str = "accuracy") -> dict[str, dict[str, dict]]:
        """``{method: {lang: {"mean", "std", "runs"}}}`` of ``metric`` (``"accuracy"`` or ``"macro_f1"``; std:
        sample std, 0 for one run)."""
        out: dict[str, dict[str, dict]] = {}
        for method, by_lang in self._metric(metric).items():
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

    def _metric(self, metric: str) -> dict[str, dict[str, list[float]]]:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        return self.runs if metric == "accuracy" else self.f1_runs

    def to_json(self) -> dict:
        out = {"results": self.summary(), "k": self.k, "meta": self.meta}
        if self.diagnostics:
            out["diagnostics"] = self.diagnostics
        if self.f1_runs:
            out["macro_f1"] = self.summary("macro_f1")
        return out

    def table(self, *, markdown: bool = False, metric: str = "accuracy") -> str:
        """Methods × languages table of mean ``metric`` (± std), in percent."""
        langs = self.languages()
        summary = self.summary(metric)
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
    out_dir: str | Path | None = None,
    resume: bool = False,
    save_models: str | Path | None = None,
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
    out_dir
        If given, the result of every (seed, method) is written there as it
        is finished (``runs/seed<S>/<method>.json``, atomically), next to
        ``runs/manifest.json`` recording the configuration.
    resume
        With ``out_dir``: reuse the (seed, method) results already there
        instead of recomputing them (models are trained only for what is
        left).  The result equals that of an uninterrupted run except
        ``meta["elapsed_s"]``, this call's time.
    save_models
        If given, the deployable target model of every method, target
        language and seed is saved to
        ``save_models/<method>/<lang>/seed<S>/`` (see :class:`ModelStore`);
        ``taskspec-rs predict`` on it reproduces the accuracy reported here.
        A resumed (seed, method) whose models are missing there is computed
        again.

    Returns
    -------
    ExperimentResult

    Raises
    ------
    TaskspecError
        ``resume`` and ``out_dir`` holds a run of another configuration.
    WriteError
        ``out_dir`` cannot be written (checked before any training).
    """
    say = log or (lambda _msg: None)
    names = tuple(m for m in METHODS if m in (methods or config.methods))
    n_seeds = seeds or config.seeds
    t0 = time.perf_counter()
    store = RunStore.open(out_dir, config, resume=resume, log=say) if out_dir is not None else None
    if save_models is not None:
        check_writable(save_models)  # before loading data and training, not after
    exp = load_experiment(config, log=say)
    if store is not None:
        store.start()
    result = ExperimentResult(meta=_meta(exp, n_seeds, names))
    cache = NeighborCache(exp, width=max(max(config.k_grid), NEIGHBOR_WIDTH))
    models = ModelStore(Path(save_models), [t.lang for t in exp.targets], say) if save_models is not None else None
    for seed in tqdm(range(n_seeds), desc="seeds", disable=not progress):
        run = SeedRun(exp, seed, cache, progress=progress, log=say)
        for name in names:
            part = store.load(seed, name) if store is not None else None
            if part is not None and models is not None and not models.has(name, seed, part):
                part = None  # its models were not kept (or not completely): compute it again
            if part is None:
                part = _run_method(METHODS[name], run, progress, models)
                if store is not None:
                    store.save(seed, name, part)
            part.add_to(result, name)
    result.canonical_order(names)
    result.meta["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return result


@dataclass
class MethodRun:
    """One method's results for one seed: accuracy, chosen k, diagnostics and macro-F1 per language (in language
    order)."""

    accuracy: dict[str, float] = field(default_factory=dict)
    k: dict[str, int] = field(default_factory=dict)
    diagnostics: dict[str, dict] = field(default_factory=dict)
    macro_f1: dict[str, float] = field(default_factory=dict)

    def add_to(self, result: ExperimentResult, method: str) -> None:
        for lang, accuracy in self.accuracy.items():
            result.add(method, lang, accuracy, self.macro_f1.get(lang))
            if lang in self.k:
                result.add_k(method, lang, self.k[lang])
            if lang in self.diagnostics:
                result.add_diagnostics(method, lang, self.diagnostics[lang])


def _run_method(method: Method, run: SeedRun, progress: bool, models: ModelStore | None = None) -> MethodRun:
    """One method for one seed: its source test score, its choice of k or margin, then every target (whose
    deployable model goes to ``models`` when given)."""
    exp = run.experiment
    part = MethodRun()
    if method.model != "monolingual" and exp.src_test is not None:
        score = exp.src_test.score(run.model(method.model))
        part.accuracy[exp.source.lang], part.macro_f1[exp.source.lang] = score.accuracy, score.macro_f1
    choice = method.choose(run) if method.choose else None
    desc = f"seed {run.seed} {method.name}"
    for t in tqdm(exp.targets, desc=desc, disable=not progress, leave=False):
        outcome = method.target(run, t, choice)
        if outcome is None:
            continue
        part.accuracy[t.lang] = float(outcome.accuracy)
        if outcome.macro_f1 is not None:
            part.macro_f1[t.lang] = float(outcome.macro_f1)
        if outcome.k is not None:
            part.k[t.lang] = int(outcome.k)
        if outcome.diagnostics is not None:
            part.diagnostics[t.lang] = outcome.diagnostics
        if models is not None:
            models.save(method.name, run.seed, t, outcome)
    return part


class ModelStore:
    """The deployable target models of an eval (``--save-models DIR``).

    ``DIR/<method>/<lang>/seed<S>/`` is a model directory (see
    :meth:`TaskModel.save`) for the whole target embedding vocabulary: the
    network the method scored the target with and its target embeddings.
    The rows of the words of the evaluation data are exactly those the eval
    scored, so ``taskspec-rs predict`` on the target test set reproduces the
    eval's accuracy; the other words are projected the same way.
    ``monolingual`` saves the model trained in the target language.
    """

    def __init__(self, folder: Path, langs: Sequence[str], log: Log) -> None:
        self.folder, self.langs, self.log = folder, list(langs), log

    def path(self, method: str, lang: str, seed: int) -> Path:
        return self.folder / _safe_name(method) / _safe_name(lang) / f"seed{seed}"

    def has(self, method: str, seed: int, part: MethodRun) -> bool:
        """Whether every target model of a finished (seed, method) is in the folder."""
        langs = [lang for lang in self.langs if lang in part.accuracy]
        return all((self.path(method, lang, seed) / "model.json").is_file() for lang in langs)

    def save(self, method: str, seed: int, t: Target, outcome: Outcome) -> None:
        if outcome.model is None:
            return
        path = self.path(method, t.lang, seed)
        target_model(t, outcome, method).save(path, force=True)
        self.log(f"seed {seed}: saved the {method} model for {t.lang} to {path}")


def target_model(t: Target, outcome: Outcome, method: str) -> TaskModel:
    """The deployable model of ``outcome`` for target ``t``: its network with embeddings for every word of the
    target's general vocabulary (those of the evaluation words exactly as scored)."""
    assert outcome.model is not None
    info: dict = {"method": method, "test_accuracy": outcome.accuracy}
    if outcome.k is not None:
        info["k"] = outcome.k
    if outcome.diagnostics and "margin" in outcome.diagnostics:
        info["margin"] = outcome.diagnostics["margin"]
    if outcome.vectors is None:  # already a model of the target language (monolingual)
        return dataclasses.replace(outcome.model, info={**outcome.model.info, **info})
    full = t.data.all_embeddings
    assert outcome.transform is not None
    vectors = np.array(outcome.transform(full.vectors), dtype=np.float32)
    index = full.index()
    vectors[[index[w] for w in t.vocab.words]] = outcome.vectors
    info["source_lang"] = outcome.model.lang
    return outcome.model.with_vocabulary(full.words, vectors, lang=t.lang, tokenizer=t.data.config.tokenizer, info=info)


def _safe_name(name: str) -> str:
    """``name`` as one path component (percent-quoted when it has other characters than ``[A-Za-z0-9_.+-]``)."""
    return name if re.fullmatch(r"[A-Za-z0-9_.+-]+", name) and not name.startswith(".") else quote(name, safe="")


class RunStore:
    """The per-(seed, method) results of an eval, kept in ``DIR/runs`` so that an interrupted run can resume.

    ``runs/manifest.json`` records the configuration (everything that decides
    a result: not the number of seeds or the method list), the device and a
    run id; ``runs/seed<S>/<method>.json`` one finished (seed, method).  A
    record is reused only by a resumed run of the same manifest.
    """

    FORMAT = 1

    def __init__(self, folder: Path, manifest: dict, log: Log, *, new: bool = False) -> None:
        self.folder, self.manifest, self.log, self.new = folder, manifest, log, new

    @classmethod
    def open(cls, out_dir: str | Path, config: ExperimentConfig, *, resume: bool, log: Log) -> RunStore:
        """The run to resume in ``out_dir`` (checked against ``config``), or a new one; writes nothing yet.

        Raises :class:`WriteError` if ``out_dir`` cannot be written, :class:`TaskspecError` if it holds a run
        of another configuration (with ``resume``).
        """
        check_writable(out_dir)  # before loading data and training, not after
        folder = Path(out_dir) / "runs"
        current = {"format": cls.FORMAT, "config": _config_record(config), "device": str(default_device())}
        path = folder / "manifest.json"
        if resume and path.is_file():
            recorded = _read_json(path)
            if recorded is None or recorded.get("format") != cls.FORMAT:
                raise TaskspecError(f"--resume: {path} is not a manifest this version can read")
            differs = _differences(recorded, current)
            if differs:
                raise TaskspecError(
                    f"--resume: {out_dir} holds a run of another configuration (differs in: {', '.join(differs)}); "
                    "use the same configuration, or a new --out"
                )
            log(f"resuming the run in {out_dir}")
            return cls(folder, recorded, log)
        if resume:
            log(f"nothing to resume in {out_dir}: starting a new run there")
        return cls(folder, {**current, "run": uuid.uuid4().hex}, log, new=True)

    def start(self) -> None:
        """Write the manifest of a new run (a resumed run keeps its own)."""
        if self.new:
            text = json.dumps(self.manifest, indent=2, ensure_ascii=False, default=str) + "\n"
            atomic_write_text(self.folder / "manifest.json", text)
            self.new = False

    def _path(self, seed: int, method: str) -> Path:
        return self.folder / f"seed{seed}" / f"{_safe_name(method)}.json"

    def load(self, seed: int, method: str) -> MethodRun | None:
        """The recorded result of ``(seed, method)`` in this run, or ``None``."""
        path = self._path(seed, method)
        rec = _read_json(path) if path.is_file() else None
        if rec is None or (rec.get("run"), rec.get("seed"), rec.get("method")) != (self.manifest["run"], seed, method):
            return None
        self.log(f"seed {seed}: {method} already done, reusing {path}")
        return MethodRun(rec["accuracy"], rec["k"], rec["diagnostics"], rec.get("macro_f1", {}))

    def save(self, seed: int, method: str, part: MethodRun) -> None:
        rec = {"run": self.manifest["run"], "seed": seed, "method": method, **dataclasses.asdict(part)}
        atomic_write_text(self._path(seed, method), json.dumps(rec, indent=1, ensure_ascii=False) + "\n")


def _config_record(config: ExperimentConfig) -> dict:
    """The configuration as JSON data, without what does not change a (seed, method) result."""
    record = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    for key in ("seeds", "methods", "path"):
        record.pop(key, None)
    return record


def _differences(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (the run id of ``recorded`` aside)."""
    out = []
    for key in sorted(set(recorded) | set(current)):
        if key == "run" and not prefix:
            continue
        a, b = recorded.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}".removeprefix("config."))
    return out


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
        "vocabulary_size": len(exp.source.embeddings.words),
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
    """Write ``results.json`` and ``results.md`` atomically into ``out_dir`` (created if needed).

    Each file is replaced atomically, and Ctrl-C is held back until both are
    written, so the two always describe the same run.

    Raises
    ------
    WriteError
        The folder cannot be written (the previous files, if any, are intact).
    """
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_text = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
    md_text = results_markdown(result, title=title)
    with deferred_interrupt():
        atomic_write_text(json_path, json_text)
        atomic_write_text(md_path, md_text)
    return [json_path, md_path]


def results_markdown(result: ExperimentResult, *, title: str = "Results") -> str:
    """The text of ``results.md``: the table, the chosen k / margins, the hubness table."""
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
        *_f1_lines(result),
        *k_lines,
        "",
        *hub_table,
        f"Elapsed: {meta.get('elapsed_s')} s on {meta.get('device')}.",
        "",
    ]
    return "\n".join(md)


def _f1_lines(result: ExperimentResult) -> list[str]:
    """Markdown lines: the macro-F1 table (when the run recorded macro-F1)."""
    if not result.f1_runs:
        return []
    return [
        "Macro-F1 (%) on the same test sets (the mean over labels of each label's F1), mean ±std over seeds:",
        "",
        result.table(markdown=True, metric="macro_f1"),
        "",
    ]
