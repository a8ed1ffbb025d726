"""Write the seed corpora of the fuzzers (committed; rerun only to change them).

``fuzz/corpus/python/``: inputs of ``fuzz_vectors.py`` (first byte: entry point, second: options,
then the payload). ``fuzz/corpus/parse_vectors/``: inputs of the Rust target (first byte: format,
type, duplicates, limit; then the file). Small valid files of every format, plus a few edge cases.
"""

from __future__ import annotations

import gzip
import io
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def text(rows: int, dim: int, *, header: bool = True, crlf: bool = False, bom: bool = False) -> bytes:
    rng = np.random.default_rng(rows * 31 + dim)
    nl = "\r\n" if crlf else "\n"
    out = f"{rows} {dim}{nl}" if header else ""
    for i in range(rows):
        out += f"w{i} " + " ".join(f"{v:.4g}" for v in rng.normal(size=dim)) + nl
    return (b"\xef\xbb\xbf" if bom else b"") + out.encode()


def binary(rows: int, dim: int, *, newline: bool = True) -> bytes:
    rng = np.random.default_rng(rows * 17 + dim)
    out = f"{rows} {dim}\n".encode()
    for i in range(rows):
        out += f"w{i} ".encode() + rng.normal(size=dim).astype("<f4").tobytes() + (b"\n" if newline else b"")
    return out


def npy(rows: int, dim: int, dtype: str = "<f4", fortran: bool = False) -> bytes:
    a = np.random.default_rng(rows + dim).normal(size=(rows, dim)).astype(dtype)
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(a) if fortran else a, allow_pickle=False)
    return buf.getvalue()


FILES = {
    "text_header": text(4, 3),
    "text_no_header": text(3, 2, header=False),
    "text_crlf_bom": text(2, 4, crlf=True, bom=True),
    "text_dup_words": b"3 2\na 1 2\nb 3 4\na 5 6\n",
    "text_huge_dim": b"1 100000000000000\nw 1\n",
    "text_huge_dim2": b"43 4611686018427387904\nw 1\n",
    "text_nan": b"2 2\na 1 nan\nb 1 2\n",
    "text_truncated": text(5, 3)[:-7],
    "binary_nl": binary(3, 4),
    "binary_no_nl": binary(2, 3, newline=False),
    "binary_huge_dim": b"1 100000000000000\nw \x00\x00\x80\x3f\n",
}


def python_corpus() -> dict[str, bytes]:
    out = {}
    for name, data in FILES.items():
        fmt = 1 if name.startswith("binary") else 0
        out[f"{name}"] = bytes([fmt, 0]) + data
        out[f"{name}_gz"] = bytes([fmt + 2, 0]) + data  # compressed by the harness
    out["text_raw_gzip"] = bytes([0, 0]) + gzip.compress(text(3, 2))
    out["text_limit2_f64"] = bytes([0, 4 | 16]) + text(6, 2)
    out["binary_limit1_dup_error"] = bytes([1, 2 | 64]) + binary(4, 2)
    for name, (rows, dim, dt, fortran) in {
        "npy_f4": (4, 3, "<f4", False),
        "npy_f8_fortran": (3, 5, "<f8", True),
        "npy_f2_be": (2, 2, ">f2", False),
        "npy_empty": (0, 4, "<f4", False),
    }.items():
        out[name] = bytes([4, 0, rows]) + npy(rows, dim, dt, fortran)
    rng = np.random.default_rng(0)
    for sel in range(5, 16):
        for j in range(2):
            out[f"arrays_{sel}_{j}"] = bytes([sel]) + rng.integers(0, 256, size=400, dtype=np.uint8).tobytes()
    return out


def rust_corpus() -> dict[str, bytes]:
    out = {}
    for name, data in FILES.items():
        fmt = 1 if name.startswith("binary") else 0
        out[name] = bytes([fmt]) + data
        out[f"{name}_gz"] = bytes([fmt | 2]) + gzip.compress(data, 1)
    out["text_limit2"] = bytes([(18 << 3) | 0]) + text(6, 2)
    out["binary_limit1_dup_error"] = bytes([(17 << 3) | 4 | 1]) + binary(4, 2)
    return out


def main() -> None:
    for sub, corpus in (("python", python_corpus()), ("parse_vectors", rust_corpus())):
        d = os.path.join(HERE, "corpus", sub)
        os.makedirs(d, exist_ok=True)
        for name, data in corpus.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{d}: {len(corpus)} files")


if __name__ == "__main__":
    main()
