"""Calibrated lists (Steck, "Calibrated recommendations", RecSys 2018): the list's mix of the user's interests
should match the mix of their history.

p(c | u) is the user's interest weight (serving.foryou.interests), q(c | list) the share of the list's goods
whose nearest interest is c, smoothed toward p as in the paper, q~ = (1 - alpha) q + alpha p, so the divergence
stays finite. Greedy, one pick at a time for every user at once, the list takes the candidate maximising

    (1 - lam) * relevance - lam * KL(p || q~(list + candidate))

where relevance is the candidate's score min-max scaled to [0, 1] within the user's candidates (the same scaling
as serving.rerank, so lam does not depend on the ranker's score scale). lam = 0 is the score order. A candidate
with no interest (-1) leaves q unchanged. A candidate whose domain already holds `max_per_domain` picks is never
taken, so the list already satisfies the domain cap that serving.rerank applies after it.
"""

from __future__ import annotations

import numpy as np

from serving.foryou.context import ForYouContext
from serving.foryou.interests import good_interest, interest_vectors, rows_of, user_interests
from serving.rerank import _first_occurrence, _relevance, _take_best, rerank

ALPHA = 0.01


def kl_divergence(p: np.ndarray, q: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """KL(p || (1 - alpha) q + alpha p) over the last axis, in nats; terms with p = 0 count 0."""
    p, q = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64))
    q_s = (1.0 - alpha) * q + alpha * p
    ratio = np.divide(p, q_s, out=np.ones_like(p, dtype=np.float64), where=p > 0)
    return np.where(p > 0, p * np.log(ratio), 0.0).sum(axis=-1)


def calibrate(
    goods: np.ndarray,
    scores: np.ndarray,
    interest: np.ndarray,
    weight: np.ndarray,
    k: int,
    lam: float,
    *,
    domains: np.ndarray | None = None,
    max_per_domain: int | None = None,
    alpha: float = ALPHA,
    quota: float = 0.0,
    quota_floor: int = 0,
    batch_size: int = 1024,
) -> np.ndarray:
    """Choose k picks per user from their candidates, calibrated to the user's interest mix.

    goods: int64 [n, C] good_idx candidates, -1 padding (duplicates after the first occurrence are ignored).
    scores: float [n, C], higher is better. interest: int64 [n, C] the candidate's interest slot (a column of
    `weight`), -1 none. weight: float [n, K] the user's interest weights (rows sum to 1; a row of zeros makes
    the list the score order). domains: int64 [G] domain_idx per good (-1 unknown, never capped).
    quota: share of the k places given out by weight (interest_quotas): while an interest has places left,
    its candidates come before every other (among them, the calibrated value decides); 0 is off.
    quota_floor: places every interest gets at least (with quota or alone).
    Returns int64 [n, k] positions into the candidate columns (not good_idx), best first, -1 padded; take
    `np.take_along_axis(goods, np.maximum(order, 0), 1)` for the good_idx.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    goods = np.atleast_2d(np.asarray(goods, dtype=np.int64))
    sc = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    slot = np.atleast_2d(np.asarray(interest, dtype=np.int64))
    p = np.atleast_2d(np.asarray(weight, dtype=np.float64))
    n, c = goods.shape
    if sc.shape != goods.shape or slot.shape != goods.shape:
        raise ValueError(f"goods {goods.shape}, scores {sc.shape} and interest {slot.shape} must have one shape")
    if p.shape[0] != n:
        raise ValueError(f"weight has {p.shape[0]} rows for {n} users")
    n_k = p.shape[1]
    if (slot >= n_k).any():
        raise ValueError(f"interest slots must be below {n_k} (the columns of weight)")
    out = np.full((n, k), -1, dtype=np.int64)
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        places = interest_quotas(p[sl], k, quota, quota_floor) if quota > 0 or quota_floor > 0 else None
        out[sl] = _calibrate_batch(goods[sl], sc[sl], slot[sl], p[sl], k, lam, domains, max_per_domain, alpha, places)
    return out


def interest_quotas(weight: np.ndarray, k: int, share: float, floor: int = 0) -> np.ndarray:
    """int64 [n, K]: places per interest, round(share * w * k) by largest remainders (the user's total is
    round(share * k) for a user with interests), at least `floor` for every interest; 0 where the weight is 0."""
    w = np.asarray(weight, dtype=np.float64)
    raw = share * k * w
    q = np.floor(raw).astype(np.int64)
    total = np.where(w.sum(axis=1) > 0, int(round(share * k)), 0)
    short = np.maximum(total - q.sum(axis=1), 0)
    order = np.argsort(-(raw - q), axis=1, kind="stable")
    bump = (np.arange(w.shape[1])[None, :] < short[:, None]).astype(np.int64)
    np.put_along_axis(q, order, np.take_along_axis(q, order, axis=1) + bump, axis=1)
    return np.where(w > 0, np.maximum(q, floor), 0)


def _calibrate_batch(
    goods: np.ndarray,
    sc: np.ndarray,
    slot: np.ndarray,
    p: np.ndarray,
    k: int,
    lam: float,
    domains: np.ndarray | None,
    max_per_domain: int | None,
    alpha: float,
    places: np.ndarray | None = None,
) -> np.ndarray:
    n, c = goods.shape
    n_k = p.shape[1]
    rows = np.arange(n)
    avail = _first_occurrence(goods) & np.isfinite(sc)
    slot = np.where(avail & (slot >= 0) & (p[rows[:, None], np.maximum(slot, 0)] > 0), slot, -1)

    relevance = _relevance(sc, avail)

    cap = max_per_domain if domains is not None and max_per_domain is not None else c + 1
    known_domains = np.full(0, -1) if domains is None else np.asarray(domains, dtype=np.int64)
    dom = np.where(avail, known_domains[np.maximum(goods, 0)], -1) if len(known_domains) else np.full((n, c), -1)
    per_domain = np.zeros((n, c), dtype=np.int64)

    counts = np.zeros((n, n_k))
    eye = np.eye(n_k)
    out = np.full((n, k), -1, dtype=np.int64)
    for t in range(k):
        total = counts.sum(axis=1, keepdims=True)
        # KL after adding one good of interest j, for every j [n, K], and after adding a good of none [n].
        q_add = (counts[:, None, :] + eye[None]) / (total[:, :, None] + 1.0)
        kl_add = kl_divergence(p[:, None, :], q_add, alpha)
        q_now = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
        kl_none = kl_divergence(p, q_now, alpha)
        kl = np.where(slot >= 0, kl_add[rows[:, None], np.maximum(slot, 0)], kl_none[:, None])
        value = (1.0 - lam) * relevance - lam * kl
        if places is not None:  # an interest with places left goes first (value is within [-lam * KL, 1])
            left = np.where(slot >= 0, (places - counts)[rows[:, None], np.maximum(slot, 0)] > 0, False)
            value = value + 1e3 * left
        j, ok = _take_best(value, avail, per_domain < cap)
        if not ok.any():
            break
        out[ok, t] = j[ok]
        chosen = slot[rows, j]
        counts[rows[ok & (chosen >= 0)], chosen[ok & (chosen >= 0)]] += 1
        cd = dom[rows, j]
        per_domain += (ok & (cd >= 0))[:, None] & (dom == cd[:, None])
    return out


def final_list(
    ctx: ForYouContext,
    users: np.ndarray,
    goods: np.ndarray,
    scores: np.ndarray,
    k: int,
    slots: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The pipeline's last step: calibrate to each user's interest mix (cfg.calibration, inside the domain cap
    cfg.max_per_domain), then order the k by MMR (serving.rerank, cfg.diversity). With calibration 0 this is
    serving.rerank over all the candidates, as without interests.

    users: int64 [n] user_idx; goods: int64 [n, C] candidate good_idx (-1 padding); scores: float [n, C];
    slots: int64 [n, C] each candidate's interest slot when the caller has them (else found here).
    cfg.interest_quota gives each interest places by weight (calibrate's quota).
    Returns (picks int64 [n, k] good_idx, -1 padded; interest int64 [n, k] the slot of the user's interest each
    pick serves, -1 none; see serving.foryou.interests)."""
    cfg = ctx.cfg
    users = np.asarray(users, dtype=np.int64)
    goods = np.atleast_2d(np.asarray(goods, dtype=np.int64))
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    ui = user_interests(ctx)
    vectors = interest_vectors(ctx)
    a = ctx.arrays
    if cfg.calibration > 0 or cfg.interest_quota > 0 or cfg.interest_min_places > 0:
        rows = rows_of(ui, users)
        weight = np.where((rows >= 0)[:, None], ui.weight[np.maximum(rows, 0)], 0.0)
        slot = good_interest(ui, users, goods, vectors) if slots is None else np.asarray(slots, dtype=np.int64)
        order = calibrate(
            goods,
            scores,
            slot,
            weight,
            k,
            cfg.calibration,
            domains=a.domain,
            max_per_domain=cfg.max_per_domain,
            quota=cfg.interest_quota,
            quota_floor=cfg.interest_min_places,
        )
        at = np.maximum(order, 0)
        goods = np.where(order >= 0, np.take_along_axis(goods, at, axis=1), -1)
        scores = np.where(order >= 0, np.take_along_axis(scores, at, axis=1), -np.inf)
    picks = rerank(goods, scores, a.content, a.domain, k, cfg.diversity, cfg.max_per_domain)
    return picks, good_interest(ui, users, picks, vectors)
