"""The configuration schema is derived from the dataclasses: keys, types and defaults."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest
from taskspec_rs.config import (
    DEFAULT_METHODS,
    NORMALIZE_MODES,
    VOCABULARIES,
    DataOptions,
    ExperimentConfig,
    LanguageConfig,
    TaskspecError,
    TrainOptions,
    parse_config,
)
from taskspec_rs.errors import TaskspecError as BaseTaskspecError

MINIMAL = {
    "source": {"lang": "en", "train": "en/train.jsonl", "dev": "en/dev.jsonl", "embeddings": "en.vec"},
    "target": [{"lang": "fr", "test": "fr/test.jsonl", "embeddings": "fr.vec"}],
}

TRAIN_FIELDS = dataclasses.fields(TrainOptions)
#: The top-level keys that are plain options (not sections, not the recorded path).
TOP_OPTIONS = ("seeds", "k_grid", "reg", "tasklang_dev_size", "csls_k", "margin_grid", "methods", "labels")


def _config(**overrides):
    raw = copy.deepcopy(MINIMAL)
    raw.update(overrides)
    return raw


def _other_value(f: dataclasses.Field):
    """A valid value of the field's type that differs from its default."""
    if isinstance(f.default, bool):
        return not f.default
    if isinstance(f.default, int):
        return f.default + 1
    if isinstance(f.default, float):
        return f.default / 2
    choices = {"normalize": NORMALIZE_MODES, "vocabulary": VOCABULARIES}[f.name]  # the str options
    return next(m for m in choices if m != f.default)


def _allowed(message: str) -> list[str]:
    match = re.search(r"\(allowed: ([^)]*)\)", message)
    assert match, message
    return match.group(1).split(", ")


def test_taskspec_error_is_the_errors_module_class():
    assert TaskspecError is BaseTaskspecError


@pytest.mark.parametrize("f", TRAIN_FIELDS, ids=lambda f: f.name)
def test_every_train_option_is_a_train_key_with_its_type(tmp_path, f):
    value = _other_value(f)
    cfg = parse_config(_config(train={f.name: value}), base=tmp_path)
    assert getattr(cfg.train, f.name) == value
    assert type(getattr(cfg.train, f.name)) is type(f.default)
    assert cfg.train == dataclasses.replace(TrainOptions(), **{f.name: value})


@pytest.mark.parametrize("f", [f for f in TRAIN_FIELDS if isinstance(f.default, float)], ids=lambda f: f.name)
def test_float_options_accept_ints_as_floats(tmp_path, f):
    cfg = parse_config(_config(train={f.name: 0 if f.name == "dropout" else 1}), base=tmp_path)
    assert type(getattr(cfg.train, f.name)) is float


def test_unknown_keys_list_the_keys_derived_from_the_fields(tmp_path):
    with pytest.raises(TaskspecError, match=r"unknown key\(s\) learning_rate in \[train\]") as err:
        parse_config(_config(train={"learning_rate": 1e-3}), base=tmp_path)
    assert _allowed(str(err.value)) == sorted(f.name for f in TRAIN_FIELDS)

    with pytest.raises(TaskspecError, match="in top level") as err:
        parse_config(_config(sedes=3), base=tmp_path)
    top = {f.name for f in dataclasses.fields(ExperimentConfig)} - {"targets", "path"} | {"target", "data"}
    assert _allowed(str(err.value)) == sorted(top)

    data_keys = {f.name for f in dataclasses.fields(DataOptions)}
    raw = _config()
    raw["source"]["colour"] = "red"
    with pytest.raises(TaskspecError, match=r"unknown key\(s\) colour in \[source\]") as err:
        parse_config(raw, base=tmp_path)
    lang_keys = {f.name for f in dataclasses.fields(LanguageConfig)} - {"data"} | data_keys
    assert _allowed(str(err.value)) == sorted(lang_keys)

    with pytest.raises(TaskspecError, match=r"unknown key\(s\) test in \[data\]") as err:
        parse_config(_config(data={"test": "x.jsonl"}), base=tmp_path)
    assert _allowed(str(err.value)) == sorted(data_keys | {"embeddings", "tokenizer"})


def test_defaults_of_a_minimal_config_are_the_dataclass_defaults(tmp_path):
    cfg = parse_config(_config(), base=tmp_path)
    for f in dataclasses.fields(ExperimentConfig):
        if f.default is not dataclasses.MISSING:
            assert getattr(cfg, f.name) == f.default, f.name
    assert cfg.train == TrainOptions()
    assert cfg.methods == DEFAULT_METHODS and cfg.labels is None and cfg.path is None
    for lang in (cfg.source, *cfg.targets):
        assert lang.data == DataOptions()
        assert lang.embeddings_key == lang.lang and lang.tokenizer == "regex"
    assert all(type(k) is int for k in cfg.k_grid) and all(type(m) is float for m in cfg.margin_grid)


def test_values_are_converted_like_the_defaults(tmp_path):
    cfg = parse_config(_config(k_grid=[5, 1, 5], margin_grid=[0.1, 0, 0.1], labels=["b", "a"], reg=1), base=tmp_path)
    assert cfg.k_grid == (1, 5) and cfg.margin_grid == (0.0, 0.1) and cfg.labels == ("b", "a")
    assert type(cfg.margin_grid[0]) is float and type(cfg.reg) is float
    raw = _config(data={"tokenizer": "janome", "format": "tsv"})
    raw["target"][0].update(lang="ja", tokenizer="", embeddings_key="")
    target = parse_config(raw, base=tmp_path).targets[0]
    assert (target.tokenizer, target.embeddings_key, target.data.format) == ("janome", "ja", "tsv")
    assert target.embeddings == tmp_path / "fr.vec" and target.train is None


@pytest.mark.parametrize("f", TRAIN_FIELDS, ids=lambda f: f.name)
def test_a_wrong_train_type_names_the_key(tmp_path, f):
    wrong = 1 if isinstance(f.default, str) else "x"
    expected = {bool: "bool", int: "int", float: "int or float", str: "str"}[type(f.default)]
    with pytest.raises(TaskspecError, match=rf"config: train\.{f.name} must be {expected}, got "):
        parse_config(_config(train={f.name: wrong}), base=tmp_path)


@pytest.mark.parametrize("key", TOP_OPTIONS)
def test_a_wrong_top_level_type_names_the_key(tmp_path, key):
    expected = (
        "int or float" if key == "reg" else "list" if key in ("k_grid", "margin_grid", "methods", "labels") else "int"
    )
    with pytest.raises(TaskspecError, match=rf"config: {key} must be {expected}, got bool True"):
        parse_config(_config(**{key: True}), base=tmp_path)


def test_a_wrong_language_type_names_the_language_and_key(tmp_path):
    raw = _config()
    raw["target"][0]["tokenizer"] = 1
    with pytest.raises(TaskspecError, match=r"config: target\[0\]\.tokenizer must be str, got int 1"):
        parse_config(raw, base=tmp_path)
    with pytest.raises(TaskspecError, match=r"config: source\.format must be str, got int 1"):
        parse_config(_config(data={"format": 1}), base=tmp_path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train": {"hidden": -1}}, r"train\.hidden must be >= 0"),
        ({"train": {"dropout": 1.0}}, r"train\.dropout must be in \[0, 1\)"),
        ({"reg": -0.5}, "reg must be >= 0"),
        ({"tasklang_dev_size": 0}, "tasklang_dev_size must be >= 1"),
        ({"k_grid": [1, True]}, "k_grid must be a non-empty list of positive integers"),
        ({"margin_grid": [float("nan")]}, "margin_grid must be a non-empty list of finite numbers >= 0"),
        ({"labels": []}, "labels must be a non-empty list of strings"),
        ({"labels": ["a", 1]}, "labels must be a non-empty list of strings"),
        ({"data": {"absa_labels": "four"}}, "source.absa_labels must be one of three, binary, got 'four'"),
    ],
)
def test_field_rules(tmp_path, overrides, message):
    with pytest.raises(TaskspecError, match=message):
        parse_config(_config(**overrides), base=tmp_path)
