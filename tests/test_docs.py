"""The documentation as a user reads it: every Python snippet runs, every command line parses, and the
DATA.md recipe works end to end on generated files laid out as it describes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import taskspec_rs as ts
from taskspec_rs.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(path: Path, lang: str) -> list[str]:
    return [body for tag, body in FENCE.findall(path.read_text(encoding="utf-8")) if tag == lang]


def _section(path: Path, heading: str) -> str:
    """A markdown file holding only the section under ``## heading`` (up to the next ``## ``)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


# --------------------------------------------------------------------------- generated data

LABELS = ("sports", "politics", "science", "travel")


def _concepts(rng: np.random.Generator, n_per_label: int = 15, dim: int = 24) -> tuple[list[tuple[str, int]], dict]:
    """Topic words (concept id, label index) and one shared vector per concept (an aligned space)."""
    concepts = [(f"c{label}x{i}", label) for label in range(len(LABELS)) for i in range(n_per_label)]
    centres = rng.normal(size=(len(LABELS), dim))
    vecs = {c: centres[label] + 0.8 * rng.normal(size=dim) for c, label in concepts}
    return concepts, vecs


def _word(concept: str, lang: str) -> str:
    return f"{lang}{concept}"


def _texts(rng, concepts, lang: str, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        label = int(rng.integers(len(LABELS)))
        mine = [c for c, lab in concepts if lab == label]
        words = [_word(mine[j], lang) for j in rng.integers(len(mine), size=6)]
        noise = [_word(concepts[j][0], lang) for j in rng.integers(len(concepts), size=2)]
        rows.append({"text": " ".join(words + noise).capitalize() + ".", "label": LABELS[label]})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _write_vec(path: Path, rng, concepts, vecs, lang: str) -> None:
    """A fastText-style text file: ``count dim`` header, then ``word v1 ... vd``."""
    words = [_word(c, lang) for c, _ in concepts]
    rows = np.array([vecs[c] + 0.05 * rng.normal(size=len(vecs[c])) for c, _ in concepts], dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    ts.save_vectors(path, words, rows)
    assert path.read_text().split("\n", 1)[0] == f"{len(words)} {rows.shape[1]}"


# --------------------------------------------------------------------------- DATA.md recipe


def test_data_md_recipe_runs_with_vec_files_and_jsonl(tmp_path, monkeypatch, capsys):
    """A user with two aligned .vec files and JSON lines follows DATA.md: its layout, its my.toml, its commands."""
    recipe = _section(REPO / "docs" / "DATA.md", "Recipe: fastText `.vec` files and your own JSON lines")
    (toml,) = [b for t, b in FENCE.findall(recipe) if t == "toml"]
    layout = next(b for t, b in FENCE.findall(recipe) if t == "" and "mydata/" in b)
    rng = np.random.default_rng(0)
    concepts, vecs = _concepts(rng)
    root = tmp_path / "mydata"
    root.mkdir()
    files = [line.split("── ")[-1] for line in layout.splitlines() if "── " in line]
    for name in files:
        path = root / name
        if name.endswith(".vec"):
            _write_vec(path, rng, concepts, vecs, "en" if ".en." in name else "fr")
        elif name.endswith(".jsonl"):
            lang, split = name.split("/")
            _write_jsonl(path, _texts(rng, concepts, lang, {"train": 160, "dev": 40, "test": 60}[split[:-6]]))
        elif name == "my.toml":
            path.write_text(toml, encoding="utf-8")
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == sorted(Path(f).name for f in files)
    monkeypatch.chdir(tmp_path)
    (commands,) = [b for t, b in FENCE.findall(recipe) if t == "bash"]
    for line in commands.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "taskspec-rs"
        assert main(argv[1:] + (["--quiet"] if argv[1] == "eval" else [])) == 0, line
    out = capsys.readouterr().out
    assert "100.0 % of tokens" in out  # vectors inspect: coverage of fr/test.jsonl
    results = json.loads((tmp_path / "runs" / "my" / "results.json").read_text())["results"]
    assert {"en", "fr"} <= set(results["clwe_fixed"])
    assert results["clwe_fixed"]["fr"]["mean"] > 0.5  # 4 labels: chance is 0.25
    assert "monolingual" not in results or not results["monolingual"]  # no fr/train.jsonl in this layout


def test_data_md_layout_toml_is_a_valid_configuration(tmp_path):
    from taskspec_rs.config import parse_config, tomllib

    for body in _blocks(REPO / "docs" / "DATA.md", "toml"):
        raw = tomllib.loads(body)
        if "target" not in raw:  # a fragment: complete it with what the recipe leaves out
            raw["source"].update(train="en/train.jsonl", dev="en/dev.jsonl")
            raw["target"] = [{"lang": "fr", "test": "fr/test.jsonl", "embeddings": "fr.vec"}]
        parse_config(raw, base=tmp_path)


# --------------------------------------------------------------------------- command lines


def _command_lines(path: Path) -> list[str]:
    """The ``taskspec-rs`` command lines of every bash block, with the block's bash arrays
    (``NAME=(...)``, used as ``"${NAME[@]}"``) expanded."""
    lines = []
    for body in _blocks(path, "bash"):
        joined = body.replace("\\\n", " ")
        arrays = dict(re.findall(r"^(\w+)=\((.*)\)$", joined, flags=re.M))
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            for name, items in arrays.items():
                line = line.replace(f'"${{{name}[@]}}"', items)
            for part in re.split(r"&&|;", line):
                if part.strip().startswith("taskspec-rs"):
                    lines.append(part.strip())
    return lines


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_command_line_parses(doc):
    parser = build_parser()
    for line in _command_lines(doc):
        argv = shlex.split(line)[1:]
        if argv:
            parser.parse_args(argv)


# --------------------------------------------------------------------------- Python snippets


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A folder where every name the snippets use exists, on small generated data; returns their globals."""
    from taskspec_rs.config import load_config
    from taskspec_rs.data import load_dataset
    from taskspec_rs.demo import write_demo

    rng = np.random.default_rng(1)
    work = tmp_path / "work"
    demo = write_demo(work / "demo").parent
    text = (demo / "demo.toml").read_text().replace("seeds = 3", "seeds = 1").replace("epochs = 15", "epochs = 3")
    (work / "examples").mkdir()
    text = re.sub(r'^(train|dev|test|embeddings) = "', r'\1 = "../demo/', text, flags=re.M)
    (work / "examples" / "sib200.toml").write_text(text)
    load_config(work / "examples" / "sib200.toml")
    src, tga = ts.load_vectors(demo / "vectors" / "src.vec"), ts.load_vectors(demo / "vectors" / "tga.vec")
    arrays = {"en__words": np.array(src.words), "en__vecs": src.vectors}
    arrays.update({"fr__words": np.array(tga.words), "fr__vecs": tga.vectors})
    np.savez(work / "vectors.npz", **arrays)
    shared = tmp_path / "shared" / "data" / "vectors"
    shared.mkdir(parents=True)
    es_words = [f"es_{w}" for w in src.words]
    q, _ = np.linalg.qr(rng.normal(size=(src.vectors.shape[1],) * 2))
    np.savez(
        shared / "use_m3_512d_fp16.npz",
        en__words=np.array(src.words),
        en__vecs=src.vectors.astype(np.float16),
        es__words=np.array(es_words),
        es__vecs=(src.vectors @ q).astype(np.float16),
    )
    pairs = [f"{w} es_{w}\n" for w in src.words]
    (work / "en-es.0-5000.approx.txt").write_text("".join(pairs[:200]))
    (work / "en-es.5000-6500.approx.txt").write_text("".join(pairs[200:]))
    m, n, d, e = 300, 120, 16, 8
    x_gen = rng.normal(size=(m, d)).astype(np.float32)
    ts.save_vectors(work / "cc.fr.300.vec", [f"w{i}" for i in range(m)], x_gen)
    import gzip

    (work / "cc.fr.300.vec.gz").write_bytes(gzip.compress((work / "cc.fr.300.vec").read_bytes()))
    monkeypatch.chdir(work)
    y_gen = rng.normal(size=(n, d)).astype(np.float32)
    return {
        "x_gen": x_gen,
        "x_spec": rng.normal(size=(m, e)).astype(np.float32),
        "y_gen": y_gen,
        "y_gen_fr": y_gen,
        "y_gen_de": rng.normal(size=(n, d)).astype(np.float32),
        "y_gen_memmap": y_gen,
        "n": n,
        "e": e,
        "queries": y_gen[:20],
        "base": x_gen,
        "rows_to_skip": np.arange(20),
        "train_ds": load_dataset(demo / "src" / "train.jsonl"),
        "dev_ds": load_dataset(demo / "src" / "dev.jsonl"),
        "labels": ["alpha", "beta", "delta", "gamma"],
    }


SNIPPETS = [(doc, i, body) for doc in DOCS for i, body in enumerate(_blocks(doc, "python"))]


@pytest.mark.parametrize("doc, i, body", SNIPPETS, ids=[f"{d.name}-{i}" for d, i, _ in SNIPPETS])
def test_python_snippet_runs(doc, i, body, sandbox, capsys):
    exec(compile(body, f"{doc.name}[python block {i}]", "exec"), dict(sandbox))


def test_snippets_were_found():
    assert {d.name for d, _, _ in SNIPPETS} >= {"README.md", "USAGE.md", "ALIGN.md"}


# --------------------------------------------------------------------------- wording

#: Pages checked for words about how the project is run rather than what it does.
CLEAN = (
    "README.md",
    "USAGE.md",
    "DATA.md",
    "ALIGN.md",
    "ARCHITECTURE.md",
    "PERFORMANCE.md",
    "RESULTS.md",
    "RELIABILITY.md",
)
INTERNAL = re.compile(r"\b(issue|session|ticket|sprint|CEO)s?\b", re.I)


@pytest.mark.parametrize("name", CLEAN)
def test_docs_do_not_refer_to_internal_process(name):
    path = REPO / name if name == "README.md" else REPO / "docs" / name
    hits = [line for line in path.read_text(encoding="utf-8").splitlines() if INTERNAL.search(line)]
    assert not hits, hits
