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
        _lowest_ties_first(scores, part, part_scores)
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


def _lowest_ties_first(scores: np.ndarray, part: np.ndarray, part_scores: np.ndarray) -> None:
    """Make argpartition's choice among goods tied at the k-th score the lowest good_idx (in place).

    argpartition keeps an arbitrary subset of a tie that straddles the cut; only those rows are redone.
    """
    cut = part_scores.min(axis=1)
    tied_total = (scores == cut[:, None]).sum(axis=1)
    tied_kept = (part_scores == cut[:, None]).sum(axis=1)
    for row in np.flatnonzero(tied_total > tied_kept):
        above = np.flatnonzero(scores[row] > cut[row])
        tied = np.flatnonzero(scores[row] == cut[row])[: part.shape[1] - len(above)]
        part[row] = np.concatenate([above, tied])
        part_scores[row] = scores[row, part[row]]


def _hits(picks: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """bool [U, k]: whether each of the first k picks is relevant (padding is never a hit)."""
    top = np.asarray(picks)[:, :k]
    truth = sp.csr_matrix(truth)
    valid = top >= 0
    rows = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)
    hits = np.zeros(top.shape, dtype=bool)
    if valid.any():
        hits[valid] = np.asarray(truth[rows[valid], top[valid]]).ravel() != 0
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
    return np.asarray(_hits(picks, truth, k).any(axis=1), dtype=np.float64)


def ndcg_at_k(picks: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """Binary-relevance NDCG: DCG of the top k over the DCG of an ideal list of min(k, |relevant|) hits."""
    hits = _hits(picks, truth, k)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits * discounts).sum(axis=1)
    n_rel = np.minimum(_n_relevant(truth), hits.shape[1]).astype(np.int64)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[n_rel]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def average_precision_at_k(picks: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """AP@k: the mean of precision@i over the ranks i <= k that are hits, divided by min(k, |relevant|).

    MAP@k is its mean over users. 0 for users with no relevant goods.
    """
    hits = _hits(picks, truth, k)
    prec_at_i = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    n_rel = np.minimum(_n_relevant(truth), k)
    return np.divide((prec_at_i * hits).sum(axis=1), n_rel, out=np.zeros_like(n_rel), where=n_rel > 0)


def reciprocal_rank_at_k(picks: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """1 / rank of the first relevant pick within the top k, 0 if none (MRR@k is its mean)."""
    hits = _hits(picks, truth, k)
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)


def n_picks(picks: np.ndarray, k: int | None = None) -> np.ndarray:
    """Number of real (not -1) picks per user in the first k columns. int64 [U]."""
    top = np.asarray(picks) if k is None else np.asarray(picks)[:, :k]
    return (top >= 0).sum(axis=1)


def share_with_min_picks(picks: np.ndarray, min_picks: int = 5) -> float:
    """Share of users who got at least `min_picks` real picks (1.0 for no users)."""
    if len(picks) == 0:
        return 1.0
    return float((n_picks(picks) >= min_picks).mean())


def catalog_coverage(picks: np.ndarray, n_candidates: int, k: int) -> float:
    """Distinct goods among all users' top-k picks / the number of goods that could be picked."""
    top = np.asarray(picks)[:, :k]
    if n_candidates <= 0:
        return 0.0
    return float(len(np.unique(top[top >= 0])) / n_candidates)


def intra_list_diversity(picks: np.ndarray, good_vecs: np.ndarray, k: int) -> np.ndarray:
    """Mean cosine distance (1 - cos) over the pairs of each user's top-k picks. float [U].

    `good_vecs` [G, d] is normalised here, so any content features work. NaN for lists with fewer than 2
    picks (average with np.nanmean).
    """
    top = np.asarray(picks)[:, :k]
    valid = top >= 0
    vecs = np.asarray(good_vecs, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    unit = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
    out = np.full(len(top), np.nan)
    for start in range(0, len(top), 4096):
        sl = slice(start, start + 4096)
        v = unit[np.where(valid[sl], top[sl], 0)] * valid[sl][..., None]
        gram = np.einsum("ukd,ujd->ukj", v, v)
        n = valid[sl].sum(axis=1).astype(np.float64)
        pairs = n * (n - 1)
        # Sum of off-diagonal cosines over ordered pairs; each pair contributes 1 - cos.
        off = gram.sum(axis=(1, 2)) - np.einsum("ukk->u", gram)
        dist = np.divide(pairs - off, pairs, out=np.full(len(n), np.nan), where=pairs > 0)
        out[sl] = dist
    return out


def distinct_domains(picks: np.ndarray, good_domain: np.ndarray, k: int) -> np.ndarray:
    """Number of distinct known domains (domain_idx >= 0) among each user's top-k picks. int64 [U]."""
    top = np.asarray(picks)[:, :k]
    dom = np.where(top >= 0, np.asarray(good_domain)[np.maximum(top, 0)], -1)
    dom = np.sort(dom, axis=1)
    first = np.ones(dom.shape, dtype=bool)
    first[:, 1:] = dom[:, 1:] != dom[:, :-1]
    return (first & (dom >= 0)).sum(axis=1)


def self_information(popularity: np.ndarray, n_users: int) -> np.ndarray:
    """-log2 p(good), p = (users who saved it + 1) / (n_users + 1): smoothed so unsaved goods stay finite."""
    return -np.log2((np.asarray(popularity, dtype=np.float64) + 1.0) / (n_users + 1.0))


def novelty(picks: np.ndarray, popularity: np.ndarray, n_users: int, k: int) -> np.ndarray:
    """Mean self-information of each user's top-k picks (higher: less popular picks). NaN for no picks."""
    top = np.asarray(picks)[:, :k]
    valid = top >= 0
    info = self_information(popularity, n_users)[np.maximum(top, 0)] * valid
    n = valid.sum(axis=1)
    return np.divide(info.sum(axis=1), n, out=np.full(len(n), np.nan), where=n > 0)


def best_cosine_to_picks(
    picks: np.ndarray, good_vecs: np.ndarray, rows: np.ndarray, target_vecs: np.ndarray, k: int
) -> np.ndarray:
    """For target i (a good no model could pick, saved by the user in row rows[i]): the highest cosine
    between target_vecs[i] and the vectors of that user's top-k picks. float [len(rows)]; NaN where the user
    had no picks.
    """
    top = np.asarray(picks)[np.asarray(rows, dtype=np.int64), :k]
    valid = top >= 0

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        n = np.linalg.norm(x, axis=-1, keepdims=True)
        return np.divide(x, n, out=np.zeros_like(x), where=n > 0)

    out = np.full(len(top), np.nan)
    for start in range(0, len(top), 4096):
        sl = slice(start, start + 4096)
        v = unit(np.asarray(good_vecs)[np.maximum(top[sl], 0)])
        cos = np.einsum("skd,sd->sk", v, unit(target_vecs[sl]))
        cos = np.where(valid[sl], cos, -np.inf)
        best = cos.max(axis=1)
        out[sl] = np.where(valid[sl].any(axis=1), best, np.nan)
    return out


def domain_among_picks(
    picks: np.ndarray, good_domain: np.ndarray, rows: np.ndarray, target_domain: np.ndarray, k: int
) -> np.ndarray:
    """For target i: whether its domain (>= 0) is among the domains of user rows[i]'s top-k picks. bool."""
    top = np.asarray(picks)[np.asarray(rows, dtype=np.int64), :k]
    dom = np.where(top >= 0, np.asarray(good_domain)[np.maximum(top, 0)], -1)
    target = np.asarray(target_domain)[:, None]
    return ((dom == target) & (target >= 0)).any(axis=1)


def mix_divergence(p: np.ndarray, q: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """KL(p || (1 - alpha) q + alpha p) per row, in nats (Steck's calibration divergence, smoothed so a list
    that misses one of the user's groups stays finite). p, q: float [U, M] nonnegative, normalised here.
    NaN for rows where p or q is all zero (no history or no list to compare)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    ps, qs = p.sum(axis=1, keepdims=True), q.sum(axis=1, keepdims=True)
    p = np.divide(p, ps, out=np.zeros_like(p), where=ps > 0)
    q = np.divide(q, qs, out=np.zeros_like(q), where=qs > 0)
    q = (1.0 - alpha) * q + alpha * p
    ratio = np.divide(p, q, out=np.ones_like(p), where=p > 0)
    kl = np.where(p > 0, p * np.log(ratio), 0.0).sum(axis=1)
    return np.where((ps[:, 0] > 0) & (qs[:, 0] > 0), kl, np.nan)


def calibration_kl(
    picks: np.ndarray,
    history: sp.csr_matrix,
    good_group: np.ndarray,
    k: int,
    alpha: float = 0.01,
    batch_size: int = 4096,
) -> np.ndarray:
    """How far each user's top-k mix of groups is from the mix of their history: mix_divergence(p, q) with p the
    user's history over groups (weighted by `history`'s values, e.g. 1 per save or a recency weight) and q their
    top-k picks over groups. float [U], NaN where either side has no grouped good; 0 is a perfectly calibrated
    list. Rows of `history` align with rows of `picks`. good_group: int64 [G], any partition of the goods
    (planted styles, domains, clusters of content vectors, see `content_groups`), -1 for goods in none."""
    top = np.asarray(picks)[:, :k]
    history = sp.csr_matrix(history)
    group = np.asarray(good_group, dtype=np.int64)
    if history.shape[0] != top.shape[0]:
        raise ValueError(f"history has {history.shape[0]} rows for {top.shape[0]} rows of picks")
    m = int(group.max()) + 1 if len(group) else 1
    out = np.full(len(top), np.nan)
    for start in range(0, len(top), batch_size):
        h = history[start : start + batch_size]
        b = h.shape[0]
        hg = group[h.indices]
        hr = np.repeat(np.arange(b), np.diff(h.indptr))
        ok = hg >= 0
        p = np.bincount(hr[ok] * m + hg[ok], weights=h.data[ok], minlength=b * m).reshape(b, m)
        t = top[start : start + batch_size]
        tg = np.where(t >= 0, group[np.maximum(t, 0)], -1)
        tr = np.broadcast_to(np.arange(b)[:, None], t.shape)
        ok = tg >= 0
        q = np.bincount(tr[ok] * m + tg[ok], minlength=b * m).reshape(b, m).astype(np.float64)
        out[start : start + b] = mix_divergence(p, q, alpha)
    return out


def planted_interest_coverage(
    picks: np.ndarray, interest: np.ndarray, good_style: np.ndarray, k: int, min_weight: float = 0.15
) -> np.ndarray:
    """Share of each user's planted interests of weight >= min_weight with at least one top-k pick of that style.

    interest: float [U, S] planted weights, rows aligned with `picks`; good_style: int64 [G] planted style per
    good (-1 unknown). float [U], NaN for users with no interest that heavy (average with np.nanmean). Demo
    evaluation only: it needs the generator's planted truth."""
    top = np.asarray(picks)[:, :k]
    interest = np.asarray(interest)
    style = np.asarray(good_style, dtype=np.int64)
    s = np.where(top >= 0, style[np.maximum(top, 0)], -1)
    present = np.zeros(interest.shape, dtype=bool)
    rows = np.broadcast_to(np.arange(len(top))[:, None], top.shape)
    ok = (s >= 0) & (s < interest.shape[1])
    present[rows[ok], s[ok]] = True
    heavy = interest >= min_weight
    n_heavy = heavy.sum(axis=1)
    covered = (heavy & present).sum(axis=1)
    return np.divide(covered, n_heavy, out=np.full(len(top), np.nan), where=n_heavy > 0)


def content_groups(vectors: np.ndarray, n_groups: int, seed: int = 0, iters: int = 20) -> np.ndarray:
    """A fixed partition of the goods for `calibration_kl` on data without planted styles: spherical k-means
    of the (centred) content vectors into n_groups, seeded with `seed`. int64 [G]; -1 for zero vectors."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    valid = norms[:, 0] > 1e-12
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 1e-12)
    x = x - x[valid].mean(axis=0) if valid.any() else x
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    out = np.full(len(x), -1, dtype=np.int64)
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return out
    rng = np.random.default_rng(seed)
    n_groups = min(n_groups, len(idx))
    xi = x[idx]
    c = xi[np.sort(rng.choice(len(idx), n_groups, replace=False))]
    assign = np.zeros(len(idx), dtype=np.int64)
    for _ in range(iters):
        assign = np.concatenate([(xi[i : i + 65536] @ c.T).argmax(axis=1) for i in range(0, len(idx), 65536)])
        member = sp.csr_matrix((np.ones(len(idx), np.float32), (assign, np.arange(len(idx)))), (n_groups, len(idx)))
        new = np.asarray(member @ xi)
        n = np.linalg.norm(new, axis=1, keepdims=True)
        c = np.where(n > 1e-12, new / np.maximum(n, 1e-12), c)
    out[idx] = assign
    return out
