"""kNN and LLM solves on torch tensors: the same computations on a GPU (or CPU).

:func:`knn_torch` is the ``"torch"`` backend of :func:`taskspec_rs.knn`: blocked
matrix products over query *and* base blocks, so memory stays bounded by
``QUERY_BLOCK x BASE_BLOCK`` scores whatever the vocabulary sizes.
:func:`llm_project_torch` does the Gram solves of the locally linear mapping as
batched ``torch.linalg.solve`` calls in float64, as the Rust engine does.
Used by :class:`taskspec_rs.LLMProjector` when ``device`` is given.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

QUERY_BLOCK = 8192
BASE_BLOCK = 65536


def _device(device: Any):
    import torch

    dev = torch.device(device or "cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but torch sees no GPU; use backend='exact' or device='cpu'")
    return dev


def _unit(t):
    return t / t.norm(dim=1, keepdim=True)


def knn_torch(
    q: np.ndarray,
    b: np.ndarray,
    k: int,
    *,
    bias: Optional[np.ndarray] = None,
    device: Any = None,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine (plus ``bias`` per base row) top-``k`` of each query row, best first."""
    import torch

    dev = _device(device)
    bases = [_unit(torch.from_numpy(b[s : s + BASE_BLOCK]).to(dev)) for s in range(0, b.shape[0], BASE_BLOCK)]
    bt = None if bias is None else torch.from_numpy(bias).to(dev)
    n = q.shape[0]
    sims = np.empty((n, k), np.float32)
    idx = np.empty((n, k), np.int64)
    for s in range(0, n, QUERY_BLOCK):
        qt = _unit(torch.from_numpy(q[s : s + QUERY_BLOCK]).to(dev))
        best_s = torch.full((len(qt), 0), -float("inf"), device=dev)
        best_i = torch.zeros((len(qt), 0), dtype=torch.int64, device=dev)
        offset = 0
        for xb in bases:
            sim = qt @ xb.T
            if bt is not None:
                sim += bt[offset : offset + len(xb)]
            top_s, top_i = torch.topk(sim, min(k, len(xb)), dim=1, sorted=True)
            best_s, order = torch.topk(torch.cat([best_s, top_s], 1), min(k, best_s.shape[1] + len(xb)), dim=1)
            best_i = torch.gather(torch.cat([best_i, top_i + offset], 1), 1, order)
            offset += len(xb)
        e = s + len(qt)
        sims[s:e] = best_s.cpu().numpy()
        idx[s:e] = best_i.cpu().numpy()
        if progress:
            progress(e, n)
    return sims, idx


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
