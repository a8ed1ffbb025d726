"""Analysis of one trained model, after the paper's Table 6 and Figures 2–3.

``taskspec-rs analyze CONFIG --out DIR`` trains one ``opt`` model (one seed)
and writes into ``DIR``:

``neighbors.md`` / ``neighbors.json`` (Table 6)
    The nearest neighbours of a few source words in the general and in the
    task-specific space, among source words and among the words of each target
    language (target task-specific vectors = LLM projection with the k tuned
    on the source, as ``clwe_opt_llm_ktask``).
``alpha_hist.png`` / ``alpha.json`` (Figure 2)
    The distribution of the absolute LLM weights ``|α|`` of the nearest
    neighbour versus the other neighbours (k = ``alpha_k``, default 10), over
    the target words of every analysed language.
``k_curve.png`` / ``k_curve.json`` (Figure 3)
    Source-dev accuracy of the self-projection (the ``ktask`` criterion) and
    target test accuracy as a function of k, per language.  This is analysis
    only: nothing here is used to choose k.
``analysis.md``
    An index of the above with the main numbers.

Every file is written atomically (temporary file in ``DIR``, then rename).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_write, atomic_write_text, check_writable
from .config import ExperimentConfig
from .data import Embeddings, tokenize
from .errors import TaskspecError
from .experiment import Experiment, NeighborCache, SeedRun, Split, load_experiment
from .methods import best_choice, llm_for_ks, source_k_scores
from .neighbors import knn
from .project import llm_weights

__all__ = ["choose_words", "run_analysis"]

Log = Callable[[str], None]


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


def _neighbours(query: np.ndarray, base: np.ndarray, words: Sequence[str], n: int, skip: int | None = None) -> list:
    """The ``n`` nearest rows of ``base`` to ``query`` as ``(word, cosine)``, never row ``skip``."""
    k = min(n, len(base) - (skip is not None))
    exclude = None if skip is None else [skip]
    sims, idx = knn(query[None, :], base, k, exclude=exclude)
    return [(words[j], round(float(s), 3)) for s, j in zip(sims[0], idx[0])]


@dataclass
class _Analysis:
    """What the analysis computes before writing: the k curve, the |α| per language, the target spaces."""

    seed: int
    k_task: int
    curve: dict
    vocab: dict[str, Embeddings] = field(default_factory=dict)
    y_spec_task: dict[str, np.ndarray] = field(default_factory=dict)
    alphas: dict[str, np.ndarray] = field(default_factory=dict)


def _analyse(run: SeedRun, alpha_k: int, log: Log) -> _Analysis:
    """Figure 3's accuracy against k (source self-projection and target test), and Figure 2's |α|."""
    exp = run.experiment
    k_grid = list(exp.config.k_grid)
    log("source self-projection for every k")
    source_dev = source_k_scores(run)
    k_task = best_choice(source_dev)
    result = _Analysis(run.seed, k_task, {"k": k_grid, "source_dev": {str(k): v for k, v in source_dev.items()}})
    result.curve["targets"] = {}
    x_gen = exp.source.embeddings.vectors
    model = run.model("opt")
    for t in exp.targets:
        log(f"{t.lang}: projecting for every k")
        vocab = t.data.needed_embeddings([t.data.test])  # the test words only
        if not vocab.words:
            raise TaskspecError(f"{t.lang}: no word of the test data is in {t.data.config.embeddings}")
        split = Split.make(t.data.test, vocab, t.data.config.tokenizer, exp.labels)
        _, idx = knn(vocab.vectors, x_gen, min(max(k_grid + [alpha_k]), len(x_gen)))
        proj = llm_for_ks(run, vocab.vectors, idx, k_grid)
        result.curve["targets"][t.lang] = {str(k): split.accuracy(model, v) for k, v in proj.items()}
        result.vocab[t.lang], result.y_spec_task[t.lang] = vocab, proj[k_task]
        nb = idx[:, : min(alpha_k, idx.shape[1])]
        result.alphas[t.lang] = np.abs(llm_weights(x_gen, vocab.vectors, nb, reg=exp.config.reg))
    result.curve["k_task"] = k_task
    return result


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


def _plot_k_curve(a: _Analysis, source_lang: str, path: Path) -> None:
    from ._extras import require

    with require("matplotlib", "analyze figures").rc_context(_PRINT_STYLE):
        k_grid = a.curve["k"]
        fig = _figure("analyze figures")
        ax = fig.subplots()
        source = [a.curve["source_dev"][str(k)] for k in k_grid]
        ax.plot(k_grid, source, "k-o", lw=2.5, ms=4, label=f"{source_lang} dev (self-proj.)")
        for lang, accs in a.curve["targets"].items():
            ax.plot(k_grid, [accs[str(k)] for k in k_grid], "-o", ms=3, label=f"{lang} test")
        ax.axvline(a.k_task, color="grey", ls=":", lw=1.2)
        ax.set_xscale("log")
        ax.set_xticks(k_grid)
        ax.set_xticklabels([str(k) for k in k_grid])
        ax.minorticks_off()
        ax.set_xlabel("k (LLM neighbours)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"Accuracy vs k (seed {a.seed}; dotted: k_task = {a.k_task})")
        ax.grid(alpha=0.3)
        ax.legend(ncol=2 if len(a.curve["targets"]) > 4 else 1, loc="best", frameon=False)
        _save_png(fig, path)


def _alpha_summary(alphas: dict[str, np.ndarray]) -> dict:
    return {
        lang: {
            "k": int(a.shape[1]),
            "nearest_mean": float(a[:, 0].mean()),
            "others_mean": float(a[:, 1:].mean()) if a.shape[1] > 1 else None,
            "nearest_largest_fraction": float((a.argmax(axis=1) == 0).mean()),
        }
        for lang, a in alphas.items()
    }


def _plot_alpha(alphas: dict[str, np.ndarray], alpha_k: int, path: Path) -> None:
    from ._extras import require

    with require("matplotlib", "analyze figures").rc_context(_PRINT_STYLE):
        first = np.concatenate([a[:, 0] for a in alphas.values()])
        rest = np.concatenate([a[:, 1:].ravel() for a in alphas.values()])
        top = float(np.quantile(np.concatenate([first, rest]), 0.995)) or 1.0
        bins = np.linspace(0, top, 41)
        fig = _figure("analyze figures")
        ax = fig.subplots()
        ax.hist(first, bins=bins, density=True, alpha=0.6, label=f"nearest neighbour (n={len(first)})")
        if rest.size:
            ax.hist(rest, bins=bins, density=True, alpha=0.6, label=f"other neighbours (n={len(rest)})")
        ax.set_xlabel("|α| (LLM weight)")
        ax.set_ylabel("density")
        ax.set_title(f"|α| of LLM weights, k = {alpha_k}, targets: {', '.join(alphas)}")
        ax.legend(frameon=False)
        _save_png(fig, path)


def _neighbor_table(exp: Experiment, a: _Analysis, x_spec: np.ndarray, words: Sequence[str], n: int) -> dict:
    """Table 6: nearest neighbours of ``words`` in the general and in the task-specific space."""
    src = exp.source.embeddings
    index = src.index()
    table: dict = {"words": list(words), "k_task": a.k_task, "source": {}, "targets": {}}
    for w in words:
        i = index[w]
        table["source"][w] = {
            "general": _neighbours(src.vectors[i], src.vectors, src.words, n, skip=i),
            "task_specific": _neighbours(x_spec[i], x_spec, src.words, n, skip=i),
        }
        for lang, vocab in a.vocab.items():
            table["targets"].setdefault(lang, {})[w] = {
                "general": _neighbours(src.vectors[i], vocab.vectors, vocab.words, n),
                "task_specific": _neighbours(x_spec[i], a.y_spec_task[lang], vocab.words, n),
            }
    return table


def _neighbor_markdown(table: dict, source_lang: str, seed: int) -> str:
    def cell(pairs: list) -> str:
        return ", ".join(f"{word} ({s:.2f})" for word, s in pairs).replace("|", "\\|")

    md = [f"# Nearest neighbours (seed {seed}; target task-specific = LLM with k_task = {table['k_task']})", ""]
    spaces = [(source_lang, table["source"])] + list(table["targets"].items())
    md += ["| word | language | general space | task-specific space |", "|---|---|---|---|"]
    for w in table["words"]:
        for lang, by_word in spaces:
            r = by_word[w]
            md.append(f"| {w} | {lang} | {cell(r['general'])} | {cell(r['task_specific'])} |")
    return "\n".join(md) + "\n"


def _index_markdown(exp: Experiment, a: _Analysis, dev_accuracy: float, alpha_k: int, written: list[Path]) -> str:
    curve, lang = a.curve, exp.source.lang
    name = exp.config.path.name if exp.config.path else "configuration"
    md = [
        f"# Analysis of {name} (seed {a.seed})",
        "",
        f"Source {lang}: dev accuracy {dev_accuracy:.3f}; k_task = {a.k_task}.",
        "",
        "| k | " + " | ".join([f"{lang} dev (self)"] + list(curve["targets"])) + " |",
        "|" + "---|" * (len(curve["targets"]) + 2),
    ]
    for k in curve["k"]:
        cells = [f"{100 * curve['source_dev'][str(k)]:.1f}"] + [
            f"{100 * v[str(k)]:.1f}" for v in curve["targets"].values()
        ]
        md.append(f"| {k} | " + " | ".join(cells) + " |")
    md += ["", f"|α| (k = {alpha_k}): mean for the nearest neighbour vs the others, share of words whose"]
    md += ["largest weight is the nearest neighbour:", ""]
    for t_lang, s in _alpha_summary(a.alphas).items():
        others = "–" if s["others_mean"] is None else f"{s['others_mean']:.3f}"
        md.append(f"- {t_lang}: {s['nearest_mean']:.3f} vs {others}; {100 * s['nearest_largest_fraction']:.0f} %")
    md += ["", "Files: " + ", ".join(p.name for p in written) + ".", ""]
    return "\n".join(md)


def run_analysis(
    config: ExperimentConfig,
    out: str | Path,
    *,
    seed: int = 0,
    langs: Sequence[str] | None = None,
    words: Sequence[str] | None = None,
    n_neighbors: int = 5,
    alpha_k: int = 10,
    image_format: str = "png",
    progress: bool = False,
    log: Log | None = None,
) -> list[Path]:
    """Train one model and write the analysis files into ``out`` (created if needed).

    Parameters
    ----------
    config
        Experiment configuration (its ``[source]``, ``[train]``, ``k_grid``, ``reg``).
    out
        Output folder.
    seed
        Training seed.
    langs
        Target languages to analyse (default: all of the configuration).
    words
        Source words for the neighbour table (default: :func:`choose_words`).
    n_neighbors
        Neighbours listed per word and space.
    alpha_k
        Neighbourhood size for the ``|α|`` histogram.
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
    src = exp.source
    missing = [w for w in words or () if w not in src.embeddings.index()]
    if missing:
        raise TaskspecError(f"--words: not in the {src.lang} vocabulary: {', '.join(missing)}")
    run = SeedRun(exp, seed, NeighborCache(exp, width=max(config.k_grid)), progress=progress, log=say)
    x_spec = run.model("opt").network.word_vectors()
    words = list(words) if words else choose_words(src.train.texts, src.config.tokenizer, src.embeddings, x_spec)
    a = _analyse(run, alpha_k, say)
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

    write("k_curve.json", a.curve)
    write(f"k_curve.{image_format}", lambda p: _plot_k_curve(a, src.lang, p))
    write("alpha.json", {"alpha_k": alpha_k, "languages": _alpha_summary(a.alphas)})
    if a.alphas:
        write(f"alpha_hist.{image_format}", lambda p: _plot_alpha(a.alphas, alpha_k, p))
    table = _neighbor_table(exp, a, x_spec, words, n_neighbors)
    write("neighbors.json", table)
    write("neighbors.md", _neighbor_markdown(table, src.lang, seed))
    write("analysis.md", _index_markdown(exp, a, run.model("opt").info["dev_accuracy"], alpha_k, written))
    return written
