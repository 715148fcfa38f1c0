"""Ranking and top-K metrics, pure numpy. Shared by training (validation), evaluation and benchmarks.

Id space: everything here is in graph indices (`user_idx` rows, `good_idx` columns).
`picks` is an int64 array [U, K] of good_idx, best first, padded with -1 where a user had fewer than K
candidates. `truth` is a scipy csr_matrix [U, G] whose nonzeros are the relevant goods of each row's user.
Per-user metric functions return float arrays [U]; average over the users you evaluate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

ScoreFn = Callable[[np.ndarray], np.ndarray]


def topk(
    score_fn: ScoreFn,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """Top-k good_idx per user, best first.

    score_fn(user_idx int64 [b]) -> float [b, G]. `exclude` [U, G]: nonzero entries (indexed by user_idx)
    are never ranked. Users with fewer than k rankable goods get -1 in the tail. Ties break toward the
    lower good_idx, so results are deterministic.
    """
    users = np.asarray(users, dtype=np.int64)
    out = np.full((len(users), k), -1, dtype=np.int64)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = np.array(score_fn(batch), dtype=np.float32, copy=True)
        n_goods = scores.shape[1]
        if exclude is not None:
            sub = exclude[batch]
            rows = np.repeat(np.arange(len(batch)), np.diff(sub.indptr))
            scores[rows, sub.indices] = -np.inf
        kk = min(k, n_goods)
        if kk < n_goods:
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        else:
            part = np.tile(np.arange(n_goods), (len(batch), 1))
        part_scores = np.take_along_axis(scores, part, axis=1)
        # Sort by score desc, then good_idx asc for stable ties.
        order = np.lexsort((part, -part_scores), axis=1)
        best = np.take_along_axis(part, order, axis=1)
        best_scores = np.take_along_axis(part_scores, order, axis=1)
        best[~np.isfinite(best_scores)] = -1
        out[start : start + len(batch), :kk] = best
    return out


def topk_from_vectors(
    user_vecs: np.ndarray,
    good_vecs: np.ndarray,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """topk() with inner-product scores `user_vecs[u] @ good_vecs.T` (user_vecs indexed by user_idx)."""
    good_t = np.ascontiguousarray(good_vecs, dtype=np.float32).T
    user_vecs = np.asarray(user_vecs, dtype=np.float32)
    return topk(lambda u: user_vecs[u] @ good_t, users, k, exclude, batch_size)


def _hits(picks: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """bool [U, k]: whether each of the first k picks is relevant (padding is never a hit)."""
    top = picks[:, :k]
    hits = np.zeros(top.shape, dtype=bool)
    truth = sp.csr_matrix(truth)
    for row in range(top.shape[0]):
        rel = truth.indices[truth.indptr[row] : truth.indptr[row + 1]]
        if len(rel):
            hits[row] = np.isin(top[row], rel) & (top[row] >= 0)
    return hits


def _n_relevant(truth: sp.csr_matrix) -> np.ndarray:
    return np.diff(sp.csr_matrix(truth).indptr).astype(np.float64)


def recall_at_k(picks: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """Relevant goods in the top k / all relevant goods; 0 for users with no relevant goods."""
    n_rel = _n_relevant(truth)
    hit = _hits(picks, truth, k).sum(axis=1)
    return np.divide(hit, n_rel, out=np.zeros_like(n_rel), where=n_rel > 0)


def precision_at_k(picks: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """Relevant goods in the top k / k (padding counts as a miss)."""
    return _hits(picks, truth, k).sum(axis=1) / float(k)


def hit_rate_at_k(picks: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """1 when any of the top k is relevant."""
    return _hits(picks, truth, k).any(axis=1).astype(np.float64)


def ndcg_at_k(picks: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """Binary-relevance NDCG: DCG of the top k over the DCG of an ideal list of min(k, |relevant|) hits."""
    hits = _hits(picks, truth, k)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits * discounts).sum(axis=1)
    n_rel = np.minimum(_n_relevant(truth), hits.shape[1]).astype(np.int64)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[n_rel]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)
