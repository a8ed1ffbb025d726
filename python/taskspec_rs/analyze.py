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
from pathlib import Path

import numpy as np

from ._io import atomic_write, atomic_write_text
from .config import ExperimentConfig, TaskspecError
from .data import Embeddings, encode, tokenize
from .evaluate import _accuracy, _best_k, _Split, load_language, train_language
from .model import label_indices
from .project import knn, llm_weights
from .train import llm_neighbors, llm_projections

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
    k = min(n + (1 if skip is not None else 0), len(base))
    sims, idx = knn(query[None, :], base, k)
    out = [(words[j], round(float(s), 3)) for s, j in zip(sims[0], idx[0]) if j != skip]
    return out[:n]


def run_analysis(
    config: ExperimentConfig,
    out: str | Path,
    *,
    seed: int = 0,
    langs: Sequence[str] | None = None,
    words: Sequence[str] | None = None,
    n_neighbors: int = 5,
    alpha_k: int = 10,
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

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    say = log or (lambda _msg: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    opts = config.train
    known = [t.lang for t in config.targets]
    if langs:
        unknown = [lang for lang in langs if lang not in known]
        if unknown:
            raise TaskspecError(f"--lang: {', '.join(unknown)} not among the targets ({', '.join(known)})")
    target_cfgs = [t for t in config.targets if not langs or t.lang in langs]

    say(f"loading source language {config.source.lang}")
    source = load_language(config.source, labels=config.labels, rescale=opts.rescale, normalize=opts.normalize)
    assert source.train is not None and source.dev is not None
    labels = list(config.labels) if config.labels else sorted(set(source.train.labels))
    targets = []
    for t_cfg in target_cfgs:
        say(f"loading target language {t_cfg.lang}")
        t = load_language(t_cfg, labels=labels, rescale=opts.rescale, normalize=opts.normalize)
        if t.embeddings.dim != source.embeddings.dim:
            raise TaskspecError(f"embedding dimension mismatch: {t.lang} has {t.embeddings.dim}")
        targets.append(t)
    src_index = source.embeddings.index()
    if words:
        missing = [w for w in words if w not in src_index]
        if missing:
            raise TaskspecError(f"--words: not in the {source.lang} vocabulary: {', '.join(missing)}")

    say(f"seed {seed}: training the opt model on {source.lang}")
    model = train_language(
        source, labels=labels, kind="opt", options=opts, seed=seed, dev=source.dev, progress=progress
    )
    x_gen, x_spec = source.embeddings.vectors, model.network.word_vectors()
    words = (
        list(words) if words else choose_words(source.train.texts, source.config.tokenizer, source.embeddings, x_spec)
    )
    k_grid = list(config.k_grid)

    # ---- Figure 3: accuracy as a function of k (source self-projection and target test)
    say("source self-projection for every k")
    dev_emb = source.needed_embeddings([source.dev])
    dev_rows = np.array([src_index[w] for w in dev_emb.words], dtype=np.int64)
    dev_split = _Split.make(source.dev, dev_emb, source.config.tokenizer, labels)
    proj = llm_projections(x_gen, x_spec, dev_emb.vectors, k_grid, reg=config.reg, self_rows=dev_rows)
    curve: dict = {
        "k": k_grid,
        "source_dev": {str(k): _accuracy(model, dev_split.ids, dev_split.gold, v) for k, v in proj.items()},
        "targets": {},
    }
    k_task = _best_k({int(k): v for k, v in curve["source_dev"].items()})
    curve["k_task"] = k_task
    tgt_vocab: dict[str, Embeddings] = {}
    y_spec_task: dict[str, np.ndarray] = {}
    alphas: dict[str, np.ndarray] = {}
    for t in targets:
        assert t.test is not None
        say(f"{t.lang}: projecting for every k")
        vocab = t.needed_embeddings([t.test])
        if not vocab.words:
            raise TaskspecError(f"{t.lang}: no word of the test data is in {t.config.embeddings}")
        tgt_vocab[t.lang] = vocab
        split = _Split(encode(t.test.texts, vocab.index(), tokenizer=t.config.tokenizer), label_indices(t.test, labels))
        nb = llm_neighbors(x_gen, vocab.vectors, max(k_grid + [alpha_k]))
        proj_t = llm_projections(x_gen, x_spec, vocab.vectors, k_grid, reg=config.reg, neighbors=nb)
        curve["targets"][t.lang] = {str(k): _accuracy(model, split.ids, split.gold, v) for k, v in proj_t.items()}
        y_spec_task[t.lang] = proj_t[k_task]
        ka = min(alpha_k, nb[1].shape[1])
        alphas[t.lang] = np.abs(llm_weights(vocab.vectors, x_gen, np.ascontiguousarray(nb[1][:, :ka]), reg=config.reg))

    written: list[Path] = []

    def write_json(name: str, payload: dict) -> None:
        path = out / name
        atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        written.append(path)

    write_json("k_curve.json", curve)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(
        k_grid, [curve["source_dev"][str(k)] for k in k_grid], "k-o", lw=2.5, label=f"{source.lang} dev (self-proj.)"
    )
    for lang, accs in curve["targets"].items():
        ax.plot(k_grid, [accs[str(k)] for k in k_grid], "-o", ms=3, lw=1.2, label=f"{lang} test")
    ax.axvline(k_task, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(k_grid)
    ax.set_xticklabels([str(k) for k in k_grid])
    ax.set_xlabel("k (LLM neighbours)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy vs k (seed {seed}; dotted: k_task = {k_task})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    atomic_write(out / "k_curve.png", lambda f: fig.savefig(f, dpi=100, format="png"))
    plt.close(fig)
    written.append(out / "k_curve.png")

    # ---- Figure 2: |alpha| of the nearest neighbour vs the others
    alpha_summary = {}
    for lang, a in alphas.items():
        alpha_summary[lang] = {
            "k": int(a.shape[1]),
            "nearest_mean": float(a[:, 0].mean()),
            "others_mean": float(a[:, 1:].mean()) if a.shape[1] > 1 else None,
            "nearest_largest_fraction": float((a.argmax(axis=1) == 0).mean()),
        }
    write_json("alpha.json", {"alpha_k": alpha_k, "languages": alpha_summary})
    if alphas:
        first = np.concatenate([a[:, 0] for a in alphas.values()])
        rest = np.concatenate([a[:, 1:].ravel() for a in alphas.values()])
        top = float(np.quantile(np.concatenate([first, rest]), 0.995)) or 1.0
        bins = np.linspace(0, top, 41)
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.hist(first, bins=bins, density=True, alpha=0.6, label=f"nearest neighbour (n={len(first)})")
        if rest.size:
            ax.hist(rest, bins=bins, density=True, alpha=0.6, label=f"other neighbours (n={len(rest)})")
        ax.set_xlabel("|α| (LLM weight)")
        ax.set_ylabel("density")
        ax.set_title(f"|α| of LLM weights, k = {alpha_k}, targets: {', '.join(alphas)}", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_write(out / "alpha_hist.png", lambda f: fig.savefig(f, dpi=100, format="png"))
        plt.close(fig)
        written.append(out / "alpha_hist.png")

    # ---- Table 6: nearest neighbours, general vs task-specific space
    table: dict = {"words": words, "k_task": k_task, "source": {}, "targets": {}}
    md = [f"# Nearest neighbours (seed {seed}; target task-specific = LLM with k_task = {k_task})", ""]
    for w in words:
        i = src_index[w]
        table["source"][w] = {
            "general": _neighbours(x_gen[i], x_gen, source.embeddings.words, n_neighbors, skip=i),
            "task_specific": _neighbours(x_spec[i], x_spec, source.embeddings.words, n_neighbors, skip=i),
        }
        for lang, vocab in tgt_vocab.items():
            table["targets"].setdefault(lang, {})[w] = {
                "general": _neighbours(x_gen[i], vocab.vectors, vocab.words, n_neighbors),
                "task_specific": _neighbours(x_spec[i], y_spec_task[lang], vocab.words, n_neighbors),
            }

    def cell(pairs: list) -> str:
        return ", ".join(f"{word} ({s:.2f})" for word, s in pairs).replace("|", "\\|")

    spaces = [(source.lang, table["source"])] + list(table["targets"].items())
    md += ["| word | language | general space | task-specific space |", "|---|---|---|---|"]
    for w in words:
        for lang, by_word in spaces:
            r = by_word[w]
            md.append(f"| {w} | {lang} | {cell(r['general'])} | {cell(r['task_specific'])} |")
    write_json("neighbors.json", table)
    atomic_write_text(out / "neighbors.md", "\n".join(md) + "\n")
    written.append(out / "neighbors.md")

    index_md = [
        f"# Analysis of {config.path.name if config.path else 'configuration'} (seed {seed})",
        "",
        f"Source {source.lang}: dev accuracy {model.info['dev_accuracy']:.3f}; k_task = {k_task}.",
        "",
        "| k | " + " | ".join([f"{source.lang} dev (self)"] + list(curve["targets"])) + " |",
        "|" + "---|" * (len(curve["targets"]) + 2),
    ]
    for k in k_grid:
        cells = [f"{100 * curve['source_dev'][str(k)]:.1f}"] + [
            f"{100 * v[str(k)]:.1f}" for v in curve["targets"].values()
        ]
        index_md.append(f"| {k} | " + " | ".join(cells) + " |")
    index_md += ["", f"|α| (k = {alpha_k}): mean for the nearest neighbour vs the others, share of words whose"]
    index_md += ["largest weight is the nearest neighbour:", ""]
    for lang, a in alpha_summary.items():
        others = "–" if a["others_mean"] is None else f"{a['others_mean']:.3f}"
        index_md.append(f"- {lang}: {a['nearest_mean']:.3f} vs {others}; {100 * a['nearest_largest_fraction']:.0f} %")
    index_md += ["", "Files: " + ", ".join(p.name for p in written) + ".", ""]
    atomic_write_text(out / "analysis.md", "\n".join(index_md))
    written.append(out / "analysis.md")
    return written
