"""Synthetic embedding-like data of the benchmarks (no pytest: ``bench/gpu_check.py`` uses it too)."""

from __future__ import annotations

import numpy as np

DIM = 300


def clustered(n: int, d: int = DIM, *, centres: int = 500, seed: int = 0) -> np.ndarray:
    """Embedding-like rows: noisy points around many centres, float32."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d), dtype=np.float32)
    out = rng.standard_normal((n, d), dtype=np.float32)
    out *= 0.6
    for s in range(0, n, 100_000):
        out[s : s + 100_000] += c[rng.integers(0, centres, min(100_000, n - s))]
    return out


def embedding_like(
    n: int, d: int = DIM, *, latent: int = 64, centres: int = 2000, spread: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Rows with the low intrinsic dimension of real word embeddings, float32.

    A mixture of ``centres`` Gaussians in a ``latent``-dimensional space,
    mapped linearly to ``d`` dimensions, plus small isotropic noise. Isotropic
    300-d noise (``clustered``) is a worst case no word-embedding space looks
    like; approximate search is benchmarked on this instead. The same
    ``seed`` gives the same space (map and centres), so sources and targets
    drawn with different ``sample`` seeds share it.
    """
    space = np.random.default_rng(1000)
    proj = space.standard_normal((latent, d), dtype=np.float32) / np.sqrt(latent)
    c = space.standard_normal((centres, latent), dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        z = c[rng.integers(0, centres, m)] + spread * rng.standard_normal((m, latent), dtype=np.float32)
        out[s : s + m] = z @ proj + 0.05 * rng.standard_normal((m, d), dtype=np.float32)
    return out
