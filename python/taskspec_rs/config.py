"""Experiment configuration: TOML schema, defaults and validation.

A configuration describes one source language (training data + general
embeddings) and one or more target languages (test data + general embeddings,
optionally dev and train data).  Every relative path is resolved against the
directory of the configuration file.  The full schema is documented in
``docs/USAGE.md``; unknown keys and wrongly typed values raise
:class:`TaskspecError` so that mistakes are reported, not silently ignored.

The dataclasses below are the single source of truth of the schema: the
allowed keys of every table, their TOML types (from the field annotations),
their defaults (from the field defaults) and their validation rules (from the
field metadata, see :func:`_at_least` and friends) are all derived from
:func:`dataclasses.fields`.
"""

from __future__ import annotations

import builtins
import math
import sys
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from .errors import TaskspecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on old interpreters
    import tomli as tomllib

__all__ = [
    "ALL_METHODS",
    "DEFAULT_METHODS",
    "NORMALIZATIONS",
    "NORMALIZE_MODES",
    "DataOptions",
    "ExperimentConfig",
    "LanguageConfig",
    "TaskspecError",
    "TrainOptions",
    "VOCABULARIES",
    "load_config",
    "parse_config",
]

from .methods import METHODS  # noqa: E402  (the registry; it imports nothing heavy)

#: Every evaluation method, in the order used for tables (the keys of the method registry).
ALL_METHODS: tuple[str, ...] = tuple(METHODS)

#: Methods run when a configuration does not list ``methods`` (the paper's seven).
DEFAULT_METHODS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if m.paper)

#: General-space normalisations (``[train] normalize``), as VecMap step sequences
#: (see :func:`taskspec_rs.data.normalize_embeddings`).
NORMALIZATIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "center": ("center",),
    "unit_center_unit": ("unit", "center", "unit"),
}
NORMALIZE_MODES = tuple(NORMALIZATIONS)

#: The classifier's vocabulary (``[train] vocabulary``): the words of the training data (the paper's
#: protocol) or every word of the general embeddings.
VOCABULARIES = ("train", "general")

#: The k values tried by the ``*_ktask`` methods and ``taskspec-rs project --k auto`` unless configured.
DEFAULT_K_GRID: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)

FORMATS = ("jsonl", "tsv", "absa_xml")
ABSA_LABEL_MODES = ("three", "binary")
TOKENIZERS = ("regex", "janome")


def parse_methods(methods: Any) -> tuple[str, ...]:
    """Validate a list of method names; returns them in canonical table order (``"all"``: every method)."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise TaskspecError("config: methods must be a non-empty list of method names")
    if methods == ["all"]:
        return tuple(METHODS)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise TaskspecError(f"unknown method(s) {', '.join(unknown)} (known: {', '.join(METHODS)})")
    return tuple(m for m in METHODS if m in methods)


# --------------------------------------------------------------------------- field metadata
#
# Keys understood in ``field(metadata=...)``:
#   "check"   value -> None, or what the value must be (the error says "<key> must be <that>");
#             it sees the value after conversion (floats as float, lists as tuples).
#   "parse"   raw TOML value -> field value, replacing the generic conversion and checks.
#   "sort"    a list becomes a sorted tuple without duplicates.
#   "key"     the TOML key when it differs from the field name; None: not read from TOML.
#   "flatten" the fields of this nested dataclass are keys of the same table.
#   "shared"  the key(s) may also be given once in [data], as a default for every language.


def _at_least(low: float) -> dict[str, Any]:
    return {"check": lambda v: f">= {low}" if v < low else None}


def _above(low: float) -> dict[str, Any]:
    return {"check": lambda v: f"> {low}" if v <= low else None}


def _fraction() -> dict[str, Any]:
    return {"check": lambda v: None if 0.0 <= v < 1.0 else "in [0, 1)"}


def _one_of(choices: tuple[str, ...]) -> dict[str, Any]:
    return {"check": lambda v: None if v in choices else f"one of {', '.join(choices)}, got {v!r}"}


def _list_of(what: str, *, minimum: float | None = None, sort: bool = False) -> dict[str, Any]:
    """A non-empty list (items typed by the annotation), each finite and >= ``minimum`` when given."""

    def check(items: tuple[Any, ...]) -> str | None:
        ok = bool(items) and (minimum is None or all(minimum <= x < math.inf for x in items))
        return None if ok else f"a non-empty list of {what}"

    return {"check": check, "sort": sort}


# --------------------------------------------------------------------------- schema


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

    format: str | None = field(default=None, metadata=_one_of(FORMATS))
    text_column: str = "text"
    label_column: str = "label"
    absa_labels: str = field(default="three", metadata=_one_of(ABSA_LABEL_MODES))


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
    alignment
        Optional ``.npy`` matrix ``W`` (e.g. from ``taskspec-rs align --out``)
        applied to this language's vectors, ``vectors @ W``, right after
        loading (before normalisation and rescaling); see
        :func:`taskspec_rs.interop.apply_alignment`.
    """

    lang: str
    embeddings: Path = field(metadata={"shared": True})
    embeddings_key: str
    tokenizer: str = field(metadata={"shared": True, **_one_of(TOKENIZERS)})
    data: DataOptions = field(metadata={"shared": True, "flatten": True})
    train: Path | None = None
    dev: Path | None = None
    test: Path | None = None
    alignment: Path | None = None


@dataclass(frozen=True)
class TrainOptions:
    """Training hyperparameters (defaults documented in ``docs/USAGE.md``)."""

    epochs: int = field(default=20, metadata=_at_least(1))
    lr: float = field(default=1e-3, metadata=_above(0))
    batch_size: int = field(default=32, metadata=_at_least(1))
    hidden: int = field(default=128, metadata=_at_least(0))
    dropout: float = field(default=0.2, metadata=_fraction())
    patience: int = field(default=0, metadata=_at_least(0))
    # 0 → same as the embedding dimension
    nnmap_hidden: int = field(default=0, metadata=_at_least(0))
    rescale: bool = True  # scale vectors to mean norm sqrt(dim), see Embeddings.rescaled
    # general-space normalisation before rescaling, see NORMALIZE_MODES
    normalize: str = field(default="none", metadata=_one_of(NORMALIZE_MODES))
    # "train": the words of the training data with a general vector (the paper); "general": every general word
    vocabulary: str = field(default="train", metadata=_one_of(VOCABULARIES))
    # with vocabulary = "train": how often a word must occur in the training data to be in the vocabulary
    min_count: int = field(default=1, metadata=_at_least(1))


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment configuration."""

    source: LanguageConfig
    targets: tuple[LanguageConfig, ...] = field(metadata={"key": "target"})
    seeds: int = field(default=3, metadata=_at_least(1))
    k_grid: tuple[int, ...] = field(
        default=DEFAULT_K_GRID, metadata=_list_of("positive integers", minimum=1, sort=True)
    )
    reg: float = field(default=1e-3, metadata=_at_least(0))
    tasklang_dev_size: int = field(default=100, metadata=_at_least(1))
    csls_k: int = field(default=10, metadata=_at_least(1))
    margin_grid: tuple[float, ...] = field(
        default=(0.0, 0.02, 0.05, 0.1, 0.2), metadata=_list_of("finite numbers >= 0", minimum=0, sort=True)
    )
    methods: tuple[str, ...] = field(default=DEFAULT_METHODS, metadata={"parse": parse_methods})
    labels: tuple[str, ...] | None = field(default=None, metadata=_list_of("strings"))
    train: TrainOptions = field(default_factory=TrainOptions)
    path: Path | None = field(default=None, metadata={"key": None})


# --------------------------------------------------------------------------- schema introspection

#: TOML type accepted for a field type, where the two differ.
_TOML_TYPES: dict[Any, Any] = {float: (int, float), Path: str, tuple: list}


def _kind(f: Field[Any]) -> tuple[Any, Any]:
    """``(type, item type)`` of a field's annotation, ``| None`` dropped: ``tuple[int, ...]`` → (tuple, int).

    Annotations are strings here (``from __future__ import annotations``), which
    also keeps ``X | None`` usable on Python 3.9.
    """
    text = str(f.type).removesuffix(" | None")
    if text.startswith("tuple[") and text.endswith(", ...]"):
        return tuple, _kind_name(text[len("tuple[") : -len(", ...]")])
    return _kind_name(text), None


def _kind_name(name: str) -> Any:
    return getattr(builtins, name, None) or globals()[name]


def _key(f: Field[Any]) -> str | None:
    return f.metadata.get("key", f.name)


def _is_option(f: Field[Any]) -> bool:
    """A field read from a single TOML key (not a section, not a nested or flattened dataclass)."""
    return _key(f) is not None and not any(is_dataclass(t) for t in _kind(f))


def _keys(cls: type, *, shared_only: bool = False) -> set[str]:
    """The TOML keys of the table describing ``cls``."""
    keys: set[str] = set()
    for f in fields(cls):
        if shared_only and not f.metadata.get("shared"):
            continue
        key = _key(f)
        if f.metadata.get("flatten"):
            keys |= _keys(_kind(f)[0])
        elif key is not None:
            keys.add(key)
    return keys


#: [data] holds defaults of the shared language keys; it is no field of ExperimentConfig.
_TOP_KEYS = _keys(ExperimentConfig) | {"data"}
_LANG_KEYS = _keys(LanguageConfig)
_DATA_KEYS = _keys(LanguageConfig, shared_only=True)


# --------------------------------------------------------------------------- parsing


def _type_name(tp: Any) -> str:
    if isinstance(tp, tuple):
        return " or ".join(t.__name__ for t in tp)
    return tp.__name__


def _is_a(value: Any, tp: Any) -> bool:
    """``isinstance`` where a bool is never an int or a float."""
    return isinstance(value, tp) and (tp is bool or not isinstance(value, bool))


def _get(table: Mapping[str, Any], key: str, tp: Any, where: str) -> Any:
    """Fetch ``table[key]`` (None when absent) checking its type (bool is never accepted as int)."""
    if key not in table:
        return None
    value = table[key]
    if not _is_a(value, tp):
        raise TaskspecError(f"config: {where}{key} must be {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _read(table: Mapping[str, Any], f: Field[Any], where: str) -> Any:
    """The value of field ``f`` given in ``table``: type-checked, converted and checked."""
    key = _key(f)
    tp, item = _kind(f)
    value = _get(table, key, _TOML_TYPES.get(tp, tp), where)
    if "parse" in f.metadata:
        return f.metadata["parse"](value)
    if tp is tuple:  # ill-typed items leave nothing, which every list check refuses
        item_tp = _TOML_TYPES.get(item, item)
        value = tuple(item(x) for x in value) if all(_is_a(x, item_tp) for x in value) else ()
    elif tp in (float, Path):
        value = tp(value)
    check = f.metadata.get("check")
    problem = check(value) if check is not None else None
    if problem is not None:
        raise TaskspecError(f"config: {where}{key} must be {problem}")
    return tuple(sorted(set(value))) if f.metadata.get("sort") else value


def _options(table: Mapping[str, Any], cls: type, where: str) -> dict[str, Any]:
    """The option fields of ``cls`` given in ``table``, by field name (absent ones keep their defaults)."""
    return {f.name: _read(table, f, where) for f in fields(cls) if _is_option(f) and _key(f) in table}


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise TaskspecError(
            f"config: unknown key(s) {', '.join(unknown)} in {where or 'top level'}"
            f" (allowed: {', '.join(sorted(allowed))})"
        )


def _table(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TaskspecError(f"config: [{name}] must be a table")
    return value


def _parse_language(table: Any, *, where: str, base: Path, defaults: Mapping[str, Any]) -> LanguageConfig:
    _check_keys(_table(table, where), _LANG_KEYS, f"[{where}]")
    pre = f"{where}."
    lang = _get(table, "lang", str, pre)
    if not lang:
        raise TaskspecError(f"config: {pre}lang is required")
    merged = {**defaults, **table}
    for key in ("embeddings_key", "tokenizer"):  # an empty string means "the default"
        if merged.get(key) == "":
            del merged[key]
    values = _options(merged, LanguageConfig, pre)
    if "embeddings" not in values:
        raise TaskspecError(f"config: {pre}embeddings is required (or set data.embeddings)")
    values.setdefault("embeddings_key", lang)
    values.setdefault("tokenizer", "janome" if lang == "ja" else "regex")
    paths = {name: base / v for name, v in values.items() if isinstance(v, Path)}
    return LanguageConfig(**{**values, **paths}, data=DataOptions(**_options(merged, DataOptions, pre)))


def _parse_targets(targets: Any, *, base: Path, defaults: Mapping[str, Any]) -> tuple[LanguageConfig, ...]:
    if not isinstance(targets, list) or not targets:
        raise TaskspecError("config: at least one [[target]] section is required")
    parsed = tuple(
        _parse_language(t, where=f"target[{i}]", base=base, defaults=defaults) for i, t in enumerate(targets)
    )
    for i, t in enumerate(parsed):
        if t.test is None:
            raise TaskspecError(f"config: target[{i}] ({t.lang}).test is required")
    langs = [t.lang for t in parsed]
    if len(set(langs)) != len(langs):
        raise TaskspecError(f"config: duplicate target languages in {langs}")
    return parsed


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
    defaults = _table(raw.get("data", {}), "data")
    _check_keys(defaults, _DATA_KEYS, "[data]")
    if "source" not in raw:
        raise TaskspecError("config: missing [source] section")
    source = _parse_language(raw["source"], where="source", base=base, defaults=defaults)
    if source.train is None or source.dev is None:
        raise TaskspecError("config: source.train and source.dev are required")
    targets = _parse_targets(raw.get("target", []), base=base, defaults=defaults)
    options = _options(raw, ExperimentConfig, "")
    train = _table(raw.get("train", {}), "train")
    _check_keys(train, _keys(TrainOptions), "[train]")
    return ExperimentConfig(
        source=source,
        targets=targets,
        train=TrainOptions(**_options(train, TrainOptions, "train.")),
        path=path,
        **options,
    )


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
