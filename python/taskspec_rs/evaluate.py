"""Cross-lingual experiments: all methods × target languages × seeds.

Methods (names used in every output):

``clwe_fixed``
    Embedding layer frozen to the general vectors; the target is classified
    with its own general vectors.
``clwe_fixed_nnmap``
    As ``clwe_fixed`` plus two token-wise tanh layers before the mean.
``clwe_opt_lp``
    Embeddings updated in training; target vectors by the linear projection.
``clwe_opt_orth``
    As ``clwe_opt_lp`` with an orthogonal (Procrustes) map instead of least squares.
``clwe_opt_llm_k1`` / ``clwe_opt_llm_ktask`` / ``clwe_opt_llm_ktasklang``
    Embeddings updated; target vectors by the locally linear mapping with
    k = 1 / k tuned on the source dev set (source vocabulary projected onto
    itself, never using a word as its own neighbour) / k tuned on the first
    ``tasklang_dev_size`` target dev examples.
``clwe_opt_llm_csls_ktask``
    As ``clwe_opt_llm_ktask`` with neighbours ranked by CSLS (hub penalty
    ``r(x)/2`` over ``csls_k`` nearest target words), in the source
    self-projection used for tuning k as well.
``clwe_opt_llm_margin``
    LLM with an adaptive k per word: each word keeps its neighbours (at most
    ``max(k_grid)``) whose cosine is within a margin of its best one; the
    margin is tuned from ``margin_grid`` on the source self-projection.
``monolingual``
    Trained (embeddings updated) and tested in the target language.

All ``clwe_opt_*`` methods share one trained model per seed.  Each seed
``0 … seeds-1`` is a separate training run; results are the mean and the
sample standard deviation over seeds.
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

from .config import ExperimentConfig, LanguageConfig, TaskspecError, TrainOptions
from .data import (
    Dataset,
    Embeddings,
    atomic_write_text,
    encode,
    load_dataset,
    load_embeddings,
    tokenize,
)
from .model import TaskModel, default_device, label_indices, predict_ids
from .project import hub_scores, hubness, lp_project, orthogonal_project
from .train import (
    llm_margin_projections,
    llm_neighbors,
    llm_projections,
    normalize_vectors,
    train_classifier,
)

__all__ = [
    "ExperimentResult",
    "LanguageData",
    "hubness_table",
    "load_language",
    "run_experiment",
    "train_language",
    "write_results",
]

Log = Callable[[str], None]


@dataclass
class LanguageData:
    """Everything loaded for one language of an experiment."""

    config: LanguageConfig
    embeddings: Embeddings
    train: Dataset | None = None
    dev: Dataset | None = None
    test: Dataset | None = None

    @property
    def lang(self) -> str:
        return self.config.lang

    def needed_embeddings(self, datasets: Sequence[Dataset | None]) -> Embeddings:
        """The embedding rows of words occurring in ``datasets`` (projection vocabulary)."""
        words: set[str] = set()
        for ds in datasets:
            if ds is not None:
                for text in ds.texts:
                    words.update(tokenize(text, tokenizer=self.config.tokenizer))
        return self.embeddings.subset(words)


def load_language(
    config: LanguageConfig, *, labels: Sequence[str] | None, rescale: bool = True, normalize: str = "none"
) -> LanguageData:
    """Load embeddings and datasets of a language, checking labels against ``labels``.

    The vectors are first normalised (``normalize``, see
    :func:`~taskspec_rs.train.normalize_vectors`), then, with ``rescale``,
    scaled as in :meth:`Embeddings.rescaled`.
    """
    embeddings = load_embeddings(config.embeddings, key=config.embeddings_key)
    if normalize != "none":
        embeddings = Embeddings(embeddings.words, normalize_vectors(embeddings.vectors, normalize))
    if rescale:
        embeddings = embeddings.rescaled()
    data = LanguageData(config, embeddings)
    for split in ("train", "dev", "test"):
        path = getattr(config, split)
        if path is not None:
            ds = load_dataset(path, options=config.data)
            if labels is not None:
                label_indices(ds, labels)  # raises on unknown labels
            setattr(data, split, ds)
    return data


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


def _accuracy(model: TaskModel, ids: np.ndarray, gold: np.ndarray, vectors: np.ndarray | None = None) -> float:
    network = model.network if vectors is None else model.network.with_embeddings(vectors)
    return float(np.mean(predict_ids(network, ids) == gold))


@dataclass
class _Split:
    """A dataset encoded for a fixed vocabulary."""

    ids: np.ndarray
    gold: np.ndarray

    @classmethod
    def make(cls, ds: Dataset, emb: Embeddings, tokenizer: str, labels: Sequence[str]) -> _Split:
        return cls(encode(ds.texts, emb.index(), tokenizer=tokenizer), label_indices(ds, labels))


def _best_k(scores: dict) -> int:
    """The k (or margin) with the highest accuracy; ties go to the smallest value."""
    return min(scores, key=lambda k: (-scores[k], k))


def _neighbor_stats(idx: np.ndarray, k: int, trained: np.ndarray, words: Sequence[str]) -> dict:
    """Hubness of the first ``k`` neighbours of every word (and at k = 10 for comparisons)."""
    nb = idx[:, :k]
    stats = hubness(nb, len(trained), top=10)
    used = nb[nb >= 0]
    counts = np.bincount(used, minlength=len(trained))
    at10 = hubness(idx[:, :10], len(trained), top=10) if idx.shape[1] >= 10 else None
    return {
        "k": int(k),
        "top_share": round(stats["top_share"], 4),
        "max_in_degree": stats["max_in_degree"],
        "unused_fraction": round(stats["unused_fraction"], 4),
        "trained_share": round(float(trained[used].mean()) if used.size else 0.0, 4),
        "top_share_k10": None if at10 is None else round(at10["top_share"], 4),
        "max_in_degree_k10": None if at10 is None else at10["max_in_degree"],
        "hubs": [words[i] for i in np.argsort(-counts, kind="stable")[:5]],
    }


def train_language(
    lang_data: LanguageData,
    *,
    labels: Sequence[str],
    kind: str,
    options: TrainOptions,
    seed: int,
    dev: Dataset | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> TaskModel:
    """Train a ``kind`` model on ``lang_data``'s training set (``dev`` picks the epoch)."""
    return train_classifier(
        lang_data.train,
        dev,
        lang_data.embeddings,
        labels=labels,
        lang=lang_data.lang,
        tokenizer=lang_data.config.tokenizer,
        kind=kind,
        options=options,
        seed=seed,
        progress=progress,
        desc=desc or f"seed {seed} {kind} {lang_data.lang}",
    )


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
        Methods to run (overrides ``config.methods``).
    progress
        Show tqdm progress bars.
    log
        Receives one-line progress messages (``None``: silent).

    Returns
    -------
    ExperimentResult
    """
    say = log or (lambda _msg: None)
    methods = tuple(methods or config.methods)
    n_seeds = seeds or config.seeds
    opts = config.train
    t0 = time.perf_counter()

    src_cfg = config.source
    say(f"loading source language {src_cfg.lang}")
    source = load_language(src_cfg, labels=config.labels, rescale=opts.rescale, normalize=opts.normalize)
    assert source.train is not None and source.dev is not None
    labels = list(config.labels) if config.labels else sorted(set(source.train.labels))
    for ds in (source.dev, source.test):
        if ds is not None:
            label_indices(ds, labels)
    targets: list[LanguageData] = []
    for t_cfg in config.targets:
        say(f"loading target language {t_cfg.lang}")
        t = load_language(t_cfg, labels=labels, rescale=opts.rescale, normalize=opts.normalize)
        if t.embeddings.dim != source.embeddings.dim:
            raise TaskspecError(
                f"embedding dimension mismatch: {t_cfg.embeddings} ({t.lang}) has {t.embeddings.dim},"
                f" source has {source.embeddings.dim}"
            )
        targets.append(t)

    # Encoded evaluation data.  Target vocabularies are restricted to words in the test/dev data.
    dev_size = config.tasklang_dev_size
    tgt_emb = {t.lang: t.needed_embeddings([t.test, t.dev.head(dev_size) if t.dev else None]) for t in targets}
    for t in targets:
        if not tgt_emb[t.lang].words:
            raise TaskspecError(f"{t.lang}: no word of the test data is in {t.config.embeddings}")
    tgt_test = {t.lang: _Split.make(t.test, tgt_emb[t.lang], t.config.tokenizer, labels) for t in targets}
    tgt_dev = {
        t.lang: _Split.make(t.dev.head(dev_size), tgt_emb[t.lang], t.config.tokenizer, labels)
        for t in targets
        if t.dev is not None
    }
    src_test = _Split.make(source.test, source.embeddings, src_cfg.tokenizer, labels) if source.test else None
    # Source dev words for k tuning (projected onto the source vocabulary without themselves).
    src_dev_emb = source.needed_embeddings([source.dev])
    src_index = source.embeddings.index()
    src_dev_rows = np.array([src_index[w] for w in src_dev_emb.words], dtype=np.int64)
    src_dev = _Split.make(source.dev, src_dev_emb, src_cfg.tokenizer, labels)

    result = ExperimentResult()
    result.meta = {
        "source_lang": src_cfg.lang,
        "targets": [t.lang for t in targets],
        "labels": labels,
        "seeds": list(range(n_seeds)),
        "methods": list(methods),
        "k_grid": list(config.k_grid),
        "csls_k": config.csls_k,
        "margin_grid": list(config.margin_grid),
        "device": str(default_device()),
        "train_options": dataclasses.asdict(opts),
        "config": str(config.path) if config.path else None,
    }

    def train(kind: str, lang_data: LanguageData, seed: int, dev: Dataset | None) -> TaskModel:
        say(f"seed {seed}: training {kind} model on {lang_data.lang} ({len(lang_data.train)} examples)")
        return train_language(lang_data, labels=labels, kind=kind, options=opts, seed=seed, dev=dev, progress=progress)

    opt_methods = [m for m in methods if m.startswith("clwe_opt_")]
    penalties: dict[str, np.ndarray] = {}  # CSLS hub penalties r(x) per target language ("src": self-projection)
    seed_bar = tqdm(range(n_seeds), desc="seeds", disable=not progress)
    for seed in seed_bar:
        for method, kind in (("clwe_fixed", "fixed"), ("clwe_fixed_nnmap", "nnmap")):
            if method not in methods:
                continue
            model = train(kind, source, seed, source.dev)
            if src_test is not None:
                result.add(method, src_cfg.lang, _accuracy(model, src_test.ids, src_test.gold))
            for t in targets:
                split = tgt_test[t.lang]
                result.add(method, t.lang, _accuracy(model, split.ids, split.gold, tgt_emb[t.lang].vectors))

        if opt_methods:
            model = train("opt", source, seed, source.dev)
            x_gen, x_spec = source.embeddings.vectors, model.network.word_vectors()
            trained = np.any(x_spec != x_gen, axis=1)
            if src_test is not None:
                acc = _accuracy(model, src_test.ids, src_test.gold)
                for m in opt_methods:
                    result.add(m, src_cfg.lang, acc)
            kmax = max(config.k_grid)
            want = set(methods)
            k_task = k_csls = 1
            margin = 0.0

            def src_score(vectors: np.ndarray, model: TaskModel = model) -> float:
                return _accuracy(model, src_dev.ids, src_dev.gold, vectors)

            if {"clwe_opt_llm_ktask", "clwe_opt_llm_margin"} & want:
                nb = llm_neighbors(x_gen, src_dev_emb.vectors, kmax, self_rows=src_dev_rows)
                if "clwe_opt_llm_ktask" in want:
                    say(f"seed {seed}: tuning k on {src_cfg.lang} dev (self-projection)")
                    proj = llm_projections(
                        x_gen, x_spec, src_dev_emb.vectors, config.k_grid, reg=config.reg, neighbors=nb
                    )
                    scores = {k: src_score(v) for k, v in proj.items()}
                    k_task = _best_k(scores)
                    say(f"seed {seed}: k_task = {k_task} (source dev accuracy {scores[k_task]:.3f})")
                if "clwe_opt_llm_margin" in want:
                    mproj = llm_margin_projections(
                        x_gen, x_spec, src_dev_emb.vectors, config.margin_grid, nb, reg=config.reg
                    )
                    scores = {m: src_score(v) for m, (v, _) in mproj.items()}
                    margin = _best_k(scores)
                    say(f"seed {seed}: margin = {margin} (source dev accuracy {scores[margin]:.3f})")
            if "clwe_opt_llm_csls_ktask" in want:
                if "src" not in penalties:  # r(x) depends on the general vectors only: once for all seeds
                    penalties["src"] = hub_scores(x_gen, x_gen, config.csls_k, exclude_self=True)
                nb = llm_neighbors(
                    x_gen,
                    src_dev_emb.vectors,
                    kmax,
                    self_rows=src_dev_rows,
                    metric="csls",
                    csls_penalty=penalties["src"],
                )
                proj = llm_projections(x_gen, x_spec, src_dev_emb.vectors, config.k_grid, reg=config.reg, neighbors=nb)
                scores = {k: src_score(v) for k, v in proj.items()}
                k_csls = _best_k(scores)
                say(f"seed {seed}: CSLS k_task = {k_csls} (source dev accuracy {scores[k_csls]:.3f})")
            for t in tqdm(targets, desc=f"seed {seed} project", disable=not progress, leave=False):
                y_gen = tgt_emb[t.lang].vectors
                split = tgt_test[t.lang]

                def test_acc(vectors: np.ndarray, split: _Split = split, model: TaskModel = model) -> float:
                    return _accuracy(model, split.ids, split.gold, vectors)

                if "clwe_opt_lp" in want:
                    result.add("clwe_opt_lp", t.lang, test_acc(lp_project(x_gen, x_spec, y_gen)))
                if "clwe_opt_orth" in want:
                    result.add("clwe_opt_orth", t.lang, test_acc(orthogonal_project(x_gen, x_spec, y_gen)))
                want_tl = "clwe_opt_llm_ktasklang" in want and t.lang in tgt_dev
                ks = {1, k_task} | (set(config.k_grid) if want_tl else set())
                want_margin = "clwe_opt_llm_margin" in want
                if {"clwe_opt_llm_k1", "clwe_opt_llm_ktask"} & want or want_tl or want_margin:
                    width = max(ks | ({kmax} if want_margin else set()) | {10})
                    nb = llm_neighbors(x_gen, y_gen, width)
                    proj = llm_projections(x_gen, x_spec, y_gen, ks, reg=config.reg, neighbors=nb)
                    if "clwe_opt_llm_k1" in want:
                        result.add("clwe_opt_llm_k1", t.lang, test_acc(proj[1]))
                        result.add_k("clwe_opt_llm_k1", t.lang, 1)
                    if "clwe_opt_llm_ktask" in want:
                        result.add("clwe_opt_llm_ktask", t.lang, test_acc(proj[k_task]))
                        result.add_k("clwe_opt_llm_ktask", t.lang, k_task)
                        stats = _neighbor_stats(nb[1], k_task, trained, source.embeddings.words)
                        result.add_diagnostics("clwe_opt_llm_ktask", t.lang, stats)
                    if want_tl:
                        dev = tgt_dev[t.lang]
                        scores = {k: _accuracy(model, dev.ids, dev.gold, proj[k]) for k in config.k_grid}
                        k_tl = _best_k(scores)
                        result.add("clwe_opt_llm_ktasklang", t.lang, test_acc(proj[k_tl]))
                        result.add_k("clwe_opt_llm_ktasklang", t.lang, k_tl)
                    if want_margin:
                        cut = (nb[0][:, :kmax], nb[1][:, :kmax])
                        y_spec, counts = llm_margin_projections(x_gen, x_spec, y_gen, [margin], cut, reg=config.reg)[
                            margin
                        ]
                        result.add("clwe_opt_llm_margin", t.lang, test_acc(y_spec))
                        masked = np.where(np.arange(kmax)[None, :] < counts[:, None], cut[1], -1)
                        stats = _neighbor_stats(masked, kmax, trained, source.embeddings.words)
                        stats.update(margin=margin, mean_k=round(float(counts.mean()), 2))
                        stats.pop("top_share_k10"), stats.pop("max_in_degree_k10")
                        result.add_diagnostics("clwe_opt_llm_margin", t.lang, stats)
                if "clwe_opt_llm_csls_ktask" in want:
                    if t.lang not in penalties:
                        csls_k = min(config.csls_k, len(t.embeddings.words))
                        penalties[t.lang] = hub_scores(x_gen, t.embeddings.vectors, csls_k)
                    nb = llm_neighbors(x_gen, y_gen, max(k_csls, 10), metric="csls", csls_penalty=penalties[t.lang])
                    proj = llm_projections(x_gen, x_spec, y_gen, [k_csls], reg=config.reg, neighbors=nb)
                    result.add("clwe_opt_llm_csls_ktask", t.lang, test_acc(proj[k_csls]))
                    result.add_k("clwe_opt_llm_csls_ktask", t.lang, k_csls)
                    stats = _neighbor_stats(nb[1], k_csls, trained, source.embeddings.words)
                    result.add_diagnostics("clwe_opt_llm_csls_ktask", t.lang, stats)

        if "monolingual" in methods:
            for t in targets:
                if t.train is None:
                    continue
                model = train("opt", t, seed, t.dev)
                result.add("monolingual", t.lang, model.accuracy(t.test))
    seed_bar.close()
    # canonical method order
    result.runs = {m: result.runs[m] for m in methods if m in result.runs}
    result.meta["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return result


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
