"""Command-line interface: ``taskspec-rs eval|train|project|predict|analyze|align``.

User mistakes (missing files, malformed data, bad configuration or options)
are reported as one line on stderr with exit status 2; see ``docs/USAGE.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ALL_METHODS, TOKENIZERS, DataOptions, load_config, parse_methods
from .errors import TaskspecError

if TYPE_CHECKING:
    import numpy as np

    from .align import AlignReport
    from .data import Embeddings

__all__ = ["main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`TaskspecError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise TaskspecError(f"{self.prog}: {message}")


def _log(quiet: bool):
    def log(msg: str) -> None:
        if not quiet:
            print(f"[taskspec-rs] {msg}", file=sys.stderr, flush=True)

    return log


def _prepare_out(out: Path, *, force: bool) -> Path:
    """Create ``out``; refuse an existing non-empty folder unless ``force``."""
    if out.exists():
        if not out.is_dir():
            raise TaskspecError(f"--out {out} exists and is not a directory")
        if any(out.iterdir()) and not force:
            raise TaskspecError(f"--out {out} exists and is not empty (use --force to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _default_out(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("taskspec-results") / f"{name}-{stamp}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


# --------------------------------------------------------------------------- eval


def cmd_eval(args: argparse.Namespace) -> int:
    from .demo import DEMO_BANNER, write_demo
    from .evaluate import run_experiment, write_results

    log = _log(args.quiet)
    methods = parse_methods(args.methods) if args.methods else None
    if args.seeds is not None and args.seeds < 1:
        raise TaskspecError("--seeds must be >= 1")
    if args.config is None:
        out = _prepare_out(args.out or _default_out("demo"), force=args.force)
        print(DEMO_BANNER, flush=True)
        config_path = write_demo(out / "demo-data")
        title = "Demo results (synthetic data, not real language)"
    else:
        config_path = Path(args.config)
        load_config(config_path)  # validate before creating any output
        out = _prepare_out(args.out or _default_out(config_path.stem), force=args.force)
        title = f"Results for {config_path.name}"
    config = load_config(config_path)
    result = run_experiment(config, seeds=args.seeds, methods=methods, progress=not args.quiet, log=log)
    paths = write_results(result, out, title=title)
    print(f"\nAccuracy (%), mean ±std over {len(result.meta['seeds'])} seed(s):\n")
    print(result.table())
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analyze import run_analysis

    config = load_config(args.config)
    if args.seed < 0:
        raise TaskspecError("--seed must be >= 0")
    langs = [x.strip() for x in args.lang.split(",") if x.strip()] if args.lang else None
    words = [x.strip() for x in args.words.split(",") if x.strip()] if args.words else None
    out = _prepare_out(Path(args.out), force=args.force)
    paths = run_analysis(
        config, out, seed=args.seed, langs=langs, words=words, progress=not args.quiet, log=_log(args.quiet)
    )
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


# --------------------------------------------------------------------------- train / project / predict


def cmd_train(args: argparse.Namespace) -> int:
    from ._io import occupied
    from .experiment import load_experiment, train_language

    config = load_config(args.config)
    out = Path(args.out)
    if occupied(out) and not args.force:  # refuse before training, not after
        raise TaskspecError(f"--out {out} exists and is not empty (use --force to replace it)")
    exp = load_experiment(config, with_targets=False)
    src = exp.source
    model = train_language(
        src,
        labels=exp.labels,
        kind=args.kind,
        options=config.train,
        seed=args.seed,
        dev=src.dev,
        progress=not args.quiet,
        desc=f"train {args.kind}",
    )
    model.save(out, force=args.force)
    print(
        f"trained {args.kind} model on {src.lang}: best epoch {model.info['best_epoch']}, "
        f"dev accuracy {model.info['dev_accuracy']:.4f}; saved to {out}"
    )
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from .data import load_embeddings
    from .model import TaskModel
    from .train import project_model

    model = TaskModel.load(args.model)
    target = load_embeddings(args.embeddings, key=args.embeddings_key or args.lang)
    tokenizer = args.tokenizer or ("janome" if args.lang == "ja" else "regex")
    if args.k < 1:
        raise TaskspecError("--k must be >= 1")
    projected = project_model(
        model, target, lang=args.lang, tokenizer=tokenizer, method=args.method, k=args.k, reg=args.reg
    )
    projected.save(args.out, force=args.force)
    print(
        f"projected {model.lang} model to {args.lang} ({args.method}"
        f"{f', k={args.k}' if args.method == 'llm' else ''}, {len(target.words)} words); saved to {args.out}"
    )
    return 0


def _predict_inputs(args: argparse.Namespace) -> tuple[list[str], list[str] | None]:
    """Texts to classify and their gold labels (``None`` for plain text)."""
    from .data import load_dataset

    path = Path(args.input)
    if args.format == "text" or (args.format is None and path.suffix.lower() == ".txt"):
        try:
            texts = [line for line in path.read_text("utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise TaskspecError(f"cannot read {path}: {exc}") from None
        if not texts:
            raise TaskspecError(f"{path}: no texts")
        return texts, None
    opts = DataOptions(
        format=args.format,
        text_column=args.text_column,
        label_column=args.label_column,
        absa_labels=args.absa_labels,
    )
    ds = load_dataset(path, options=opts)
    return ds.texts, ds.labels


def cmd_predict(args: argparse.Namespace) -> int:
    from .data import atomic_write_text
    from .model import TaskModel

    model = TaskModel.load(args.model)
    texts, gold = _predict_inputs(args)
    predictions = model.predict(texts)
    lines = []
    for i, (text, pred) in enumerate(zip(texts, predictions)):
        row = {"text": text, "prediction": pred}
        if gold is not None:
            row["label"] = gold[i]
        lines.append(json.dumps(row, ensure_ascii=False))
    payload = "\n".join(lines) + "\n"
    if args.out:
        atomic_write_text(args.out, payload)
    else:
        sys.stdout.write(payload)
    if gold is not None:
        acc = sum(p == g for p, g in zip(predictions, gold)) / len(gold)
        print(f"accuracy {acc:.4f} on {len(gold)} examples", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- align


def _check_align_args(args: argparse.Namespace) -> None:
    if args.dictionary is None and not args.identical_seed:
        raise TaskspecError("--dict is required (or --identical-seed)")
    for flag, value, low in (
        ("--iterations", args.iterations, 0),
        ("--max-vocab", args.max_vocab, 1),
        ("--csls-k", args.csls_k, 1),
    ):
        if value < low:
            raise TaskspecError(f"{flag}: must be >= {low}, got {value}")
    if args.threads is not None and args.threads < 1:
        raise TaskspecError(f"--threads: must be >= 1, got {args.threads}")


def _read_pairs(path: str) -> list[tuple[str, str]]:
    from .align import read_dictionary

    try:
        return read_dictionary(path)
    except FileNotFoundError:
        raise TaskspecError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise TaskspecError(str(exc)) from None


def _load_space(path: str, lang: str | None, flag: str) -> Embeddings:
    """One side's embeddings (``data.load_embeddings``; ``lang`` picks the key of an .npz)."""
    from .data import load_embeddings

    if Path(path).suffix.lower() == ".npz" and not lang:
        raise TaskspecError(f"{path}: an .npz needs {flag} to pick '<lang>__words' / '<lang>__vecs'")
    return load_embeddings(path, key=lang)


def _format_bli(res: dict[str, Any]) -> str:
    parts = [f"{m} " + " ".join(f"{k}={v:.3f}" for k, v in res[m].items()) for m in ("nn", "csls") if m in res]
    return f"{'; '.join(parts)} ({res['n_found']}/{res['n_source_words']} source words found)"


def _bli(
    src: Embeddings, tgt: Embeddings, test: list[tuple[str, str]], args: argparse.Namespace, W: np.ndarray | None = None
) -> str:
    from .align import bli_evaluate

    try:
        res = bli_evaluate(
            src.vectors, tgt.vectors, src.words, tgt.words, test, W=W, csls_k=args.csls_k, num_threads=args.threads
        )
    except ValueError as exc:
        raise TaskspecError(str(exc)) from None
    return _format_bli(res)


def _save_matrix(path: str, w: np.ndarray) -> None:
    import numpy as np

    from ._io import atomic_write

    try:
        atomic_write(path, lambda f: np.save(f, w))
    except OSError as exc:
        raise TaskspecError(f"cannot write {path}: {exc}") from None


def _align_spaces(
    src: Embeddings, tgt: Embeddings, seed: list[tuple[str, str]] | None, args: argparse.Namespace
) -> tuple[np.ndarray, AlignReport]:
    """``(W, AlignReport)`` of :func:`taskspec_rs.align.align` with the command's options."""
    from .align import align

    try:
        return align(
            src.vectors,
            tgt.vectors,
            src.words,
            tgt.words,
            dictionary=seed,
            iterations=args.iterations,
            csls_k=args.csls_k,
            max_vocab=args.max_vocab,
            identical_seed=args.identical_seed,
            num_threads=args.threads,
            progress=not args.quiet,
        )
    except ValueError as exc:
        raise TaskspecError(str(exc)) from None


def cmd_align(args: argparse.Namespace) -> int:
    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    _check_align_args(args)
    seed = _read_pairs(args.dictionary) if args.dictionary else None
    test = _read_pairs(args.test) if args.test else None
    src = _load_space(args.src, args.src_lang, "--src-lang")
    tgt = _load_space(args.tgt, args.tgt_lang, "--tgt-lang")
    say(f"source: {len(src.words)} words x {src.dim}; target: {len(tgt.words)} words x {tgt.dim}")
    if src.dim != tgt.dim:
        raise TaskspecError(f"dimensions differ: source {src.dim}, target {tgt.dim}")
    if test is not None:
        say(f"BLI before alignment: {_bli(src, tgt, test, args)}")
    W, report = _align_spaces(src, tgt, seed, args)
    last = report.iterations[-1]
    say(
        f"aligned: {report.seed_pairs} seed pairs, {len(report.iterations) - 1} self-learning "
        f"iteration(s), final dictionary {last['pairs']} pairs, mean cos {last['objective']:.4f}"
    )
    if test is not None:
        say(f"BLI after alignment:  {_bli(src, tgt, test, args, W)}")
    if args.out:
        _save_matrix(args.out, W)
        say(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------- parser


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="run an experiment (all methods × target languages × seeds)")
    p.add_argument("config", nargs="?", help="TOML configuration; omitted: run the bundled synthetic demo")
    p.add_argument("--out", type=Path, help="output folder (default: taskspec-results/<name>-<time>)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    p.add_argument("--seeds", type=int, help="number of seeds (overrides the config)")
    p.add_argument("--methods", help=f"comma-separated subset of: {','.join(ALL_METHODS)}")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=cmd_eval)


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a source-language model and save it")
    p.add_argument("config", help="TOML configuration (its [source] and [train] are used)")
    p.add_argument("--out", required=True, help="model directory to create")
    p.add_argument(
        "--kind",
        choices=("opt", "fixed", "nnmap"),
        default="opt",
        help="opt: update embeddings (default); fixed / nnmap: frozen embeddings",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--force", action="store_true", help="replace an existing model directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


def _add_project(sub: Any) -> None:
    p = sub.add_parser("project", help="make a target-language model by projecting embeddings")
    p.add_argument("model", help="trained source model directory")
    p.add_argument("--embeddings", required=True, help="general target vectors (.vec or .npz)")
    p.add_argument("--embeddings-key", help="key inside an .npz (default: --lang)")
    p.add_argument("--lang", required=True, help="target language code")
    p.add_argument("--tokenizer", choices=TOKENIZERS, help="default: janome for ja, else regex")
    p.add_argument(
        "--method",
        choices=("llm", "lp", "orth", "gen"),
        default="llm",
        help="llm (default), lp, orth (Procrustes), or gen (= use the general vectors, for fixed models)",
    )
    p.add_argument("--k", type=int, default=10, help="neighbours for llm (default 10)")
    p.add_argument("--reg", type=float, default=1e-3, help="LLM regulariser (default 1e-3)")
    p.add_argument("--out", required=True, help="target model directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing target model directory")
    p.set_defaults(func=cmd_project)


def _add_analyze(sub: Any) -> None:
    p = sub.add_parser("analyze", help="train one model; plots and tables of neighbours, LLM weights, accuracy vs k")
    p.add_argument("config", help="TOML configuration")
    p.add_argument("--out", required=True, type=Path, help="output folder (refused if non-empty without --force)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--lang", help="comma-separated target languages (default: all of the config)")
    p.add_argument("--words", help="comma-separated source words for the neighbour table (default: automatic)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=cmd_analyze)


def _add_align(sub: Any) -> None:
    p = sub.add_parser(
        "align",
        help="align two embedding spaces (Procrustes + self-learning), optionally reporting BLI precision",
        description="Map a source embedding space onto a target space with an orthogonal matrix "
        "(Procrustes on a seed dictionary + self-learning), optionally reporting BLI precision.",
    )
    p.add_argument("src", help="source vectors: word2vec text (.vec/.txt) or .npz (with --src-lang)")
    p.add_argument("tgt", help="target vectors: word2vec text (.vec/.txt) or .npz (with --tgt-lang)")
    p.add_argument("--dict", dest="dictionary", help="seed dictionary, MUSE format 'source target' per line")
    p.add_argument("--test", help="test dictionary for BLI precision (MUSE format)")
    p.add_argument("--src-lang", help="language key in a source .npz ('<lang>__words', '<lang>__vecs')")
    p.add_argument("--tgt-lang", help="language key in a target .npz")
    p.add_argument("--iterations", type=int, default=5, help="self-learning iterations (default 5)")
    p.add_argument("--csls-k", type=int, default=10, help="CSLS neighbourhood (default 10)")
    p.add_argument("--max-vocab", type=int, default=20000, help="words per side for induction (default 20000)")
    p.add_argument("--identical-seed", action="store_true", help="also seed with identically spelt words")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    p.add_argument("--out", help="write W (float32, d x d) here as .npy")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_align)


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="classify texts with a saved model")
    p.add_argument("model", help="model directory (source or projected)")
    p.add_argument("input", help="texts: .txt (one per line), .jsonl, .tsv or ABSA .xml")
    p.add_argument(
        "--format",
        choices=("text", "jsonl", "tsv", "absa_xml"),
        help="input format (default: from the extension: .txt text, .jsonl/.json jsonl, .tsv tsv, .xml absa_xml)",
    )
    p.add_argument("--text-column", default="text", help="text key / column of .jsonl or .tsv input (default text)")
    p.add_argument("--label-column", default="label", help="label key / column of .jsonl or .tsv input (default label)")
    p.add_argument(
        "--absa-labels",
        choices=("three", "binary"),
        default="three",
        help="ABSA .xml sentence labels: three (positive/negative/neutral, default) or binary (positive/negative)",
    )
    p.add_argument("--out", help="write JSON lines here instead of stdout")
    p.set_defaults(func=cmd_predict)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="taskspec-rs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_eval, _add_train, _add_project, _add_analyze, _add_align, _add_predict):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taskspec-rs`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except TaskspecError as exc:
        print(f"taskspec-rs: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("taskspec-rs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
