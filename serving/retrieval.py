"""Candidate retrieval with FAISS: the goods with the largest inner product with a user's vector.

Exact search (`IndexFlatIP`) by default, which is right at 100,000 goods; an inverted-file index
(`IndexIVFFlat`) for larger catalogs, whose recall against exact search `index_recall` measures. Excluded goods
(a user's saves, collections, recent picks) are removed after the search, which asks for enough extra
neighbours per user to still return `n_candidates` when every excluded good ranks on top.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

INDEX_KINDS = ("exact", "ivf")


@dataclass(frozen=True)
class GoodIndex:
    """A FAISS index over good vectors; `good_idx[row]` is the serving good_idx of index row `row`."""

    index: faiss.Index
    good_idx: np.ndarray  # int64 [n]
    kind: str

    @property
    def size(self) -> int:
        return int(self.index.ntotal)


def build_index(
    good_vecs: np.ndarray,
    good_idx: np.ndarray,
    kind: str = "exact",
    nlist: int = 1024,
    nprobe: int = 32,
    seed: int = 0,
) -> GoodIndex:
    """Index `good_vecs` float32 [n, d] whose rows are the goods `good_idx` int64 [n]."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r} (known: {', '.join(INDEX_KINDS)})")
    vecs = np.ascontiguousarray(good_vecs, dtype=np.float32)
    n, d = vecs.shape
    if kind == "exact" or n < 2:
        index: faiss.Index = faiss.IndexFlatIP(d)
    else:
        # FAISS wants about 39 training points per list; fewer lists on small catalogs.
        nlist = max(1, min(nlist, n // 39))
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vecs[rng.choice(n, size=min(n, 256 * nlist), replace=False)] if n > 256 * nlist else vecs
        ivf.cp.seed = seed
        ivf.train(sample)
        ivf.nprobe = min(nprobe, nlist)
        index = ivf
    if n:
        index.add(vecs)
    return GoodIndex(index=index, good_idx=np.asarray(good_idx, dtype=np.int64), kind=kind)


def retrieve(
    index: GoodIndex,
    queries: np.ndarray,
    exclude: sp.csr_matrix | None,
    n_candidates: int,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top `n_candidates` goods per query vector, excluded goods removed.

    queries: float32 [n, d] user vectors. exclude: bool csr [n, G] in serving good_idx (row i belongs to
    query i), or None. Returns (candidates int64 [n, n_candidates] good_idx, best first, -1 padded;
    scores float32 [n, n_candidates], -inf at padding).
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    n = q.shape[0]
    cands = np.full((n, n_candidates), -1, dtype=np.int64)
    scores = np.full((n, n_candidates), -np.inf, dtype=np.float32)
    if n == 0 or index.size == 0 or n_candidates == 0:
        return cands, scores
    n_excl = np.zeros(n, dtype=np.int64) if exclude is None else np.diff(exclude.indptr)
    # Users with similar numbers of exclusions share a batch, so one search depth fits all of them.
    order = np.argsort(n_excl, kind="stable")
    for start in range(0, n, batch_size):
        users = order[start : start + batch_size]
        depth = int(min(index.size, n_candidates + n_excl[users].max()))
        dist, rows = index.index.search(q[users], depth)
        found = rows >= 0
        good = np.where(found, index.good_idx[np.maximum(rows, 0)], -1)
        if exclude is not None:
            found &= ~_is_excluded(exclude[users], good)
        # Stable compaction: the kept neighbours of each row move to the front in score order.
        take = np.argsort(~found, axis=1, kind="stable")[:, :n_candidates]
        kept = np.take_along_axis(found, take, axis=1)
        width = take.shape[1]
        cands[users, :width] = np.where(kept, np.take_along_axis(good, take, axis=1), -1)
        scores[users, :width] = np.where(kept, np.take_along_axis(dist, take, axis=1), -np.inf)
    return cands, scores


def _is_excluded(exclude: sp.csr_matrix, good: np.ndarray) -> np.ndarray:
    """bool [b, depth]: whether good[i, j] is in row i of `exclude` (bool csr [b, G])."""
    coo = exclude.tocoo()
    n_goods = np.int64(exclude.shape[1]) + 1
    excluded_keys = np.unique(coo.row.astype(np.int64) * n_goods + coo.col)
    keys = np.arange(good.shape[0], dtype=np.int64)[:, None] * n_goods + np.where(
        good >= 0, good, n_goods - 1
    )
    return np.isin(keys, excluded_keys)


def index_recall(
    good_vecs: np.ndarray,
    queries: np.ndarray,
    k: int,
    nlist: int,
    nprobe: int,
    seed: int = 0,
) -> float:
    """Mean recall@k of the IVF index against exact inner-product search, over the query vectors."""
    ids = np.arange(len(good_vecs), dtype=np.int64)
    exact = build_index(good_vecs, ids, "exact")
    approx = build_index(good_vecs, ids, "ivf", nlist=nlist, nprobe=nprobe, seed=seed)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    _, truth = exact.index.search(q, k)
    _, got = approx.index.search(q, k)
    hits = [len(np.intersect1d(t[t >= 0], g[g >= 0])) for t, g in zip(truth, got, strict=True)]
    return float(np.mean(hits) / k) if len(hits) else float("nan")
