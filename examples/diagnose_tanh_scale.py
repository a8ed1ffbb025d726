"""Does the model's tanh, at the rescaled magnitude, hurt zero-shot transfer to some languages?

Trains a logistic regression on the mean of f(word vectors) of the English training sentences and reports
dev-set accuracy (never test) in English and the target languages, for f = identity (the data README's
reference model), f = tanh(sqrt(d) * x) (what the classifier's first layer sees with ``train.rescale = true``)
and f = tanh(4 * x) (a nearly linear tanh). Needs scikit-learn (``pip install ".[bench]"``).

    python examples/diagnose_tanh_scale.py examples/sib200.toml --langs de,fr,ja,tr
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression
from taskspec_rs.config import load_config
from taskspec_rs.data import tokenize
from taskspec_rs.experiment import load_language
from taskspec_rs.model import label_indices


def mean_features(lang, dataset, f) -> np.ndarray:
    index = lang.embeddings.index()
    rows = []
    for text in dataset.texts:
        ids = [index[w] for w in tokenize(text, tokenizer=lang.config.tokenizer) if w in index]
        rows.append(f(lang.embeddings.vectors[ids]).mean(0) if ids else np.zeros(lang.embeddings.dim))
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--langs", default="de,fr,ja,tr")
    args = parser.parse_args()
    cfg = load_config(args.config)
    src = load_language(cfg.source, labels=cfg.labels, rescale=False)
    labels = cfg.labels or sorted(set(src.train.labels))
    targets = {t.lang: t for t in cfg.targets}
    langs = [load_language(targets[code], labels=labels, rescale=False) for code in args.langs.split(",")]
    root_d = np.sqrt(src.embeddings.dim)
    variants = {
        "identity": lambda v: v,
        "tanh(sqrt(d) x)": lambda v: np.tanh(root_d * v),
        "tanh(4 x)": lambda v: np.tanh(4 * v),
    }
    print("| f | " + " | ".join(["en"] + [t.lang for t in langs]) + " |")
    print("|---" * (len(langs) + 2) + "|")
    y = label_indices(src.train, labels)
    for name, f in variants.items():
        clf = LogisticRegression(max_iter=3000, C=10).fit(mean_features(src, src.train, f), y)
        accs = [clf.score(mean_features(src, src.dev, f), label_indices(src.dev, labels))]
        accs += [clf.score(mean_features(t, t.dev, f), label_indices(t.dev, labels)) for t in langs]
        print(f"| {name} | " + " | ".join(f"{a:.3f}" for a in accs) + " |")


if __name__ == "__main__":
    main()
