"""Experiment configuration: TOML schema, defaults and validation.

A configuration describes one source language (training data + general
embeddings) and one or more target languages (test data + general embeddings,
optionally dev and train data).  Every relative path is resolved against the
directory of the configuration file.  The full schema is documented in
``docs/USAGE.md``; unknown keys and wrongly typed values raise
:class:`TaskspecError` so that mistakes are reported, not silently ignored.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on old interpreters
    import tomli as tomllib

__all__ = [
    "ALL_METHODS",
    "DEFAULT_METHODS",
    "NORMALIZE_MODES",
    "DataOptions",
    "ExperimentConfig",
    "LanguageConfig",
    "TaskspecError",
    "TrainOptions",
    "load_config",
    "parse_config",
]

#: Every evaluation method, in the order used for tables.
ALL_METHODS: tuple[str, ...] = (
    "clwe_fixed",
    "clwe_fixed_nnmap",
    "clwe_opt_lp",
    "clwe_opt_orth",
    "clwe_opt_llm_k1",
    "clwe_opt_llm_ktask",
    "clwe_opt_llm_csls_ktask",
    "clwe_opt_llm_margin",
    "clwe_opt_llm_ktasklang",
    "monolingual",
)

#: Methods run when a configuration does not list ``methods`` (the paper's seven).
DEFAULT_METHODS: tuple[str, ...] = (
    "clwe_fixed",
    "clwe_fixed_nnmap",
    "clwe_opt_lp",
    "clwe_opt_llm_k1",
    "clwe_opt_llm_ktask",
    "clwe_opt_llm_ktasklang",
    "monolingual",
)

#: Values of ``[train] normalize`` (general-space normalisation of every language).
NORMALIZE_MODES = ("none", "center", "unit_center_unit")

FORMATS = ("jsonl", "tsv", "absa_xml")
ABSA_LABEL_MODES = ("three", "binary")
TOKENIZERS = ("regex", "janome")


class TaskspecError(Exception):
    """A user mistake (bad input file, bad configuration, bad option).

    The command-line interface prints the message as one line on stderr and
    exits with status 2 instead of showing a traceback.
    """


@dataclass(frozen=True)
class DataOptions:
    """How a labelled dataset file is read.

    Attributes
    ----------
    format
        ``"jsonl"``, ``"tsv"`` or ``"absa_xml"``; ``None`` infers it from the
        file extension (``.jsonl``/``.json`` → jsonl, ``.tsv`` → tsv,
        ``.xml`` → absa_xml).
    text_column, label_column
        JSON keys (jsonl) or header names (tsv) of the text and the label.
    absa_labels
        Sentence-label rule for SemEval ABSA XML: ``"three"`` keeps sentences
        whose opinions all have one polarity (positive/negative/neutral);
        ``"binary"`` keeps only all-positive or all-negative sentences.
    """

    format: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    absa_labels: str = "three"


@dataclass(frozen=True)
class LanguageConfig:
    """One language of an experiment (the source or one target).

    Attributes
    ----------
    lang
        Language code used in outputs (e.g. ``"fr"``).
    embeddings
        Path of the general embeddings (word2vec text or ``.npz``).
    embeddings_key
        Key prefix inside an ``.npz`` file (``<key>__words``/``<key>__vecs``);
        defaults to ``lang``.
    tokenizer
        ``"regex"`` (lower-case + ``\\w+(?:['’]\\w+)?``) or ``"janome"``;
        defaults to ``"janome"`` for ``lang = "ja"``, else ``"regex"``.
    train, dev, test
        Optional dataset paths (source requires train and dev; targets
        require test).
    data
        How the dataset files are parsed.
    """

    lang: str
    embeddings: Path
    embeddings_key: str
    tokenizer: str
    data: DataOptions
    train: Path | None = None
    dev: Path | None = None
    test: Path | None = None


@dataclass(frozen=True)
class TrainOptions:
    """Training hyperparameters (defaults documented in ``docs/USAGE.md``)."""

    epochs: int = 25
    lr: float = 1e-3
    batch_size: int = 32
    hidden: int = 128
    dropout: float = 0.3
    patience: int = 5
    nnmap_hidden: int = 0  # 0 → same as the embedding dimension
    rescale: bool = True  # scale vectors to mean norm sqrt(dim), see Embeddings.rescaled
    normalize: str = "none"  # general-space normalisation before rescaling, see NORMALIZE_MODES


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment configuration."""

    source: LanguageConfig
    targets: tuple[LanguageConfig, ...]
    seeds: int = 3
    k_grid: tuple[int, ...] = (1, 2, 3, 5, 10, 20, 50)
    reg: float = 1e-3
    tasklang_dev_size: int = 100
    csls_k: int = 10
    margin_grid: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2)
    methods: tuple[str, ...] = DEFAULT_METHODS
    labels: tuple[str, ...] | None = None
    train: TrainOptions = field(default_factory=TrainOptions)
    path: Path | None = None


_TOP_KEYS = {
    "seeds",
    "k_grid",
    "reg",
    "tasklang_dev_size",
    "csls_k",
    "margin_grid",
    "methods",
    "labels",
    "train",
    "data",
    "source",
    "target",
}
_LANG_KEYS = {
    "lang",
    "train",
    "dev",
    "test",
    "embeddings",
    "embeddings_key",
    "tokenizer",
    "format",
    "text_column",
    "label_column",
    "absa_labels",
}
_DATA_KEYS = {"format", "text_column", "label_column", "absa_labels", "embeddings", "tokenizer"}


def _type_name(tp: Any) -> str:
    if isinstance(tp, tuple):
        return " or ".join(t.__name__ for t in tp)
    return tp.__name__


def _get(table: Mapping[str, Any], key: str, tp: Any, where: str, default: Any = None) -> Any:
    """Fetch ``table[key]`` checking its type (bool is never accepted as int)."""
    if key not in table:
        return default
    value = table[key]
    ok = isinstance(value, tp) and not (isinstance(value, bool) and tp in (int, float, (int, float)))
    if not ok:
        raise TaskspecError(f"config: {where}{key} must be {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise TaskspecError(
            f"config: unknown key(s) {', '.join(unknown)} in {where or 'top level'}"
            f" (allowed: {', '.join(sorted(allowed))})"
        )


def _choice(value: str | None, choices: tuple[str, ...], what: str) -> None:
    if value is not None and value not in choices:
        raise TaskspecError(f"config: {what} must be one of {', '.join(choices)}, got {value!r}")


def _parse_language(table: Any, *, where: str, base: Path, defaults: Mapping[str, Any]) -> LanguageConfig:
    if not isinstance(table, dict):
        raise TaskspecError(f"config: [{where}] must be a table")
    _check_keys(table, _LANG_KEYS, f"[{where}]")
    pre = f"{where}."
    lang = _get(table, "lang", str, pre)
    if not lang:
        raise TaskspecError(f"config: {pre}lang is required")
    merged = {**defaults, **table}

    def path_of(key: str) -> Path | None:
        value = _get(merged, key, str, pre)
        return None if value is None else (base / value)

    embeddings = path_of("embeddings")
    if embeddings is None:
        raise TaskspecError(f"config: {pre}embeddings is required (or set data.embeddings)")
    tokenizer = _get(merged, "tokenizer", str, pre) or ("janome" if lang == "ja" else "regex")
    _choice(tokenizer, TOKENIZERS, f"{pre}tokenizer")
    data = DataOptions(
        format=_get(merged, "format", str, pre),
        text_column=_get(merged, "text_column", str, pre, "text"),
        label_column=_get(merged, "label_column", str, pre, "label"),
        absa_labels=_get(merged, "absa_labels", str, pre, "three"),
    )
    _choice(data.format, FORMATS, f"{pre}format")
    _choice(data.absa_labels, ABSA_LABEL_MODES, f"{pre}absa_labels")
    return LanguageConfig(
        lang=lang,
        embeddings=embeddings,
        embeddings_key=_get(table, "embeddings_key", str, pre) or lang,
        tokenizer=tokenizer,
        data=data,
        train=path_of("train"),
        dev=path_of("dev"),
        test=path_of("test"),
    )


def _parse_train(table: Any) -> TrainOptions:
    if not isinstance(table, dict):
        raise TaskspecError("config: [train] must be a table")
    allowed = {f.name for f in dataclasses.fields(TrainOptions)}
    _check_keys(table, allowed, "[train]")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TrainOptions):
        tp = {"float": (int, float), "bool": bool, "str": str}.get(str(f.type), int)
        value = _get(table, f.name, tp, "train.", f.default)
        values[f.name] = float(value) if tp == (int, float) else value
    opts = TrainOptions(**values)
    for name in ("epochs", "batch_size"):
        if getattr(opts, name) < 1:
            raise TaskspecError(f"config: train.{name} must be >= 1")
    if opts.lr <= 0:
        raise TaskspecError("config: train.lr must be > 0")
    if not 0.0 <= opts.dropout < 1.0:
        raise TaskspecError("config: train.dropout must be in [0, 1)")
    _choice(opts.normalize, NORMALIZE_MODES, "train.normalize")
    if opts.hidden < 0 or opts.patience < 0 or opts.nnmap_hidden < 0:
        raise TaskspecError("config: train.hidden, train.patience and train.nnmap_hidden must be >= 0")
    return opts


def parse_config(raw: Mapping[str, Any], *, base: Path, path: Path | None = None) -> ExperimentConfig:
    """Validate a parsed TOML document.

    Parameters
    ----------
    raw
        The TOML document as a dictionary.
    base
        Directory against which relative paths are resolved.
    path
        The configuration file (recorded for reporting only).

    Returns
    -------
    ExperimentConfig

    Raises
    ------
    TaskspecError
        On unknown keys, wrong types, invalid values or missing sections.
    """
    _check_keys(raw, _TOP_KEYS, "")
    defaults = raw.get("data", {})
    if not isinstance(defaults, dict):
        raise TaskspecError("config: [data] must be a table")
    _check_keys(defaults, _DATA_KEYS, "[data]")
    if "source" not in raw:
        raise TaskspecError("config: missing [source] section")
    source = _parse_language(raw["source"], where="source", base=base, defaults=defaults)
    if source.train is None or source.dev is None:
        raise TaskspecError("config: source.train and source.dev are required")
    targets_raw = raw.get("target", [])
    if not isinstance(targets_raw, list) or not targets_raw:
        raise TaskspecError("config: at least one [[target]] section is required")
    targets = tuple(
        _parse_language(t, where=f"target[{i}]", base=base, defaults=defaults) for i, t in enumerate(targets_raw)
    )
    for i, t in enumerate(targets):
        if t.test is None:
            raise TaskspecError(f"config: target[{i}] ({t.lang}).test is required")
    langs = [t.lang for t in targets]
    if len(set(langs)) != len(langs):
        raise TaskspecError(f"config: duplicate target languages in {langs}")

    seeds = _get(raw, "seeds", int, "", 3)
    if seeds < 1:
        raise TaskspecError("config: seeds must be >= 1")
    k_grid_raw = _get(raw, "k_grid", list, "", [1, 2, 3, 5, 10, 20, 50])
    if not k_grid_raw or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in k_grid_raw):
        raise TaskspecError("config: k_grid must be a non-empty list of positive integers")
    reg = float(_get(raw, "reg", (int, float), "", 1e-3))
    if reg < 0:
        raise TaskspecError("config: reg must be >= 0")
    dev_size = _get(raw, "tasklang_dev_size", int, "", 100)
    if dev_size < 1:
        raise TaskspecError("config: tasklang_dev_size must be >= 1")
    csls_k = _get(raw, "csls_k", int, "", 10)
    if csls_k < 1:
        raise TaskspecError("config: csls_k must be >= 1")
    margin_raw = _get(raw, "margin_grid", list, "", [0.0, 0.02, 0.05, 0.1, 0.2])
    if not margin_raw or not all(
        isinstance(m, (int, float)) and not isinstance(m, bool) and 0 <= m < float("inf") for m in margin_raw
    ):
        raise TaskspecError("config: margin_grid must be a non-empty list of finite numbers >= 0")
    methods_raw = _get(raw, "methods", list, "", list(DEFAULT_METHODS))
    methods = parse_methods(methods_raw)
    labels_raw = _get(raw, "labels", list, "", None)
    if labels_raw is not None and not (labels_raw and all(isinstance(x, str) for x in labels_raw)):
        raise TaskspecError("config: labels must be a non-empty list of strings")
    return ExperimentConfig(
        source=source,
        targets=targets,
        seeds=seeds,
        k_grid=tuple(sorted(set(k_grid_raw))),
        reg=reg,
        tasklang_dev_size=dev_size,
        csls_k=csls_k,
        margin_grid=tuple(sorted({float(m) for m in margin_raw})),
        methods=methods,
        labels=None if labels_raw is None else tuple(labels_raw),
        train=_parse_train(raw.get("train", {})),
        path=path,
    )


def parse_methods(methods: Any) -> tuple[str, ...]:
    """Validate a list of method names; returns them in canonical table order."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise TaskspecError("config: methods must be a non-empty list of method names")
    unknown = sorted(set(methods) - set(ALL_METHODS))
    if unknown:
        raise TaskspecError(f"unknown method(s) {', '.join(unknown)} (known: {', '.join(ALL_METHODS)})")
    return tuple(m for m in ALL_METHODS if m in methods)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML configuration file.

    Parameters
    ----------
    path
        The ``.toml`` file; relative paths inside it are resolved against its
        directory.

    Raises
    ------
    TaskspecError
        If the file is missing, is not valid TOML or fails validation.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskspecError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskspecError(f"cannot read config file {path}: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskspecError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(raw, base=path.resolve().parent, path=path)
