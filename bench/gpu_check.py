"""Check and time the torch backend on a GPU: ``knn`` and ``LLMProjector`` with ``device="cuda"``.

1. **Correctness** against the exact CPU engine (``backend="exact"``) on
   embedding-like data: neighbour indices (a row may differ only through a
   near-tie, i.e. equal true scores within ``TIE_TOL``), returned scores, and
   LLM projections (``y_spec`` per-row relative error, weights) for the cosine
   and CSLS metrics and a source self-projection with ``exclude_self=True``.
2. **Timing** of ``knn`` and ``LLMProjector.fit(...).project(...)`` with the
   torch backend at 10^5, 10^6 and (where memory and the time budget allow)
   10^7 targets, against 10^5 and 10^6 sources, d=300, k=10. Each timed result
   is spot-checked on a sample of rows against the exact engine.

Times include converting and checking the inputs, the host-to-device copies
and the copy back into the returned numpy arrays (the API takes and returns
numpy arrays); generating the data is excluded (shown apart). The goal on an
H100/H200-class GPU: an LLM projection of 10^6 targets onto 10^6 sources,
d=300, in under a minute.

Run on the GPU machine (about 8 minutes at most, ``--budget-s`` seconds of
stages)::

    timeout 480 python bench/gpu_check.py

Smoke run without a GPU (the torch backend on the CPU, tiny sizes)::

    python bench/gpu_check.py --device cpu --quick

The exit status is 1 when a correctness check fails (or torch is missing),
0 otherwise; a missed speed goal or a skipped size is reported, not failed.
Without CUDA (and ``--device cuda``) only the correctness checks run, on
``device="cpu"``. The figures are printed as a markdown table and written as
JSON to ``--out`` after every stage.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from datagen import DIM, embedding_like  # noqa: E402  (bench/datagen.py, shared with the benchmarks)

START = time.monotonic()
GIB = 2**30

K = 10
#: Two true scores closer than this are a near-tie: either order (or either neighbour at the k-th place) is right.
TIE_TOL = 1e-5
#: Largest accepted error of a returned float32 score against its float64 value.
SCORE_TOL = 1e-4
#: Largest accepted per-row relative error of ``y_spec`` (and of the weights, relative to max(1, |w|)).
PROJ_RTOL = 1e-3
#: Rows of each timed result compared with the exact engine.
SPOT_ROWS = 256
#: Estimated stage time = previous time x size ratio x this safety factor.
SAFETY = 1.3

FULL_CORRECTNESS = (20_000, 5_000)  # (sources, targets); the self-projection uses the sources
QUICK_CORRECTNESS = (2_000, 1_000)
FULL_CASES = [(100_000, 100_000), (1_000_000, 100_000), (1_000_000, 1_000_000), (1_000_000, 10_000_000)]
QUICK_CASES = [(2_000, 1_000), (10_000, 1_000), (10_000, 10_000), (10_000, 100_000)]
GOAL = {"op": "llm", "sources": 1_000_000, "targets": 1_000_000, "seconds": 60.0}


def log(*args: Any) -> None:
    print(*args, flush=True)


def elapsed() -> float:
    return time.monotonic() - START


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------


def host_memory() -> tuple[Optional[int], Optional[int]]:
    """``(total, available)`` bytes of host memory (MemAvailable from /proc/meminfo, else free pages)."""
    total = avail = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    return total, avail


def environment(requested: str) -> tuple[dict, Any]:
    """Print and return the environment; also the torch module (``None`` when it cannot be imported)."""
    import taskspec_rs as ts

    total, avail = host_memory()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "host_mem_total_gib": None if total is None else round(total / GIB, 1),
        "host_mem_available_gib": None if avail is None else round(avail / GIB, 1),
        "numpy": np.__version__,
        "taskspec_rs": ts.__version__,
        "knn_kernel": ts.knn_kernel(),
        "build_profile": ts.build_profile(),
        "default_num_threads": ts.default_num_threads(),
        "requested_device": requested,
    }
    torch = None
    try:
        import torch
    except Exception as exc:  # report any import failure
        env["torch_error"] = repr(exc)
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_cuda_build"] = torch.version.cuda
        env["cuda_available"] = torch.cuda.is_available()
        env["torch_threads"] = torch.get_num_threads()
        env["float32_matmul_precision"] = torch.get_float32_matmul_precision()
        env["cuda_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            free, tot = torch.cuda.mem_get_info(0)
            env["cuda_device_count"] = torch.cuda.device_count()
            env["gpu_name"] = props.name
            env["gpu_capability"] = f"{props.major}.{props.minor}"
            env["gpu_multiprocessors"] = props.multi_processor_count
            env["gpu_mem_total_gib"] = round(tot / GIB, 1)
            env["gpu_mem_free_gib"] = round(free / GIB, 1)
    log("## Environment\n")
    for key, val in env.items():
        log(f"- {key}: {val}")
    log("")
    return env, torch


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def _draw_rows(torch, dev, n: int, d: int, seed: int, draw: Callable[[Any, int], Any]) -> np.ndarray:
    """``n`` float32 rows from ``draw(generator, m)`` on ``dev``, in chunks of 2^20 rows copied back to numpy."""
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    out = np.empty((n, d), np.float32)
    chunk = 1 << 20
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        out[s : s + m] = draw(g, m).cpu().numpy()
    return out


def embedding_like_torch(torch, dev, n: int, d: int, *, seed: int, latent: int = 64, centres: int = 2000):
    """The distribution of :func:`datagen.embedding_like`, drawn on ``dev`` with torch (fast at 10^7 rows)."""
    space = np.random.default_rng(1000)
    proj = space.standard_normal((latent, d), dtype=np.float32) / np.sqrt(latent)
    proj = torch.from_numpy(proj.astype(np.float32)).to(dev)
    c = torch.from_numpy(space.standard_normal((centres, latent), dtype=np.float32)).to(dev)

    def draw(g, m):
        z = c[torch.randint(0, centres, (m,), generator=g, device=dev)]
        z += torch.randn((m, latent), generator=g, device=dev)
        blk = z @ proj
        blk += 0.05 * torch.randn((m, d), generator=g, device=dev)
        return blk

    return _draw_rows(torch, dev, n, d, seed, draw)


def normal_torch(torch, dev, n: int, d: int, *, seed: int) -> np.ndarray:
    """Standard normal float32 rows drawn on ``dev`` (the task-specific source vectors)."""
    return _draw_rows(torch, dev, n, d, seed, lambda g, m: torch.randn((m, d), generator=g, device=dev))


# ---------------------------------------------------------------------------
# Comparisons with the exact engine
# ---------------------------------------------------------------------------


def true_scores(q: np.ndarray, b: np.ndarray, idx: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """Float64 cosine (plus ``bias``) of each query row with the base rows ``idx`` (blocked over rows)."""
    out = np.empty(idx.shape, np.float64)
    for s in range(0, len(q), 2048):
        qb = q[s : s + 2048].astype(np.float64)
        qb /= np.linalg.norm(qb, axis=1, keepdims=True)
        ib = idx[s : s + 2048]
        bb = b[ib].astype(np.float64)  # (rows, k, d)
        bn = np.linalg.norm(bb, axis=2)
        out[s : s + len(qb)] = np.einsum("nd,nkd->nk", qb, bb) / bn
        if bias is not None:
            out[s : s + len(qb)] += bias[ib].astype(np.float64)
    return out


def compare_neighbours(
    q: np.ndarray,
    b: np.ndarray,
    idx: np.ndarray,
    scores: Optional[np.ndarray],
    ref_idx: np.ndarray,
    bias: Optional[np.ndarray] = None,
    exclude: Optional[np.ndarray] = None,
) -> dict:
    """Compare the torch neighbours ``idx`` (n, k) with the exact ones ``ref_idx`` (n, k + 1).

    A row that differs is accepted as a near-tie when the true scores of the
    torch neighbours equal the exact ones place by place within ``TIE_TOL``
    and, where the sets differ, the exact k-th and (k+1)-th scores are within
    ``TIE_TOL`` (the k-th place was a tie).
    """
    n, k = idx.shape
    ref = ref_idx[:, :k]
    same = (idx == ref).all(axis=1)
    t_true = true_scores(q, b, idx, bias)
    r_true = true_scores(q, b, ref_idx, bias)
    same_set = (np.sort(idx, axis=1) == np.sort(ref, axis=1)).all(axis=1)
    places = (np.abs(t_true - r_true[:, :k]) <= TIE_TOL).all(axis=1)
    boundary = np.abs(r_true[:, k - 1] - r_true[:, k]) <= TIE_TOL if ref_idx.shape[1] > k else np.zeros(n, bool)
    valid = (idx >= 0).all(axis=1) & (idx < len(b)).all(axis=1)
    valid &= (np.diff(np.sort(idx, axis=1), axis=1) != 0).all(axis=1)  # no repeated neighbour
    if exclude is not None:
        valid &= (idx != exclude[:, None]).all(axis=1)
    ok_row = same | (valid & places & (same_set | boundary))
    res = {
        "rows": int(n),
        "identical": int(same.sum()),
        "identical_fraction": float(same.mean()),
        "near_tie_order": int((~same & same_set & ok_row).sum()),
        "near_tie_boundary": int((~same & ~same_set & ok_row).sum()),
        "failed_rows": int((~ok_row).sum()),
        "invalid_rows": int((~valid).sum()),
    }
    if scores is not None:
        res["max_score_error"] = float(np.abs(scores.astype(np.float64) - t_true).max())
    res["ok"] = res["failed_rows"] == 0 and res.get("max_score_error", 0.0) <= SCORE_TOL
    if res["failed_rows"]:
        res["first_failed_row"] = int(np.flatnonzero(~ok_row)[0])
    return res


def compare_projections(ref, got, same_rows: np.ndarray) -> dict:
    """``y_spec`` and weights of two :class:`Projection`\\ s on the rows whose neighbour sets agree."""
    a = ref.y_spec[same_rows].astype(np.float64)
    b = got.y_spec[same_rows].astype(np.float64)
    diff = np.abs(a - b)
    row_rel = np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(a, axis=1), 1e-30)
    o_ref = np.argsort(ref.neighbors[same_rows], axis=1)
    o_got = np.argsort(got.neighbors[same_rows], axis=1)
    w_ref = np.take_along_axis(ref.weights[same_rows], o_ref, axis=1).astype(np.float64)
    w_got = np.take_along_axis(got.weights[same_rows], o_got, axis=1).astype(np.float64)
    w_scale = np.maximum(np.abs(w_ref).max(axis=1, initial=0.0), 1.0)
    w_rel = (np.abs(w_ref - w_got).max(axis=1, initial=0.0) / w_scale) if len(w_ref) else np.zeros(0)
    all_rel = float(np.linalg.norm(ref.y_spec.astype(np.float64) - got.y_spec) / max(np.linalg.norm(ref.y_spec), 1e-30))
    res = {
        "compared_rows": int(same_rows.sum()),
        "max_abs_diff": float(diff.max(initial=0.0)),
        "max_row_rel_error": float(row_rel.max(initial=0.0)),
        "frobenius_rel_error": float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30)),
        "frobenius_rel_error_all_rows": all_rel,
        "max_weight_rel_error": float(w_rel.max(initial=0.0)),
        "finite": bool(np.isfinite(got.y_spec).all() and np.isfinite(got.weights).all()),
    }
    res["ok"] = res["finite"] and res["max_row_rel_error"] <= PROJ_RTOL and res["max_weight_rel_error"] <= PROJ_RTOL
    return res


def csls_bias(ts, base: np.ndarray, queries: np.ndarray, exclude_self: bool, csls_k: int = 10) -> np.ndarray:
    """The base-row bias ``knn(metric="csls")`` adds (computed the same way, with the exact engine)."""
    r = ts.hub_scores(base, queries, csls_k, exclude_self=exclude_self)
    return np.ascontiguousarray(-0.5 * r, dtype=np.float32)


def knn_check(ts, dev: str, q, b, k, *, metric="cosine", exclude_self=False) -> dict:
    kw = {"metric": metric, "exclude_self": exclude_self}
    _, ref_idx = ts.knn(q, b, k + 1, backend="exact", **kw)
    scores, idx = ts.knn(q, b, k, backend="torch", device=dev, **kw)
    bias = csls_bias(ts, b, q, exclude_self) if metric == "csls" else None
    excl = np.arange(len(q)) if exclude_self else None
    return compare_neighbours(q, b, idx, scores, ref_idx, bias, excl)


def llm_check(ts, dev: str, x, xs, y, k, *, metric="cosine", exclude_self=False) -> dict:
    ref = ts.LLMProjector(k, metric=metric, backend="exact").fit(x, xs).project(y, exclude_self=exclude_self)
    proj = ts.LLMProjector(k, metric=metric, backend="torch", device=dev)
    got = proj.fit(x, xs).project(y, exclude_self=exclude_self)
    _, ref_idx = ts.knn(y, x, k + 1, backend="exact", metric=metric, exclude_self=exclude_self)
    bias = csls_bias(ts, x, y, exclude_self) if metric == "csls" else None
    excl = np.arange(len(y)) if exclude_self else None
    nb = compare_neighbours(y, x, got.neighbors, None, ref_idx, bias, excl)
    nb_ref = compare_neighbours(y, x, ref.neighbors, None, ref_idx, bias, excl)
    same_set = (np.sort(got.neighbors, axis=1) == np.sort(ref.neighbors, axis=1)).all(axis=1)
    pr = compare_projections(ref, got, same_set)
    res = {"neighbours": nb, "projection": pr}
    res["ok"] = nb["ok"] and nb_ref["ok"] and pr["ok"] and pr["compared_rows"] > 0
    if not nb_ref["ok"]:
        res["reference_neighbours_disagree_with_exact_knn"] = nb_ref
    return res


def describe(name: str, res: dict) -> str:
    tag = "PASS" if res.get("ok") else "FAIL"
    if "error" in res:
        return f"[{tag}] {name}: error {res['error']}"
    nb = res.get("neighbours", res)
    parts = [
        f"identical rows {nb['identical']}/{nb['rows']} ({100 * nb['identical_fraction']:.2f}%)",
        f"near-tie order {nb['near_tie_order']}",
        f"near-tie k-th place {nb['near_tie_boundary']}",
        f"failed {nb['failed_rows']}",
    ]
    if "max_score_error" in nb:
        parts.append(f"max score error {nb['max_score_error']:.1e}")
    if "projection" in res:
        pr = res["projection"]
        parts.append(
            f"y_spec on {pr['compared_rows']} rows: max abs diff {pr['max_abs_diff']:.2e}, "
            f"max row rel err {pr['max_row_rel_error']:.2e}, rel err {pr['frobenius_rel_error']:.2e} "
            f"(all rows {pr['frobenius_rel_error_all_rows']:.2e}), max weight rel err {pr['max_weight_rel_error']:.2e}"
        )
    return f"[{tag}] {name}: " + "; ".join(parts)


def run_correctness(ts, dev: str, quick: bool, k: int, d: int, report: dict, save: Callable[[], None]) -> bool:
    m, n = QUICK_CORRECTNESS if quick else FULL_CORRECTNESS
    log(f"## Correctness: device={dev!r} vs backend='exact' ({m} sources, {n} targets, d={d}, k={k})\n")
    log(f"tolerances: near-tie {TIE_TOL:g}, score {SCORE_TOL:g}, y_spec/weights relative {PROJ_RTOL:g}\n")
    try:
        x = embedding_like(m, d, seed=1)
        y = embedding_like(n, d, seed=2)
        xs = np.random.default_rng(3).standard_normal((m, d), dtype=np.float32)
    except Exception as exc:
        traceback.print_exc()
        report["correctness"].append({"name": "data", "ok": False, "error": repr(exc)})
        save()
        return False
    checks = [
        (f"knn cosine {n}x{m}", lambda: knn_check(ts, dev, y, x, k)),
        (f"knn csls {n}x{m}", lambda: knn_check(ts, dev, y, x, k, metric="csls")),
        (f"knn cosine exclude_self {m}x{m}", lambda: knn_check(ts, dev, x, x, k, exclude_self=True)),
        (f"llm cosine {n}x{m}", lambda: llm_check(ts, dev, x, xs, y, k)),
        (f"llm csls {n}x{m}", lambda: llm_check(ts, dev, x, xs, y, k, metric="csls")),
        (f"llm cosine exclude_self {m}x{m}", lambda: llm_check(ts, dev, x, xs, x, k, exclude_self=True)),
    ]
    all_ok = True
    for name, fn in checks:
        t0 = time.perf_counter()
        try:
            res = fn()
        except Exception as exc:  # report and go on with the next check
            traceback.print_exc()
            res = {"ok": False, "error": repr(exc)}
        res = {"name": name, **res, "seconds": round(time.perf_counter() - t0, 3)}
        all_ok &= bool(res["ok"])
        report["correctness"].append(res)
        log(describe(name, res) + f" [{res['seconds']:.1f} s]")
        save()
    log("")
    return all_ok


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


class Data:
    """Timing data drawn on the device, kept and sliced while large enough."""

    def __init__(self, torch, dev, d: int, e: int) -> None:
        self.torch, self.dev, self.d, self.e = torch, dev, d, e
        self.x = self.xs = self.y = None
        self.rows_per_s: Optional[float] = None

    def _timed(self, fn, rows):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        self.rows_per_s = rows / max(dt, 1e-9)
        return out, dt

    def missing_rows(self, m: int, n: int) -> int:
        have_x = 0 if self.x is None else len(self.x)
        have_y = 0 if self.y is None else len(self.y)
        return (2 * m if m > have_x else 0) + (n if n > have_y else 0)

    def get(self, m: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        gen = 0.0
        if self.x is None or len(self.x) < m:
            self.x = self.xs = None
            gc.collect()

            def draw():
                x = embedding_like_torch(self.torch, self.dev, m, self.d, seed=11)
                return x, normal_torch(self.torch, self.dev, m, self.e, seed=13)

            (self.x, self.xs), dt = self._timed(draw, 2 * m)
            gen += dt
        if self.y is None or len(self.y) < n:
            self.y = None
            gc.collect()
            self.y, dt = self._timed(lambda: embedding_like_torch(self.torch, self.dev, n, self.d, seed=12), n)
            gen += dt
        return self.x[:m], self.xs[:m], self.y[:n], gen


def host_need(op: str, m: int, n: int, d: int, e: int, k: int, data: Data) -> int:
    """Bytes of host memory a stage still needs (new data, outputs, per-block temporaries, 2 GiB slack)."""
    need = 2 * GIB
    if data.x is None or len(data.x) < m:
        need += m * (d + e) * 4
    if data.y is None or len(data.y) < n:
        need += n * d * 4
    need += n * k * 12  # scores + indices (or weights + neighbours)
    if op == "llm":
        need += n * e * 4 + n * k * 12
    return need


def device_need(op: str, m: int, n: int, d: int, e: int, k: int) -> int:
    """Bytes of device memory of one stage (a generous estimate of torch_backend's blocks)."""
    from taskspec_rs.torch_backend import BASE_BLOCK, QUERY_BLOCK

    qb, bb = min(n, QUERY_BLOCK), min(m, BASE_BLOCK)
    knn = m * d * 4 + qb * d * 4 + 4 * qb * bb * 4 + GIB
    if op == "knn":
        return knn
    solve = m * (d + e) * 8 + m * max(d, e) * 4 + 4 * qb * k * (d + e) * 8 + GIB
    return max(knn, solve)


def free_memory(torch, dev) -> None:
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def sync(torch, dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def spot_check_knn(ts, y, x, k, idx, scores, rows) -> dict:
    _, ref_idx = ts.knn(y[rows], x, k + 1, backend="exact")
    return compare_neighbours(y[rows], x, idx[rows], scores[rows], ref_idx)


def spot_check_llm(ts, x, xs, y, k, got, rows) -> dict:
    from taskspec_rs import Projection

    ref = ts.LLMProjector(k, backend="exact").fit(x, xs).project(y[rows])
    sub = Projection(got.y_spec[rows], got.neighbors[rows], got.weights[rows])
    _, ref_idx = ts.knn(y[rows], x, k + 1, backend="exact")
    nb = compare_neighbours(y[rows], x, sub.neighbors, None, ref_idx)
    same_set = (np.sort(sub.neighbors, axis=1) == np.sort(ref.neighbors, axis=1)).all(axis=1)
    pr = compare_projections(ref, sub, same_set)
    return {"neighbours": nb, "projection": pr, "ok": nb["ok"] and pr["ok"]}


def run_stage(ts, torch, dev, op: str, x, xs, y, k: int) -> dict:
    """Time one call of the public API on the device; returns the figures and a spot check."""
    from taskspec_rs.torch_backend import SCREEN_ROWS

    name = str(dev)
    free_memory(torch, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(torch, dev)
    SCREEN_ROWS.clear()
    t0 = time.perf_counter()
    if op == "knn":
        scores, idx = ts.knn(y, x, k, backend="torch", device=name)
    else:
        got = ts.LLMProjector(k, backend="torch", device=name).fit(x, xs).project(y)
    sync(torch, dev)
    seconds = time.perf_counter() - t0
    res: dict[str, Any] = {"seconds": seconds}
    res["screen_rows"] = dict(SCREEN_ROWS)  # first-pass proofs, redone rows, rows finished by the exact engine
    if dev.type == "cuda":
        res["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / GIB
    rows = np.random.default_rng(7).choice(len(y), min(SPOT_ROWS, len(y)), replace=False)
    rows.sort()
    t1 = time.perf_counter()
    res["spot"] = (
        spot_check_knn(ts, y, x, k, idx, scores, rows) if op == "knn" else spot_check_llm(ts, x, xs, y, k, got, rows)
    )
    res["spot_seconds"] = time.perf_counter() - t1
    return res


def estimate(op: str, m: int, n: int, done: list[dict], data: Data) -> Optional[float]:
    """Seconds a stage will take: the last measured stage of ``op`` scaled by sources x targets, plus new data."""
    prev = [r for r in done if r.get("op") == op and "seconds" in r]
    if prev:
        p = prev[-1]
        t = (p["seconds"] + p.get("spot_seconds", 0.0)) * (m * n) / (p["sources"] * p["targets"])
    else:
        same = [r for r in done if r.get("op") == "knn" and "seconds" in r]
        if not same:
            return None
        p = same[-1]
        t = 2.5 * p["seconds"] * (m * n) / (p["sources"] * p["targets"])
    rows = data.missing_rows(m, n)
    gen = rows / data.rows_per_s if (rows and data.rows_per_s) else 0.0
    return SAFETY * (t + gen)


def run_timing(ts, torch, dev, cases, k: int, d: int, budget: float, report: dict, save: Callable[[], None]) -> bool:
    log(f"## Timing: backend='torch', device={str(dev)!r}, d={d}, k={k}, budget {budget:.0f} s\n")
    log("Seconds include the input checks, host-to-device copies and the returned numpy arrays; data generation")
    log("is excluded (column 'data s'). Each result is spot-checked against backend='exact' on a row sample.\n")
    ok = True
    data = Data(torch, dev, d, d)
    try:  # warm-up: CUDA context, cuBLAS and the solver libraries load on first use
        xw = embedding_like(2000, d, seed=5)
        ts.knn(xw[:500], xw, k, backend="torch", device=str(dev))
        ts.LLMProjector(k, backend="torch", device=str(dev)).fit(xw, xw).project(xw[:500])
        sync(torch, dev)
    except Exception:
        traceback.print_exc()
    total_host, _ = host_memory()
    for m, n in cases:
        for op in ("knn", "llm"):
            row: dict[str, Any] = {"op": op, "sources": m, "targets": n, "d": d, "k": k, "device": str(dev)}
            label = f"{op} {n:,} targets x {m:,} sources"
            _, avail = host_memory()
            h_need = host_need(op, m, n, d, d, k, data)
            g_need = device_need(op, m, n, d, d, k)
            if dev.type == "cuda":
                free_memory(torch, dev)
                g_free = torch.cuda.mem_get_info()[0]
            else:
                g_free, h_need = avail, h_need + g_need
            est = estimate(op, m, n, report["timings"], data)
            left = budget - elapsed()
            why = None
            if avail is not None and h_need > 0.9 * avail:
                why = f"host memory: needs ~{h_need / GIB:.1f} GiB, {avail / GIB:.1f} GiB available"
            elif total_host is not None and h_need > 0.8 * total_host:
                why = f"host memory: needs ~{h_need / GIB:.1f} GiB of {total_host / GIB:.1f} GiB"
            elif dev.type == "cuda" and g_need > 0.9 * g_free:
                why = f"GPU memory: needs ~{g_need / GIB:.1f} GiB, {g_free / GIB:.1f} GiB free"
            elif est is not None and est > left:
                why = f"time budget: estimated {est:.0f} s, {left:.0f} s left"
            elif left <= 0:
                why = "time budget spent"
            if why:
                row["skipped"] = why
                log(f"- SKIP {label}: {why}")
                report["timings"].append(row)
                save()
                continue
            log(f"- {label}: estimated {'?' if est is None else f'{est:.0f}'} s, {left:.0f} s of budget left ...")
            try:
                x, xs, y, gen = data.get(m, n)
                row["data_seconds"] = round(gen, 3)
                row.update(run_stage(ts, torch, dev, op, x, xs, y, k))
                row["targets_per_s"] = n / row["seconds"]
                row["matmul_tflops"] = 2 * m * n * d / row["seconds"] / 1e12
                spot_ok = bool(row["spot"]["ok"])
                ok &= spot_ok
                log(
                    f"  {row['seconds']:.2f} s ({row['targets_per_s']:,.0f} targets/s, "
                    f"{row['matmul_tflops']:.2f} TFLOP/s of similarity products), data {gen:.1f} s, "
                    f"spot check {'PASS' if spot_ok else 'FAIL'}"
                )
                if not spot_ok:
                    log("  " + describe(f"spot check {label}", row["spot"]))
            except Exception as exc:  # report and go on with the next stage
                traceback.print_exc()
                row["error"] = repr(exc)
                log(f"  ERROR {exc!r}")
            finally:
                free_memory(torch, dev)
            report["timings"].append(row)
            save()
    log("")
    return ok


def table(rows: list[dict]) -> str:
    head = "| op | sources | targets | d | k | seconds | targets/s | TFLOP/s | peak GPU GiB | data s | spot | note |"
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        if "seconds" in r:
            peak = f"{r['peak_gpu_gib']:.1f}" if "peak_gpu_gib" in r else "-"
            spot = "PASS" if r.get("spot", {}).get("ok") else "FAIL"
            cells = [
                f"{r['seconds']:.2f}",
                f"{r['targets_per_s']:,.0f}",
                f"{r['matmul_tflops']:.2f}",
                peak,
                f"{r.get('data_seconds', 0):.1f}",
                spot,
                _screen_note(r.get("screen_rows", {})),
            ]
        else:
            note = f"skipped: {r['skipped']}" if "skipped" in r else f"error: {r.get('error', '?')}"
            cells = ["-"] * 6 + [note.replace("|", "/")]
        lines.append(
            f"| {r['op']} | {r['sources']:,} | {r['targets']:,} | {r['d']} | {r['k']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def _screen_note(rows: dict) -> str:
    """How the screen's rows were settled: proven at once, redone with more candidates, exact engine."""
    if not rows:
        return ""
    return f"proven {rows['proven_first']:,}, redone {rows['redone']:,}, exact engine {rows['exact_engine']:,}"


def goal_line(rows: list[dict]) -> dict:
    hit = [
        r
        for r in rows
        if r["op"] == GOAL["op"]
        and r["sources"] == GOAL["sources"]
        and r["targets"] == GOAL["targets"]
        and r["d"] == DIM
    ]
    res: dict[str, Any] = dict(GOAL)
    res["limit_seconds"] = res.pop("seconds")
    if hit and "seconds" in hit[0]:
        res["measured_seconds"] = hit[0]["seconds"]
        res["met"] = hit[0]["seconds"] < GOAL["seconds"]
    else:
        res["measured_seconds"], res["met"] = None, None
    return res


def parse_cases(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        m, n = part.split(":")
        out.append((int(float(m)), int(float(n))))
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", help="torch device of the torch backend (default cuda)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run (e.g. on the CPU)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="no new stage starts past this (default 420 s)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_check.json"), help="JSON output")
    ap.add_argument("--cases", help="timed sizes as SOURCES:TARGETS,... (default 1e5:1e5,1e6:1e5,1e6:1e6,1e6:1e7)")
    ap.add_argument("--k", type=int, default=K)
    ap.add_argument("--dim", type=int, default=DIM)
    ap.add_argument("--skip-correctness", action="store_true")
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args(argv)
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass

    log(f"# taskspec-rs torch backend check ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    import taskspec_rs as ts

    env, torch = environment(args.device)
    out_path = Path(args.out)
    report: dict[str, Any] = {"args": vars(args), "env": env, "correctness": [], "timings": []}

    def save() -> None:
        report["elapsed_seconds"] = round(elapsed(), 1)
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
        except OSError as exc:
            log(f"(could not write {out_path}: {exc!r})")

    if torch is None:
        log("FAIL: torch cannot be imported, so the torch backend cannot be checked; install torch")
        report["ok"] = False
        save()
        return 1

    dev_name = args.device
    timing = not args.skip_timing
    if torch.device(dev_name).type == "cuda" and not torch.cuda.is_available():
        log("NOTE: CUDA is not available (torch sees no GPU): running the correctness checks with the torch")
        log("backend on device='cpu' instead; no timings. Run this on a machine with an NVIDIA GPU for the figures.\n")
        dev_name, timing = "cpu", False
    dev = torch.device(dev_name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    report["device"] = str(dev)

    ok = True
    if not args.skip_correctness:
        try:
            ok &= run_correctness(ts, str(dev), args.quick, args.k, args.dim, report, save)
        except Exception as exc:
            traceback.print_exc()
            report["correctness"].append({"name": "correctness", "ok": False, "error": repr(exc)})
            ok = False
        free_memory(torch, dev)

    if timing:
        cases = parse_cases(args.cases) if args.cases else (QUICK_CASES if args.quick else FULL_CASES)
        try:
            ok &= run_timing(ts, torch, dev, cases, args.k, args.dim, args.budget_s, report, save)
        except Exception as exc:
            traceback.print_exc()
            report["timing_error"] = repr(exc)
        log("## Results\n")
        log(table(report["timings"]))
        goal = goal_line(report["timings"])
        report["goal"] = goal
        verdict = {True: "MET", False: "NOT MET", None: "not measured"}[goal["met"]]
        took = "" if goal["measured_seconds"] is None else f": {goal['measured_seconds']:.1f} s"
        log(
            f"\nGoal: LLM projection {GOAL['targets']:,} targets x {GOAL['sources']:,} sources x d={args.dim} "
            f"under {GOAL['seconds']:.0f} s on {env.get('gpu_name', str(dev))}{took} -> {verdict}"
        )

    failed = [c["name"] for c in report["correctness"] if not c.get("ok")]
    failed += [
        f"spot check {r['op']} {r['targets']}x{r['sources']}"
        for r in report["timings"]
        if "spot" in r and not r["spot"]["ok"]
    ]
    report["ok"] = ok and not failed
    save()
    n_spot = sum("spot" in r for r in report["timings"])
    counts = f"{len(report['correctness'])} correctness checks, {n_spot} spot checks of timed results"
    log(f"\nChecks ({counts}): {'PASS' if report['ok'] else 'FAIL (' + ', '.join(failed) + ')'}")
    log(f"JSON: {out_path}; total {elapsed():.1f} s")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
