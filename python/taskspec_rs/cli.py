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

from .config import ALL_METHODS, TOKENIZERS, DataOptions, TaskspecError, load_config, parse_methods

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
    from .evaluate import load_language, train_language

    config = load_config(args.config)
    out = Path(args.out)
    if occupied(out) and not args.force:  # refuse before training, not after
        raise TaskspecError(f"--out {out} exists and is not empty (use --force to replace it)")
    src = load_language(
        config.source, labels=config.labels, rescale=config.train.rescale, normalize=config.train.normalize
    )
    assert src.train is not None
    labels = list(config.labels) if config.labels else sorted(set(src.train.labels))
    model = train_language(
        src,
        labels=labels,
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


def cmd_predict(args: argparse.Namespace) -> int:
    from .data import atomic_write_text, load_dataset
    from .model import TaskModel

    model = TaskModel.load(args.model)
    path = Path(args.input)
    gold: list[str] | None = None
    if args.format == "text" or (args.format is None and path.suffix.lower() == ".txt"):
        try:
            texts = [line for line in path.read_text("utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise TaskspecError(f"cannot read {path}: {exc}") from None
        if not texts:
            raise TaskspecError(f"{path}: no texts")
    else:
        opts = DataOptions(
            format=args.format,
            text_column=args.text_column,
            label_column=args.label_column,
            absa_labels=args.absa_labels,
        )
        ds = load_dataset(path, options=opts)
        texts, gold = ds.texts, ds.labels
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


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="taskspec-rs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("eval", help="run an experiment (all methods × target languages × seeds)")
    p.add_argument("config", nargs="?", help="TOML configuration; omitted: run the bundled synthetic demo")
    p.add_argument("--out", type=Path, help="output folder (default: taskspec-results/<name>-<time>)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    p.add_argument("--seeds", type=int, help="number of seeds (overrides the config)")
    p.add_argument("--methods", help=f"comma-separated subset of: {','.join(ALL_METHODS)}")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train a source-language model and save it")
    p.add_argument("config", help="TOML configuration (its [source] and [train] are used)")
    p.add_argument("--out", required=True, help="model directory to create")
    p.add_argument(
        "--kind",
        choices=("opt", "fixed", "nnmap"),
        default="opt",
        help="opt: update embeddings (default); fixed / nnmap: frozen embeddings",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing model directory")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

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
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_project)

    p = sub.add_parser("analyze", help="train one model; plots and tables of neighbours, LLM weights, accuracy vs k")
    p.add_argument("config", help="TOML configuration")
    p.add_argument("--out", required=True, type=Path, help="output folder (refused if non-empty without --force)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--lang", help="comma-separated target languages (default: all of the config)")
    p.add_argument("--words", help="comma-separated source words for the neighbour table (default: automatic)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=cmd_analyze)

    sub.add_parser("align", help="align two embedding spaces (Procrustes + self-learning); see align --help")

    p = sub.add_parser("predict", help="classify texts with a saved model")
    p.add_argument("model", help="model directory (source or projected)")
    p.add_argument("input", help="texts: .txt (one per line), .jsonl, .tsv or ABSA .xml")
    p.add_argument("--format", choices=("text", "jsonl", "tsv", "absa_xml"))
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--absa-labels", choices=("three", "binary"), default="three")
    p.add_argument("--out", help="write JSON lines here instead of stdout")
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taskspec-rs`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["align"]:  # its own parser: taskspec_rs.align.main_align
        from .align import main_align

        return main_align(argv[1:])
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
