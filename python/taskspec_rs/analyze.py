"""Analyses after the paper's Table 6 and Figures 2–3, over every seed of a configuration.

``taskspec-rs analyze CONFIG --out DIR`` trains one ``opt`` model per seed
(seeds ``S … S + seeds − 1``: ``S`` is ``--seed``, default 0, and ``seeds``
comes from the configuration, as in ``eval``) and writes into ``DIR``:

``k_curve.png`` / ``k_curve.json`` (Figure 3)
    Target test accuracy against k, mean over the seeds with a min–max band,
    beside the source-dev accuracy of the self-projection (the ``ktask``
    criterion) and each seed's tuned k.  Analysis only: nothing here chooses k.
``alpha_hist.png`` / ``alpha.json`` (Figure 2)
    The absolute LLM weights ``|α|`` at each seed's tuned k (one panel a
    seed): the nearest neighbour against the others, for the target words
    without an identical twin, and the nearest neighbour of the words with one.
``twins_k_curve.png`` / ``twins.json``
    The identical-twin artefact of one encoder for every language: a target
    word spelled like a source word has the same general vector, so its
    nearest source word is that twin, whose Gram row is zero, and LLM gives
    it a weight of about 1.  Accuracy against k as it is, with each twin
    excluded from its word's neighbours, and with the twin words removed from
    the target texts; how often the nearest neighbour is the twin, and its α.
``neighbors.md`` / ``neighbors.json`` (Table 6)
    For a few source words and, in each target language, their translation
    (the nearest word of the language's data in the general space that is
    spelled differently): the nearest words of the same language in the
    general and in the task-specific space (target task-specific vectors: LLM
    of every word of the language's data with the first seed's tuned k).
``analysis.md``
    An index of the above with the main numbers.

Every file is written atomically (temporary file in ``DIR``, then rename).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ._io import atomic_write, atomic_write_text, check_writable
from .config import ExperimentConfig
from .data import Embeddings, tokenize
from .errors import TaskspecError
from .experiment import Experiment, NeighborCache, SeedRun, Split, Target, load_experiment
from .methods import best_choice, llm_for_ks, source_k_scores
from .neighbors import knn
from .project import llm_weights

__all__ = ["choose_words", "identical_twins", "run_analysis"]

Log = Callable[[str], None]

#: Variants of the twin analysis: the projection as it is, each twin excluded from its word's neighbours,
#: and the twin words removed from the target texts.
VARIANTS = ("as_is", "no_twin_neighbours", "no_twin_words")

#: A twin's LLM weight counts as "about 1" from here on.
TWIN_ALPHA = 0.9


def choose_words(
    texts: Sequence[str], tokenizer: str, emb: Embeddings, x_spec: np.ndarray, *, n: int = 4, pool: int = 300
) -> list[str]:
    """Default words for Table 6: among the ``pool`` most frequent training words,
    the ``n`` whose embedding moved most in training (relative change)."""
    index = emb.index()
    counts = Counter(w for t in texts for w in tokenize(t, tokenizer=tokenizer) if w in index)
    frequent = [w for w, _ in counts.most_common(pool)]
    if not frequent:
        raise TaskspecError("no training word is in the embedding vocabulary")
    rows = np.array([index[w] for w in frequent])
    change = np.linalg.norm(x_spec[rows] - emb.vectors[rows], axis=1) / np.linalg.norm(emb.vectors[rows], axis=1)
    order = np.argsort(-change, kind="stable")[:n]
    return [frequent[i] for i in order]


def identical_twins(source: Embeddings, target: Embeddings, *, tol: float = 1e-5) -> np.ndarray:
    """For every target word, the source row spelled the same whose vector points the same way, else -1.

    One multilingual encoder applied to single words gives a word the same
    vector in every language; after a per-language rescaling the two vectors
    are still parallel (cosine 1 within ``tol``).
    """
    index = source.index()
    twin = np.full(len(target.words), -1, dtype=np.int64)
    pairs = [(i, index[w]) for i, w in enumerate(target.words) if w in index]
    if not pairs:
        return twin
    t_rows, s_rows = (np.array(p, dtype=np.int64) for p in zip(*pairs))
    a = target.vectors[t_rows].astype(np.float64)
    b = source.vectors[s_rows].astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.einsum("ij,ij->i", a, b) / np.where(norms > 0, norms, 1.0)
    same = cos >= 1.0 - tol
    twin[t_rows[same]] = s_rows[same]
    return twin


def _neighbours(query: np.ndarray, base: np.ndarray, words: Sequence[str], n: int, skip: int | None = None) -> list:
    """The ``n`` nearest rows of ``base`` to ``query`` as ``(word, cosine)``, never row ``skip``."""
    k = min(n, len(base) - (skip is not None))
    exclude = None if skip is None else [skip]
    sims, idx = knn(query[None, :], base, k, exclude=exclude)
    return [(words[j], round(float(s), 3)) for s, j in zip(sims[0], idx[0])]


# --------------------------------------------------------------------------- computing


@dataclass
class _Lang:
    """What the analysis of one target language needs, independent of the seed."""

    target: Target
    twin: np.ndarray  # per projection-vocabulary row: the source row with the same vector, or -1
    idx: dict[str, np.ndarray]  # "as_is" / "no_twin_neighbours" -> neighbours in the general space, best first
    keep: np.ndarray  # the vocabulary rows without a twin
    reduced: tuple[Split, Optional[Split]]  # test and dev head with the twin words removed

    @property
    def lang(self) -> str:
        return self.target.lang

    def token_share(self) -> float:
        """Share of the known test tokens that are twin words."""
        ids = self.target.test.ids
        ids = ids[ids > 0] - 1
        return float((self.twin[ids] >= 0).mean()) if ids.size else 0.0


def _prepare(exp: Experiment, t: Target, width: int) -> _Lang:
    x_gen = exp.source.embeddings.vectors
    twin = identical_twins(exp.source.embeddings, t.vocab)
    _, idx = knn(t.vocab.vectors, x_gen, min(width, len(x_gen)))
    _, idx_nt = knn(t.vocab.vectors, x_gen, min(width, len(x_gen) - 1), exclude=twin)
    keep = np.flatnonzero(twin < 0)
    reduced = Embeddings([t.vocab.words[i] for i in keep], t.vocab.vectors[keep])
    tok, labels = t.data.config.tokenizer, exp.labels
    test = Split.make(t.data.test, reduced, tok, labels)
    dev = None
    if t.dev is not None and t.data.dev is not None:
        dev = Split.make(t.data.dev.head(exp.config.tasklang_dev_size), reduced, tok, labels)
    return _Lang(t, twin, {"as_is": idx, "no_twin_neighbours": idx_nt}, keep, (test, dev))


@dataclass
class _Analysis:
    """One seed's results: its tuned k, accuracy against k, and the LLM weights per target language."""

    seed: Optional[int]
    k_task: int
    curve: dict  # "k", "source_dev" {k: acc}, "targets" {lang: {k: test acc}}, "variants" {variant: ...}
    alphas: dict[str, np.ndarray] = field(default_factory=dict)  # |α| at ``k_alpha`` per language
    k_alpha: Optional[int] = None  # k of ``alphas`` (None: ``k_task``)
    has_twin: dict[str, np.ndarray] = field(default_factory=dict)  # per projected word: it has a twin
    stats: dict = field(default_factory=dict)  # per language: |α| summaries and twin measurements

    @property
    def alpha_k(self) -> int:
        return self.k_alpha or self.k_task


def _scores(proj: dict, splits: tuple[Split, Optional[Split]], model) -> tuple[dict, Optional[dict]]:
    test, dev = splits
    on_test = {str(k): test.accuracy(model, v) for k, v in proj.items()}
    on_dev = None if dev is None else {str(k): dev.accuracy(model, v) for k, v in proj.items()}
    return on_test, on_dev


def _curves(run: SeedRun, lg: _Lang, grid: list[int]) -> dict:
    """Test (and dev-head) accuracy against k for every variant of :data:`VARIANTS`."""
    model, t = run.model("opt"), lg.target
    as_is = llm_for_ks(run, t.vocab.vectors, lg.idx["as_is"], grid)
    no_nb = llm_for_ks(run, t.vocab.vectors, lg.idx["no_twin_neighbours"], grid)
    return {
        "as_is": _scores(as_is, (t.test, t.dev), model),
        "no_twin_neighbours": _scores(no_nb, (t.test, t.dev), model),
        "no_twin_words": _scores({k: v[lg.keep] for k, v in as_is.items()}, lg.reduced, model),
    }


def _alpha_summary(weights: np.ndarray) -> dict:
    """Mean |α| per neighbour rank, the share of words whose largest |α| is the nearest neighbour, and the mean
    of Σα (1 by construction: the weights of a word sum to one)."""
    if not len(weights):
        return {"words": 0}
    a = np.abs(weights)
    return {
        "words": int(len(a)),
        "k": int(a.shape[1]),
        "mean_abs_by_rank": [round(float(x), 4) for x in a.mean(axis=0)],
        "nearest_mean": float(a[:, 0].mean()),
        "others_mean": float(a[:, 1:].mean()) if a.shape[1] > 1 else None,
        "nearest_largest_fraction": float((a.argmax(axis=1) == 0).mean()),
        "weight_sum_mean": float(weights.sum(axis=1).mean()),
    }


def _alpha_stats(run: SeedRun, lg: _Lang, k: int) -> tuple[np.ndarray, dict]:
    """``(|α| of every word at k, summaries)``: for the words without a twin, with one, and with the twin
    excluded from the neighbours; for the twin words, how often the nearest neighbour is the twin and its α."""
    exp = run.experiment
    x_gen, y_gen = exp.source.embeddings.vectors, lg.target.vocab.vectors
    idx = lg.idx["as_is"][:, :k]
    weights = llm_weights(x_gen, y_gen, idx, reg=exp.config.reg)
    excluded = llm_weights(x_gen, y_gen, lg.idx["no_twin_neighbours"][:, :k], reg=exp.config.reg)
    has = lg.twin >= 0
    first_is_twin = has & (idx[:, 0] == lg.twin)
    twin_alpha = weights[first_is_twin, 0]
    stats = {
        "k": int(k),
        "without_twin": _alpha_summary(weights[~has]),
        "with_twin": _alpha_summary(weights[has]),
        "twins_excluded": _alpha_summary(excluded),
        "nearest_is_twin": float(first_is_twin[has].mean()) if has.any() else None,
        "twin_alpha_mean": float(twin_alpha.mean()) if twin_alpha.size else None,
        "twin_alpha_about_1": float((twin_alpha >= TWIN_ALPHA).sum() / max(int(has.sum()), 1)),
    }
    return np.abs(weights), stats


def _analyse_seed(run: SeedRun, langs: list[_Lang], alpha_k: Optional[int], step: Callable[[], None]) -> _Analysis:
    exp = run.experiment
    grid = list(exp.config.k_grid)
    run.log(f"seed {run.seed}: source self-projection for every k")
    source_dev = source_k_scores(run)
    k_task = best_choice(source_dev)
    curve: dict = {"k": grid, "source_dev": {str(k): v for k, v in source_dev.items()}, "targets": {}, "variants": {}}
    a = _Analysis(run.seed, k_task, curve, k_alpha=alpha_k)
    for lg in langs:
        run.log(f"seed {run.seed}: {lg.lang}: projecting for every k")
        curves = _curves(run, lg, grid)
        curve["targets"][lg.lang] = curves["as_is"][0]
        for variant, (on_test, on_dev) in curves.items():
            curve["variants"].setdefault(variant, {"test": {}, "dev": {}})
            curve["variants"][variant]["test"][lg.lang] = on_test
            curve["variants"][variant]["dev"][lg.lang] = on_dev
        a.alphas[lg.lang], a.stats[lg.lang] = _alpha_stats(run, lg, a.alpha_k)
        a.has_twin[lg.lang] = lg.twin >= 0
        step()
    return a


# --------------------------------------------------------------------------- figures

#: Figure formats of ``taskspec-rs analyze --format`` (chosen by each file's extension).
FIGURE_FORMATS = ("png", "svg", "pdf")

#: Sizes for print: 6 x 3.6 in fits a page width, and no text is smaller than 8 pt there.
_PRINT_STYLE = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "lines.linewidth": 1.6,
    "svg.hashsalt": "taskspec-rs",  # stable ids: the same figure gives the same SVG
}


def _figure(feature: str):
    """A new 6 x 3.6 in matplotlib ``Figure`` (no pyplot: the caller's backend is left alone)."""
    from ._extras import require

    figure = require("matplotlib.figure", feature)
    return figure.Figure(figsize=(6.0, 3.6), layout="constrained")


def _save_png(fig, path: Path) -> None:
    """Save ``fig`` in the format of ``path``'s extension (.png at 200 dpi, .svg or .pdf vector), atomically."""
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt not in FIGURE_FORMATS:
        raise TaskspecError(f"{path}: figure format must be one of {', '.join(FIGURE_FORMATS)}")
    meta = {"Software": None} if fmt == "png" else {"Creator": None, "Date": None}
    atomic_write(path, lambda f: fig.savefig(f, dpi=200, format=fmt, metadata=meta))


def _style():
    from ._extras import require

    return require("matplotlib", "analyze figures").rc_context(_PRINT_STYLE)


def _runs(a: Union[_Analysis, Sequence[_Analysis]]) -> list[_Analysis]:
    return [a] if isinstance(a, _Analysis) else list(a)


def _band(ax, k_grid: list[int], rows: np.ndarray, label: str, **style) -> None:
    """Mean of ``rows`` (seeds x k) as a line, min–max over the seeds as a band."""
    (line,) = ax.plot(k_grid, rows.mean(axis=0), label=label, **style)
    if len(rows) > 1:
        ax.fill_between(k_grid, rows.min(axis=0), rows.max(axis=0), color=line.get_color(), alpha=0.15, lw=0)


def _k_axis(ax, k_grid: list[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(k_grid)
    ax.set_xticklabels([str(k) for k in k_grid])
    ax.minorticks_off()
    ax.set_xlabel("k (LLM neighbours)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)


def _plot_k_curve(a: Union[_Analysis, Sequence[_Analysis]], source_lang: str, path: Path) -> None:
    """Figure 3: target test accuracy against k (mean over seeds, min–max band) and the source criterion."""
    runs = _runs(a)
    k_grid = runs[0].curve["k"]
    with _style():
        fig = _figure("analyze figures")
        ax = fig.subplots()
        src = np.array([[r.curve["source_dev"][str(k)] for k in k_grid] for r in runs])
        _band(ax, k_grid, src, f"{source_lang} dev (self-proj.)", color="k", marker="o", lw=2.5, ms=4)
        for lang in runs[0].curve["targets"]:
            rows = np.array([[r.curve["targets"][lang][str(k)] for k in k_grid] for r in runs])
            _band(ax, k_grid, rows, f"{lang} test", marker="o", ms=3)
        for k in sorted({r.k_task for r in runs}):
            ax.axvline(k, color="grey", ls=":", lw=1.2)
        _k_axis(ax, k_grid)
        seeds = "seed " + str(runs[0].seed) if len(runs) == 1 else f"{len(runs)} seeds, band = min–max"
        tuned = "/".join(str(r.k_task) for r in runs)
        ax.set_title(f"Accuracy vs k ({seeds}; dotted: tuned k = {tuned})")
        ax.legend(ncol=2 if len(runs[0].curve["targets"]) > 4 else 1, loc="best", frameon=False)
        _save_png(fig, path)


def _alpha_panel(ax, a: _Analysis) -> float:
    """One seed: |α| of the nearest and of the other neighbours (words without a twin) as histograms of shares;
    the nearest weight of the words with a twin, which piles up at 1, as an outline cut at the top."""
    alphas = list(a.alphas.items())
    twin = [a.has_twin.get(lang, np.zeros(len(x), dtype=bool)) for lang, x in alphas]
    first = np.concatenate([x[~m, 0] for (_, x), m in zip(alphas, twin)])
    rest = np.concatenate([x[~m, 1:].ravel() for (_, x), m in zip(alphas, twin)])
    twins = np.concatenate([x[m, 0] for (_, x), m in zip(alphas, twin)])
    bins = np.linspace(0.0, 1.0, 26)
    top = 0.0
    for values, label, style in (
        (first, "nearest", {"alpha": 0.6, "color": "C0"}),
        (rest, "other neighbours", {"alpha": 0.6, "color": "C1"}),
        (twins, "nearest, word with a twin", {"histtype": "step", "color": "k", "lw": 1.2}),
    ):
        if values.size:
            share = np.full(values.size, 1 / values.size)
            heights, _, _ = ax.hist(np.clip(values, 0.0, 1.0), bins=bins, weights=share, label=label, **style)
            top = top if values is twins else max(top, float(heights.max()))
    if twins.size:
        share = float((twins >= TWIN_ALPHA).mean())
        ax.text(0.5, 0.97, f"twins ≥ {TWIN_ALPHA}: {100 * share:.0f} %", transform=ax.transAxes, ha="center", va="top")
    ax.set_title(f"k = {a.alpha_k}" if a.seed is None else f"seed {a.seed}, k = {a.alpha_k}")
    ax.set_xlabel("|α| (clipped to 1)")
    ax.grid(alpha=0.3)
    return top


def _plot_alpha(alphas: Union[dict, Sequence[_Analysis]], alpha_k: Optional[int], path: Path) -> None:
    """Figure 2: |α| of the nearest neighbour vs the others, one panel a seed (``alphas``: the seeds'
    analyses, or one ``{lang: |α|}`` at ``alpha_k``)."""
    runs = [_Analysis(None, alpha_k or 1, {}, alphas=dict(alphas))] if isinstance(alphas, dict) else list(alphas)
    with _style():
        fig = _figure("analyze figures")
        axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)[0]
        top = max(_alpha_panel(ax, a) for ax, a in zip(axes, runs))
        if top > 0:  # the twins' pile at 1 would flatten the rest: cut it
            axes[0].set_ylim(0, 1.3 * top)
        axes[0].set_ylabel("share of the weights")
        legend: dict = {}  # every panel's entries once: a panel at k = 1 has no "other neighbours"
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=3, frameon=False)
        _save_png(fig, path)


def _plot_twins(runs: Sequence[_Analysis], path: Path) -> None:
    """Mean target test accuracy against k for every variant of :data:`VARIANTS` (band: min–max over seeds)."""
    k_grid = runs[0].curve["k"]
    labels = {"as_is": "as is", "no_twin_neighbours": "twin excluded from neighbours", "no_twin_words": "twins removed"}
    with _style():
        fig = _figure("analyze figures")
        ax = fig.subplots()
        for variant, label in labels.items():
            rows = np.array([_mean_over_langs(r.curve["variants"][variant]["test"], k_grid) for r in runs])
            _band(ax, k_grid, rows, label, marker="o", ms=3)
        _k_axis(ax, k_grid)
        ax.set_ylabel(f"test accuracy, mean of {len(runs[0].curve['targets'])} targets")
        ax.set_title(f"Identical twins and k ({len(runs)} seeds)")
        ax.legend(frameon=False, loc="best")
        _save_png(fig, path)


def _mean_over_langs(by_lang: dict, k_grid: list[int]) -> list[float]:
    return [float(np.mean([acc[str(k)] for acc in by_lang.values()])) for k in k_grid]


# --------------------------------------------------------------------------- tables


def _translation(query: np.ndarray, word: str, target: Embeddings, n: int = 20) -> Optional[int]:
    """The nearest target row to ``query`` in the general space that is not spelled ``word``."""
    _, idx = knn(query[None, :], target.vectors, min(n, len(target.words)))
    return next((int(j) for j in idx[0] if target.words[j] != word), None)


def _target_rows(run: SeedRun, t: Target, k: int, words: Sequence[str], n: int) -> list[dict]:
    """Table 6 rows of one target language: each word's translation and its neighbours among the words of the
    language's data (train, dev and test), in the general and in the task-specific space."""
    src = run.experiment.source.embeddings
    index = src.index()
    pool = t.data.needed_embeddings([t.data.train, t.data.dev, t.data.test])
    _, idx = knn(pool.vectors, src.vectors, min(k, len(src.words)))
    y_spec = run.projector().from_neighbors(pool.vectors, idx).y_spec
    rows = []
    for w in words:
        j = _translation(src.vectors[index[w]], w, pool)
        if j is not None:
            rows.append(
                {
                    "word": pool.words[j],
                    "source_word": w,
                    "general": _neighbours(pool.vectors[j], pool.vectors, pool.words, n, skip=j),
                    "task_specific": _neighbours(y_spec[j], y_spec, pool.words, n, skip=j),
                }
            )
    return rows


def _neighbor_table(run: SeedRun, k: int, x_spec: np.ndarray, words: Sequence[str], n: int) -> dict:
    """Table 6: neighbours of source words among source words, and of their translations among target words."""
    exp = run.experiment
    src = exp.source.embeddings
    index = src.index()
    table: dict = {"seed": run.seed, "words": list(words), "k_task": k, "source": {}, "targets": {}}
    for w in words:
        i = index[w]
        table["source"][w] = {
            "general": _neighbours(src.vectors[i], src.vectors, src.words, n, skip=i),
            "task_specific": _neighbours(x_spec[i], x_spec, src.words, n, skip=i),
        }
    for t in exp.targets:
        table["targets"][t.lang] = _target_rows(run, t, k, words, n)
    return table


def _cell(pairs: list) -> str:
    return ", ".join(f"{word} ({s:.2f})" for word, s in pairs).replace("|", "\\|")


def _neighbor_markdown(table: dict, source_lang: str) -> str:
    md = [
        f"# Nearest neighbours (seed {table['seed']}; target task-specific space = LLM with k = {table['k_task']})",
        "",
        "Each word's neighbours among the words of its own language (itself excluded; for a target language, the",
        "words of its data). A target word is the translation of the source word in brackets: its nearest word",
        "of that language's data in the general space that is spelled differently.",
        "",
        "| word | language | general space | task-specific space |",
        "|---|---|---|---|",
    ]
    for w, r in table["source"].items():
        md.append(f"| {w} | {source_lang} | {_cell(r['general'])} | {_cell(r['task_specific'])} |")
    for lang, rows in table["targets"].items():
        for r in rows:
            word = f"{r['word']} ({r['source_word']})"
            md.append(f"| {word} | {lang} | {_cell(r['general'])} | {_cell(r['task_specific'])} |")
    return "\n".join(md) + "\n"


# --------------------------------------------------------------------------- summaries


def _curve_json(runs: Sequence[_Analysis]) -> dict:
    """``k_curve.json``: every seed's curves, and the mean over seeds of the target test accuracy."""
    k_grid, langs = runs[0].curve["k"], list(runs[0].curve["targets"])

    def per_lang(get: Callable[[_Analysis, str], object]) -> dict:
        return {lang: {str(r.seed): get(r, lang) for r in runs} for lang in langs}

    return {
        "k": k_grid,
        "seeds": [r.seed for r in runs],
        "k_task": {str(r.seed): r.k_task for r in runs},
        "source_dev": {str(r.seed): r.curve["source_dev"] for r in runs},
        "targets": per_lang(lambda r, lang: r.curve["targets"][lang]),
        "mean": {lang: dict(zip(map(str, k_grid), _mean_rows(runs, lang, k_grid))) for lang in langs},
        "variants": {
            v: {s: per_lang(lambda r, lang, v=v, s=s: r.curve["variants"][v][s][lang]) for s in ("test", "dev")}
            for v in VARIANTS
        },
    }


def _mean_rows(runs: Sequence[_Analysis], lang: str, k_grid: list[int]) -> list[float]:
    return [float(np.mean([r.curve["targets"][lang][str(k)] for r in runs])) for k in k_grid]


def _k_of(scores: Optional[dict]) -> Optional[int]:
    """The best k of ``{str(k): accuracy}`` (ties: the smallest k), or None."""
    return None if not scores else int(best_choice({int(k): v for k, v in scores.items()}))


def _twins_json(exp: Experiment, langs: Sequence[_Lang], runs: Sequence[_Analysis]) -> dict:
    """``twins.json``: twin counts per language, and per seed how the twins weigh and what removing them does."""
    everything = exp.source.all_embeddings
    out = {}
    for lg in langs:
        lang, var = lg.lang, [r.curve["variants"] for r in runs]
        out[lang] = {
            "vocabulary": len(lg.target.data.embeddings.words),
            "twins_in_vocabulary": int((identical_twins(everything, lg.target.data.embeddings) >= 0).sum()),
            "projected_words": len(lg.twin),
            "projected_twins": int((lg.twin >= 0).sum()),
            "test_token_share": round(lg.token_share(), 4),
            "seeds": {
                str(r.seed): {
                    "k_task": r.k_task,
                    **{key: r.stats[lang][key] for key in ("nearest_is_twin", "twin_alpha_mean", "twin_alpha_about_1")},
                    "accuracy_at_k_task": {v: c[v]["test"][lang][str(r.k_task)] for v in VARIANTS},
                    "best_k_on_test": {v: _k_of(c[v]["test"][lang]) for v in VARIANTS},
                    "best_k_on_dev_head": {v: _k_of(c[v]["dev"][lang]) for v in VARIANTS},
                }
                for r, c in zip(runs, var)
            },
        }
    return out


def _pooled(a: _Analysis) -> dict:
    """|α| summary of one seed over every analysed language: words without a twin, and the twin words."""
    alphas = list(a.alphas.values())
    twin = [a.has_twin.get(lang, np.zeros(len(x), dtype=bool)) for lang, x in a.alphas.items()]
    plain = np.concatenate([x[~m] for x, m in zip(alphas, twin)]) if alphas else np.zeros((0, a.alpha_k))
    twins = np.concatenate([x[m, 0] for x, m in zip(alphas, twin)]) if alphas else np.zeros(0)
    return {
        "words": int(len(plain) + len(twins)),
        "twin_share": float(len(twins) / max(len(plain) + len(twins), 1)),
        "nearest_mean": float(plain[:, 0].mean()) if len(plain) else float("nan"),
        "others_mean": float(plain[:, 1:].mean()) if len(plain) and plain.shape[1] > 1 else float("nan"),
        "nearest_largest": float((plain.argmax(axis=1) == 0).mean()) if len(plain) else float("nan"),
        "nearest_share": float(plain[:, 0].sum() / plain.sum()) if len(plain) else float("nan"),
        "twin_about_1": float((twins >= TWIN_ALPHA).mean()) if len(twins) else float("nan"),
    }


def _pct(values: Sequence[float]) -> str:
    values = [100 * v for v in values]
    return f"{np.mean(values):.1f}" + (f" ±{np.std(values, ddof=1):.1f}" if len(values) > 1 else "")


def _curve_markdown(runs: Sequence[_Analysis], source_lang: str) -> list[str]:
    k_grid, langs = runs[0].curve["k"], list(runs[0].curve["targets"])
    md = ["## Accuracy against k (Figure 3)", "", "Test accuracy in % (mean ±std over the seeds); the first column is"]
    md += ["the source-dev accuracy of the self-projection that tunes k.", ""]
    md += ["| k | " + " | ".join([f"{source_lang} dev (self)"] + langs + ["mean"]) + " |"]
    md += ["|" + "---|" * (len(langs) + 3)]
    for k in k_grid:
        cells = [_pct([r.curve["source_dev"][str(k)] for r in runs])]
        cells += [_pct([r.curve["targets"][lang][str(k)] for r in runs]) for lang in langs]
        cells += [_pct([np.mean(_mean_over_langs(r.curve["targets"], [k])) for r in runs])]
        md.append(f"| {k} | " + " | ".join(cells) + " |")
    return md + [""]


def _share(x: float) -> str:
    return "–" if np.isnan(x) else f"{100 * x:.0f} %"


def _mean(x: float) -> str:
    return "–" if np.isnan(x) else f"{x:.3f}"


def _alpha_markdown(runs: Sequence[_Analysis]) -> list[str]:
    md = ["## LLM weights (Figure 2)", "", "|α| over the projected words of every analysed target language; words"]
    md += ["without a twin, then the share of words with one and of those whose nearest weight is ≥ 0.9.", ""]
    md += ["| seed | k | words | nearest: mean \\|α\\| | others: mean \\|α\\| | nearest: share of Σ\\|α\\| |"]
    md[-1] += " nearest largest | with a twin | twin α ≥ 0.9 |"
    md += ["|---|---|---|---|---|---|---|---|---|"]
    for a in runs:
        p = _pooled(a)
        md.append(
            f"| {a.seed} | {a.alpha_k} | {p['words']} | {_mean(p['nearest_mean'])} | {_mean(p['others_mean'])} | "
            f"{_share(p['nearest_share'])} | "
            f"{100 * p['nearest_largest']:.0f} % | {100 * p['twin_share']:.0f} % | {_share(p['twin_about_1'])} |"
        )
    return md + [""]


def _twins_markdown(twins: dict) -> list[str]:
    md = ["## Identical twins", "", "Words with a twin in the source vocabulary the projection uses, their share"]
    md += ["of the test tokens, how often the nearest neighbour is the twin and gets α ≥ 0.9, and test accuracy"]
    md += ["at the tuned k as it is / twin excluded from the neighbours / twin words removed (%, mean ±std over"]
    md += ["the seeds).", ""]
    md += ["| lang | twins / vocabulary | projected twins / words | test tokens | nearest = twin | α ≥ 0.9 |"]
    md[-1] += " as is | no twin neighbours | twins removed |"
    md += ["|---|---|---|---|---|---|---|---|---|"]
    for lang, t in twins.items():
        seeds = list(t["seeds"].values())
        cells = [f"{t['twins_in_vocabulary']} / {t['vocabulary']}", f"{t['projected_twins']} / {t['projected_words']}"]
        cells.append(f"{100 * t['test_token_share']:.1f} %")
        for key in ("nearest_is_twin", "twin_alpha_about_1"):
            cells.append(_pct([s[key] for s in seeds if s[key] is not None]) if t["projected_twins"] else "–")
        cells += [_pct([s["accuracy_at_k_task"][v] for s in seeds]) for v in VARIANTS]
        md.append(f"| {lang} | " + " | ".join(cells) + " |")
    return md + [""]


def _index_markdown(exp: Experiment, runs: Sequence[_Analysis], twins: dict, written: list[Path]) -> str:
    name = exp.config.path.name if exp.config.path else "configuration"
    seeds = ", ".join(str(r.seed) for r in runs)
    md = [f"# Analysis of {name} (seeds {seeds})", ""]
    options = ", ".join(f"{k} {v}" for k, v in asdict(exp.config.train).items())
    md += [f"Training options: {options}; k grid {', '.join(map(str, exp.config.k_grid))}; reg {exp.config.reg}.", ""]
    md += [f"Tuned k (source self-projection, as `clwe_opt_llm_ktask`): {' / '.join(str(r.k_task) for r in runs)}."]
    md += [""] + _curve_markdown(runs, exp.source.lang) + _alpha_markdown(runs) + _twins_markdown(twins)
    md += ["Files: " + ", ".join(p.name for p in written) + ".", ""]
    return "\n".join(md)


# --------------------------------------------------------------------------- entry point


def _seed_runs(
    exp: Experiment, seeds: Sequence[int], alpha_k: Optional[int], progress: bool, say: Log
) -> tuple[list[_Lang], list[_Analysis], SeedRun]:
    """Every seed's analysis (the first seed's run is returned for the neighbour table)."""
    from tqdm.auto import tqdm

    grid = exp.config.k_grid
    cache = NeighborCache(exp, width=max(grid))
    say("searching the neighbours of every target word")
    langs = [_prepare(exp, t, max(max(grid), alpha_k or 0)) for t in exp.targets]
    runs, first = [], None
    with tqdm(total=len(seeds) * len(langs), desc="analyze", disable=not progress, leave=False) as bar:
        for seed in seeds:
            run = SeedRun(exp, seed, cache, progress=progress, log=say)
            first = first or run
            runs.append(_analyse_seed(run, langs, alpha_k, bar.update))
    assert first is not None
    return langs, runs, first


def run_analysis(
    config: ExperimentConfig,
    out: str | Path,
    *,
    seed: int = 0,
    seeds: Optional[int] = None,
    langs: Sequence[str] | None = None,
    words: Sequence[str] | None = None,
    n_neighbors: int = 5,
    alpha_k: Optional[int] = None,
    image_format: str = "png",
    progress: bool = False,
    log: Log | None = None,
) -> list[Path]:
    """Train one model per seed and write the analysis files into ``out`` (created if needed).

    Parameters
    ----------
    config
        Experiment configuration (its ``[source]``, ``[train]``, ``k_grid``, ``reg``, ``seeds``).
    out
        Output folder.
    seed, seeds
        The seeds ``seed … seed + seeds − 1`` (``seeds`` default: ``config.seeds``).
    langs
        Target languages to analyse (default: all of the configuration).
    words
        Source words for the neighbour table (default: :func:`choose_words`).
    n_neighbors
        Neighbours listed per word and space.
    alpha_k
        Neighbourhood size of the ``|α|`` figures (default: each seed's tuned k, as the paper).
    image_format
        ``"png"``, ``"svg"`` or ``"pdf"`` for the figures.

    Returns
    -------
    list of Path
        The files written.
    """
    say = log or (lambda _msg: None)
    out = Path(out)
    check_writable(out)  # created if needed; a read-only folder fails here, not after training
    exp = load_experiment(config, langs=langs, log=say)
    missing = [w for w in words or () if w not in exp.source.embeddings.index()]
    if missing:
        raise TaskspecError(f"--words: not in the {exp.source.lang} vocabulary: {', '.join(missing)}")
    seed_list = list(range(seed, seed + (seeds or config.seeds)))
    targets, runs, first = _seed_runs(exp, seed_list, alpha_k, progress, say)
    _, x_spec, _ = first.source_spec()
    src = exp.source
    words = list(words) if words else choose_words(src.train.texts, src.config.tokenizer, src.embeddings, x_spec)
    say("nearest neighbours (Table 6)")
    table = _neighbor_table(first, runs[0].k_task, x_spec, words, n_neighbors)
    twins = _twins_json(exp, targets, runs)
    written: list[Path] = []

    def write(name: str, payload) -> None:
        path = out / name
        if isinstance(payload, str):
            atomic_write_text(path, payload)
        elif isinstance(payload, dict):
            atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        else:
            payload(path)
        written.append(path)

    write("k_curve.json", _curve_json(runs))
    write(f"k_curve.{image_format}", lambda p: _plot_k_curve(runs, src.lang, p))
    by_seed = {str(a.seed): {"k": a.alpha_k, "languages": a.stats} for a in runs}
    write("alpha.json", {"alpha_k": alpha_k or "tuned", "seeds": by_seed})
    if exp.targets:
        write(f"alpha_hist.{image_format}", lambda p: _plot_alpha(runs, None, p))
        write(f"twins_k_curve.{image_format}", lambda p: _plot_twins(runs, p))
    write("twins.json", twins)
    write("neighbors.json", table)
    write("neighbors.md", _neighbor_markdown(table, src.lang))
    write("analysis.md", _index_markdown(exp, runs, twins, written))
    return written
