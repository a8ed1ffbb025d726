"""Text inputs as they come from the web: line breaks, quoting, BOM, CRLF, bad UTF-8, empty texts, unknown labels."""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
from pathlib import Path

import pytest
from taskspec_rs.config import DataOptions
from taskspec_rs.data import load_dataset, read_lines, split_lines
from taskspec_rs.errors import TaskspecError

TSV = DataOptions(text_column="text", label_column="label")
#: characters that str.splitlines() treats as line breaks but a JSON/TSV line may contain
ODD_BREAKS = "\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e\r"


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_split_lines_breaks_only_at_newline():
    text = "a\u2028b\r\nc\u0085d\x0ce\rf\n\nlast"
    assert split_lines(text) == ["a\u2028b", "c\u0085d\x0ce\rf", "", "last"]
    assert split_lines("x\n") == ["x"] and split_lines("") == [] and split_lines("\n") == [""]
    assert len(text.splitlines()) > len(split_lines(text))  # what the readers used to do


def test_jsonl_keeps_unicode_line_separators_inside_texts(tmp_path):
    texts = [f"before{c}after" for c in ODD_BREAKS]
    body = "".join(json.dumps({"text": t, "label": "a"}, ensure_ascii=False) + "\n" for t in texts)
    ds = load_dataset(_write(tmp_path / "d.jsonl", body))
    assert ds.texts == texts and ds.labels == ["a"] * len(texts)


def test_jsonl_with_bom_and_crlf(tmp_path):
    body = '{"text": "one", "label": "a"}\r\n\r\n{"text": "two", "label": 2}\r\n'
    ds = load_dataset(_write(tmp_path / "d.jsonl", b"\xef\xbb\xbf" + body.encode()))
    assert ds.texts == ["one", "two"] and ds.labels == ["a", "2"]


def test_tsv_quoting_bom_and_crlf(tmp_path):
    body = (
        "\ufeffid\tlabel\ttext\r\n"
        '1\tsports\t"He said ""goal"", twice"\r\n'
        '2\t"travel"\t"a\ttab and a\r\nline break"\r\n'
        '3\tpolitics\t"Hello" he said\r\n'  # not a well-formed quoted field: read as it is
        '4\thealth\tmid "quote" stays\r\n'
        '5\tsports\t""""\r\n'
    )
    ds = load_dataset(_write(tmp_path / "d.tsv", body), options=TSV)
    assert ds.labels == ["sports", "travel", "politics", "health", "sports"]
    assert ds.texts[:2] == ['He said "goal", twice', "a\ttab and a\nline break"]
    assert ds.texts[2:] == ['"Hello" he said', 'mid "quote" stays', '"']


def test_tsv_line_numbers_count_lines_inside_quoted_fields(tmp_path):
    body = 'id\tlabel\ttext\n1\ta\t"two\nlines"\n2\tb\n'
    with pytest.raises(TaskspecError, match=r"d\.tsv:4: expected 3 tab-separated fields, got 2"):
        load_dataset(_write(tmp_path / "d.tsv", body), options=TSV)


def test_tsv_unterminated_quote_is_read_literally(tmp_path):
    ds = load_dataset(_write(tmp_path / "d.tsv", 'label\ttext\na\t"open quote\n'), options=TSV)
    assert ds.texts == ['"open quote']


@pytest.mark.parametrize("terminator", ["\n", "\r\n"])
def test_tsv_reader_matches_csv_writer(tmp_path, terminator):
    """What ``csv.writer(delimiter='\\t')`` (and spreadsheets, pandas) write reads back unchanged."""
    rng = random.Random(7)
    alphabet = ['"', "\t", "\n", " ", "a", "é", "\u2028", "\u0085", "'", "x"]
    rows = []
    for i in range(300):
        text = "w" + "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        label = rng.choice(["pos", "neg", 'say "hi"', "with\ttab"])
        rows.append((str(i), label, text))
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator=terminator)
    writer.writerow(["id", "label", "text"])
    writer.writerows(rows)
    ds = load_dataset(_write(tmp_path / "d.tsv", buf.getvalue()), options=TSV)
    assert ds.texts == [r[2] for r in rows] and ds.labels == [r[1] for r in rows]


@pytest.mark.parametrize(
    "name, body, line",
    [
        ("d.jsonl", b'{"text": "ok", "label": "a"}\n\n{"text": "bad \xff", "label": "a"}\n', 3),
        ("d.tsv", b"label\ttext\na\tok\na\tok \xc3\n", 3),
        ("d.xml", b"<sentences>\n<sentence>\n<text>caf\xe9</text></sentence></sentences>\n", 3),
    ],
)
def test_invalid_utf8_names_file_and_line(tmp_path, name, body, line):
    path = _write(tmp_path / name, body)
    with pytest.raises(TaskspecError, match=rf"{path.name}:{line}: not valid UTF-8"):
        load_dataset(path, options=TSV if name.endswith(".tsv") else DataOptions())


def test_absa_xml_with_bom_and_crlf(tmp_path):
    body = (
        '\ufeff<?xml version="1.0" encoding="UTF-8"?>\r\n<Reviews><sentences>\r\n'
        '<sentence><text>Great food</text><Opinions><Opinion polarity="positive"/></Opinions></sentence>\r\n'
        "</sentences></Reviews>\r\n"
    )
    ds = load_dataset(_write(tmp_path / "d.xml", body))
    assert ds.texts == ["Great food"] and ds.labels == ["positive"]


def test_empty_and_whitespace_only_texts_are_dropped_but_wordless_texts_kept(tmp_path):
    texts = ["", " ", "\t", "\u00a0", "\u2028", "\u3000 ", "!!! 🙂", "real words"]
    body = "".join(json.dumps({"text": t, "label": "a"}, ensure_ascii=False) + "\n" for t in texts)
    ds = load_dataset(_write(tmp_path / "d.jsonl", body))
    assert ds.texts == ["!!! 🙂", "real words"]
    with pytest.raises(TaskspecError, match="dataset is empty"):
        load_dataset(_write(tmp_path / "e.jsonl", '{"text": " \\u2028 ", "label": "a"}\n'))


def test_unknown_test_label_is_an_error_before_training(tmp_path, monkeypatch):
    from taskspec_rs.config import load_config
    from taskspec_rs.demo import write_demo
    from taskspec_rs.experiment import SeedRun, load_experiment

    config = write_demo(tmp_path / "demo")
    with open(tmp_path / "demo" / "tgb" / "test.jsonl", "a", encoding="utf-8") as f:
        f.write('{"text": "ka to", "label": "omega"}\n')
    monkeypatch.setattr(SeedRun, "train", lambda *a, **k: pytest.fail("trained before checking labels"))
    with pytest.raises(TaskspecError, match=r"tgb[/\\]test\.jsonl: unknown label\(s\) 'omega'"):
        load_experiment(load_config(config))


def test_predict_text_input_splits_only_at_newline(tmp_path):
    from taskspec_rs.cli import _predict_inputs

    path = _write(tmp_path / "in.txt", "\ufeffone\u2028still one\r\n\r\n  \ntwo\u0085x\n")
    args = argparse.Namespace(input=str(path), format=None)
    texts, gold = _predict_inputs(args)
    assert texts == ["one\u2028still one", "two\u0085x"] and gold is None
    assert read_lines(path) == ["one\u2028still one", "", "  ", "two\u0085x"]
    bad = _write(tmp_path / "bad.txt", b"fine\nbad \xff\n")
    with pytest.raises(TaskspecError, match=r"bad\.txt:2: not valid UTF-8"):
        _predict_inputs(argparse.Namespace(input=str(bad), format=None))
