"""Peer implementations measured beside taskspec-rs (benchmark-only code).

* ``faiss_knn``: faiss-cpu ``IndexFlatIP`` on L2-normalised copies.
* ``numpy_knn``: blocked ``matmul`` + ``argpartition``.
* ``numpy_solves``: batched LLM Gram solves in numpy (float64).
* ``paper_llm``: the paper's own algorithm ported to numpy: full sort of every
  similarity row, then a batched matrix inverse per word.
* ``sklearn_llm``: scikit-learn ``NearestNeighbors`` (brute, cosine) +
  ``barycenter_weights`` (the LLE weight solver).

The LLM peers take ``(x_gen, x_spec, y_gen, k)`` in the order of
``taskspec_rs.llm_project``.
"""

from __future__ import annotations

import numpy as np

BLOCK = 2048


def normalise(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def faiss_knn(q: np.ndarray, b: np.ndarray, k: int, threads: int = 2):
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(b.shape[1])
    index.add(normalise(b))
    return index.search(normalise(q), k)


def numpy_knn(q: np.ndarray, b: np.ndarray, k: int):
    bn = normalise(b).T.copy()
    qn = normalise(q)
    sims = np.empty((len(q), k), np.float32)
    idx = np.empty((len(q), k), np.int64)
    for s in range(0, len(q), BLOCK):
        blk = qn[s : s + BLOCK] @ bn
        part = np.argpartition(-blk, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(blk, part, 1)
        order = np.argsort(-ps, axis=1, kind="stable")
        idx[s : s + BLOCK] = np.take_along_axis(part, order, 1)
        sims[s : s + BLOCK] = np.take_along_axis(ps, order, 1)
    return sims, idx


def numpy_solves(x: np.ndarray, x_spec: np.ndarray, y: np.ndarray, nbrs: np.ndarray, reg: float = 1e-3):
    n, k = nbrs.shape
    out = np.empty((n, x_spec.shape[1]), np.float32)
    for s in range(0, n, BLOCK):
        nb = nbrs[s : s + BLOCK]
        z = y[s : s + BLOCK, None, :].astype(np.float64) - x[nb].astype(np.float64)
        c = z @ z.transpose(0, 2, 1)
        tr = np.trace(c, axis1=1, axis2=2)
        c += (np.where(tr > 0, reg * tr, reg))[:, None, None] * np.eye(k)
        w = np.linalg.solve(c, np.ones((len(nb), k, 1)))[..., 0]
        w /= w.sum(1, keepdims=True)
        out[s : s + BLOCK] = np.einsum("nk,nke->ne", w, x_spec[nb].astype(np.float64))
    return out


def faiss_llm(x: np.ndarray, x_spec: np.ndarray, y: np.ndarray, k: int, threads: int = 2):
    _, nbrs = faiss_knn(y, x, k, threads)
    return numpy_solves(x, x_spec, y, nbrs)


def paper_llm(x: np.ndarray, x_spec: np.ndarray, y: np.ndarray, k: int, reg: float = 1e-3):
    """The paper's algorithm: full argsort of each similarity row, batched inverse."""
    xn = normalise(x).T.copy()
    yn = normalise(y)
    out = np.empty((len(y), x_spec.shape[1]), np.float32)
    for s in range(0, len(y), BLOCK):
        sim = yn[s : s + BLOCK] @ xn
        nb = np.argsort(-sim, axis=1)[:, :k]
        z = y[s : s + BLOCK, None, :].astype(np.float64) - x[nb].astype(np.float64)
        c = z @ z.transpose(0, 2, 1)
        tr = np.trace(c, axis1=1, axis2=2)
        c += (np.where(tr > 0, reg * tr, reg))[:, None, None] * np.eye(k)
        w = np.linalg.inv(c).sum(axis=2)
        w /= w.sum(1, keepdims=True)
        out[s : s + BLOCK] = np.einsum("nk,nke->ne", w, x_spec[nb].astype(np.float64))
    return out


def sklearn_llm(x: np.ndarray, x_spec: np.ndarray, y: np.ndarray, k: int, threads: int = 2, reg: float = 1e-3):
    from sklearn.manifold._locally_linear import barycenter_weights
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute", n_jobs=threads).fit(x)
    nbrs = nn.kneighbors(y, return_distance=False)
    w = barycenter_weights(y.astype(np.float64), x.astype(np.float64), nbrs, reg=reg)
    return np.einsum("nk,nke->ne", w, x_spec[nbrs].astype(np.float64)).astype(np.float32)
