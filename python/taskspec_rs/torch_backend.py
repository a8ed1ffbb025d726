"""LLM on torch tensors: the same projection on a GPU (``device="cuda"``) or CPU.

Used by :func:`taskspec_rs.llm_project` when ``device`` is given. kNN runs as
blocked matrix products with ``torch.topk``; the Gram solves are batched
``torch.linalg.solve`` calls in float64, exactly as in the Rust engine.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

BLOCK = 8192


def llm_project_torch(
    x: np.ndarray,
    y: np.ndarray,
    xs: np.ndarray,
    k: int,
    *,
    reg: float,
    exclude_self: bool,
    bias: Optional[np.ndarray],
    device: Any,
    progress: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(y_spec, neighbors, weights)`` computed with torch on ``device``."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but torch sees no GPU; use device=None or 'cpu'")
    xt = torch.from_numpy(x).to(dev)
    xn = xt / xt.norm(dim=1, keepdim=True)
    xst = torch.from_numpy(xs).to(dev)
    bt = None if bias is None else torch.from_numpy(bias).to(dev)
    n = y.shape[0]
    out = np.empty((n, xs.shape[1]), np.float32)
    nbrs = np.empty((n, k), np.int64)
    weights = np.empty((n, k), np.float32)
    eye = torch.eye(k, dtype=torch.float64, device=dev)
    ones = torch.ones(k, 1, dtype=torch.float64, device=dev)
    for s in range(0, n, BLOCK):
        yt = torch.from_numpy(y[s : s + BLOCK]).to(dev)
        sim = (yt / yt.norm(dim=1, keepdim=True)) @ xn.T
        if bt is not None:
            sim += bt
        if exclude_self:
            rows = torch.arange(len(yt), device=dev)
            sim[rows, rows + s] = -float("inf")
        # Stable order: best first, ties by lower index (as the Rust engine).
        _, nb = torch.topk(sim, k, dim=1, sorted=True)
        z = yt.double()[:, None, :] - xt.double()[nb]
        c = z @ z.transpose(1, 2)
        tr = torch.diagonal(c, dim1=1, dim2=2).sum(1)
        ridge = torch.where(tr > 0, reg * tr, torch.full_like(tr, reg))
        c = c + ridge[:, None, None] * eye
        w = torch.linalg.solve(c, ones.expand(len(yt), k, 1))[..., 0]
        w = w / w.sum(1, keepdim=True)
        spec = torch.einsum("nk,nke->ne", w, xst.double()[nb])
        e = s + len(yt)
        out[s:e] = spec.float().cpu().numpy()
        nbrs[s:e] = nb.cpu().numpy()
        weights[s:e] = w.float().cpu().numpy()
        if progress:
            progress(e, n)
    return out, nbrs, weights
