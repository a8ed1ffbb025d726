"""kNN and LLM solves on torch tensors: the same computations on a GPU (or CPU).

:func:`knn_torch` is the ``"torch"`` backend of :func:`taskspec_rs.knn`. It
screens and re-ranks, as the Rust engine does on CPUs with reduced-precision
dot products:

1. **Screen.** Blocked matrix products over query *and* base blocks (memory
   bounded by ``QUERY_BLOCK x BASE_BLOCK`` scores whatever the vocabulary
   sizes) keep each query's ``c`` best *screened* scores. On CUDA the products
   run in float16 on tensor cores; elsewhere in float32.
2. **Exact re-rank.** The candidates are re-scored in float64 (cosine from
   float64 dot products and norms, plus the bias) and sorted, best first, ties
   to the lower index.
3. **Proof.** Every screened score is within ``eps`` of the exact one
   (:func:`screen_error`). A base row outside the candidates has a screened
   score at most ``A_c`` (the ``c``-th best kept), so an exact score at most
   ``A_c + eps``. When that is below the exact ``k``-th best candidate, no such
   row can enter the top ``k``: the answer is exact. Rows without that proof
   are screened again with ``8 c`` candidates, and any still left are searched
   by the exact Rust engine.

:func:`llm_project_torch` does the Gram solves of the locally linear mapping
as batched ``torch.linalg.solve`` calls in float64, as the Rust engine does.
Used by :class:`taskspec_rs.LLMProjector` when ``device`` is given.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Optional

import numpy as np

QUERY_BLOCK = 8192
BASE_BLOCK = 65536
#: Screened candidates per query in the first pass, beyond ``k``.
EXTRA_CANDIDATES = 32
#: Columns per chunk of the screen's two-step selection (:func:`_block_topk`).
SCREEN_CHUNK = 128
#: Bytes of gathered float64 candidate rows per re-rank step.
RERANK_BYTES = 1 << 30
#: Rows of :func:`knn_torch` calls so far (a diagnostic; clear it to start a count): searched,
#: proven in the first pass, redone with more candidates, finished by the exact engine.
SCREEN_ROWS: dict[str, int] = {}


def _device(device: Any):
    import torch

    dev = torch.device(device or "cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but torch sees no GPU; use backend='exact' or device='cpu'")
    return dev


def _unit(t):
    return t / t.norm(dim=1, keepdim=True)


def screen_error(d: int, half: bool, max_bias: float) -> float:
    """Bound on ``|screened - exact|`` of one score (unit rows normalised in float32).

    float32 normalisation: each unit row is off by at most ``(d + 4) 2^-24``
    (relative), twice for a product. Float16 screen (unit round-off
    ``u = 2^-11``): rounding both inputs costs ``2u + u^2`` (Cauchy-Schwarz bounds
    ``sum |q_i||b_i|`` by 1), subnormal inputs ``d 2^-24``, float32
    accumulation ``d 2^-24``, and the float16 output ``u``. Float32 screen:
    accumulation ``d 2^-24``. The bias is added in float32: ``2^-24 (1 + |bias|)``.
    """
    eps = 2 * (d + 4) * 2.0**-24 + d * 2.0**-24 + 2.0**-23 * (1.0 + max_bias)
    if half:
        u = 2.0**-11
        eps += 3 * u + u * u + d * 2.0**-24
    return 2 * eps  # twice the sum: a margin for the rounding of the bound itself


@contextlib.contextmanager
def _full_precision(torch):
    """float32 products in full float32 (no TF32) and float16 products accumulated in float32."""
    cuda = torch.backends.cuda.matmul
    saved = (cuda.allow_tf32, cuda.allow_fp16_reduced_precision_reduction)
    cuda.allow_tf32, cuda.allow_fp16_reduced_precision_reduction = False, False
    try:
        yield
    finally:
        cuda.allow_tf32, cuda.allow_fp16_reduced_precision_reduction = saved


class _Base:
    """The base on the device: float32 unit blocks (and float16 copies), float64 rows for the re-rank."""

    def __init__(self, torch, b: np.ndarray, bias: Optional[np.ndarray], dev, half: Optional[bool] = None) -> None:
        self.torch, self.dev = torch, dev
        self.half = dev.type == "cuda" if half is None else half
        self.blocks = []
        for s in range(0, b.shape[0], BASE_BLOCK):
            blk = _unit(torch.from_numpy(b[s : s + BASE_BLOCK]).to(dev))
            self.blocks.append((s, blk.half() if self.half else blk))
        self.exact = torch.from_numpy(b).to(dev).double()
        self.exact_norm = self.exact.norm(dim=1)
        self.bias = None if bias is None else torch.from_numpy(bias).to(dev)
        self.bias64 = None if bias is None else self.bias.double()
        self.eps = screen_error(b.shape[1], self.half, 0.0 if bias is None else float(np.abs(bias).max(initial=0.0)))

    def screen(self, q, c: int):
        """Each row's ``c`` best screened scores (descending) and their base rows."""
        torch = self.torch
        qs = _unit(q.float())
        qs = qs.half() if self.half else qs
        best_s = torch.full((len(q), 0), -float("inf"), device=self.dev)
        best_i = torch.zeros((len(q), 0), dtype=torch.int64, device=self.dev)
        for offset, xb in self.blocks:
            sim = qs @ xb.T
            if self.bias is not None:
                sim = sim.float() + self.bias[offset : offset + len(xb)]
            top_s, top_i = _block_topk(torch, sim, min(c, len(xb)))
            best_s, order = torch.topk(torch.cat([best_s, top_s], 1), min(c, best_s.shape[1] + len(xb)), dim=1)
            best_i = torch.gather(torch.cat([best_i, top_i + offset], 1), 1, order)
        return best_s, best_i

    def rerank(self, q, cand, k: int):
        """Exact float64 scores of the candidates: the best ``k`` (ties to the lower index)."""
        rows = max(1, RERANK_BYTES // (cand.shape[1] * q.shape[1] * 8))
        if len(q) > rows:
            parts = [self.rerank(q[s : s + rows], cand[s : s + rows], k) for s in range(0, len(q), rows)]
            return self.torch.cat([p[0] for p in parts]), self.torch.cat([p[1] for p in parts])
        torch = self.torch
        q64 = q.double()
        cand, _ = torch.sort(cand, dim=1)
        dots = torch.einsum("nd,ncd->nc", q64, self.exact[cand])
        score = dots / (q64.norm(dim=1, keepdim=True) * self.exact_norm[cand])
        if self.bias64 is not None:
            score += self.bias64[cand]
        score, order = torch.sort(score, dim=1, descending=True, stable=True)
        return score[:, :k], torch.gather(cand, 1, order[:, :k])

    def search(self, q, k: int, c: int):
        """Top-``k`` of the query rows ``q`` and whether each row's answer is proven exact."""
        c = min(c, sum(len(xb) for _, xb in self.blocks))
        screened, cand = self.screen(q, c)
        score, idx = self.rerank(q, cand, k)
        proven = screened[:, -1] + self.eps < score[:, -1]
        if c == self.exact.shape[0]:
            proven[:] = True  # every row was a candidate
        return score, idx, proven


def _block_topk(torch, sim, c: int):
    """The ``c`` best scores of each row of ``sim`` (unsorted) and their columns.

    Wide blocks first keep the ``c`` chunks of ``SCREEN_CHUNK`` columns with the
    highest maxima: they hold the ``c`` best scores (each chunk maximum outside
    them is at most the ``c``-th best inside), so one cheap max-reduction
    replaces most of the selection's passes over the block.
    """
    rows, width = sim.shape
    if width % SCREEN_CHUNK or width // SCREEN_CHUNK < 4 * c:
        top_s, top_i = torch.topk(sim, c, dim=1, sorted=False)
        return top_s.float(), top_i
    maxima = sim.view(rows, width // SCREEN_CHUNK, SCREEN_CHUNK).amax(dim=2)
    chunks = torch.topk(maxima, c, dim=1, sorted=False)[1]
    cols = (chunks[:, :, None] * SCREEN_CHUNK + torch.arange(SCREEN_CHUNK, device=sim.device)).reshape(rows, -1)
    top_s, pos = torch.topk(torch.gather(sim, 1, cols), c, dim=1, sorted=False)
    return top_s.float(), torch.gather(cols, 1, pos)


def knn_torch(
    q: np.ndarray,
    b: np.ndarray,
    k: int,
    *,
    bias: Optional[np.ndarray] = None,
    device: Any = None,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine (plus ``bias`` per base row) top-``k`` of each query row, best first (exact)."""
    import torch

    dev = _device(device)
    n = q.shape[0]
    sims = np.empty((n, k), np.float32)
    idx = np.empty((n, k), np.int64)
    c = k + EXTRA_CANDIDATES
    with _full_precision(torch), torch.no_grad():
        base = _Base(torch, b, bias, dev)
        left, redone = [], 0
        for s in range(0, n, QUERY_BLOCK):
            e = min(n, s + QUERY_BLOCK)
            qt = torch.from_numpy(q[s:e]).to(dev)
            score, top, proven = base.search(qt, k, c)
            redo = torch.nonzero(~proven)[:, 0]
            redone += len(redo)
            if len(redo):
                score[redo], top[redo], proven[redo] = base.search(qt[redo], k, 8 * c)
            sims[s:e] = score.float().cpu().numpy()
            idx[s:e] = top.cpu().numpy()
            left.append(s + torch.nonzero(~proven)[:, 0].cpu().numpy())
            if progress:
                progress(e, n)
    left = np.concatenate(left) if left else np.empty(0, np.int64)
    _exact_rows(q, b, k, bias, left, sims, idx)
    for key, val in (("rows", n), ("proven_first", n - redone), ("redone", redone), ("exact_engine", len(left))):
        SCREEN_ROWS[key] = SCREEN_ROWS.get(key, 0) + val
    return sims, idx


def _exact_rows(q, b, k, bias, rows: np.ndarray, sims: np.ndarray, idx: np.ndarray) -> None:
    """Rows the screen could not prove (many near-ties) are searched by the exact Rust engine."""
    if len(rows):
        from . import _core

        sims[rows], idx[rows] = _core.knn(np.ascontiguousarray(q[rows]), b, k, base_bias=bias)


def llm_project_torch(
    x: np.ndarray,
    y: np.ndarray,
    xs: np.ndarray,
    nbrs: np.ndarray,
    *,
    reg: float,
    device: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(y_spec, weights)`` of the locally linear mapping from given neighbours, on ``device``."""
    import torch

    dev = _device(device)
    n, k = nbrs.shape
    xt = torch.from_numpy(x).to(dev).double()
    xst = torch.from_numpy(xs).to(dev).double()
    out = np.empty((n, xs.shape[1]), np.float32)
    weights = np.empty((n, k), np.float32)
    eye = torch.eye(k, dtype=torch.float64, device=dev)
    ones = torch.ones(k, 1, dtype=torch.float64, device=dev)
    for s in range(0, n, QUERY_BLOCK):
        nb = torch.from_numpy(nbrs[s : s + QUERY_BLOCK]).to(dev)
        yt = torch.from_numpy(y[s : s + QUERY_BLOCK]).to(dev).double()
        z = yt[:, None, :] - xt[nb]
        c = z @ z.transpose(1, 2)
        tr = torch.diagonal(c, dim1=1, dim2=2).sum(1)
        ridge = torch.where(tr > 0, reg * tr, torch.full_like(tr, reg))
        try:
            w = torch.linalg.solve(c + ridge[:, None, None] * eye, ones.expand(len(yt), k, 1))[..., 0]
        except RuntimeError as exc:
            from .errors import NumericalError

            raise NumericalError(f"a Gram matrix is singular; use reg > 0 ({exc})") from None
        w = w / w.sum(1, keepdim=True)
        e = s + len(yt)
        out[s:e] = torch.einsum("nk,nke->ne", w, xst[nb]).float().cpu().numpy()
        weights[s:e] = w.float().cpu().numpy()
    return out, weights
