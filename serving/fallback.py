"""Fallback picks for users the model leaves short: what their followees saved recently, then what is
popular lately. Every fallback pick is marked, and none is a good the user must not be shown."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Pick sources, stored per pick; the reasons module words each one. SEQUENCE: For You's sequence source (the
# next good after the user's newest save, which the pick's anchor names); not a fallback, as MODEL.
MODEL, FOLLOWEE, POPULAR, SEQUENCE = 0, 1, 2, 3


@dataclass(frozen=True)
class Filled:
    picks: np.ndarray  # int64 [n, target] good_idx, -1 padded
    source: np.ndarray  # int8 [n, target]: MODEL, FOLLOWEE or POPULAR
    via_user: np.ndarray  # int64 [n, target] user_idx of the followee for FOLLOWEE picks, else -1


def recent_saves_by_user(
    n_users: int, n_goods: int, user_idx: np.ndarray, good_idx: np.ndarray, saved_at: np.ndarray, since: int
) -> sp.csr_matrix:
    """csr [U, G] of saves at or after `since`; data = save time (seconds), for ordering newest first."""
    keep = (user_idx >= 0) & (good_idx >= 0) & (saved_at >= since)
    u, g, t = user_idx[keep], good_idx[keep], saved_at[keep]
    # A good saved twice by one user keeps its newest time.
    order = np.lexsort((-t, g, u))
    u, g, t = u[order], g[order], t[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (g[1:] != g[:-1])
    # Offset by `since - 1` so every stored value is positive (a stored zero would vanish).
    data = (t[first] - since + 1).astype(np.int64)
    m = sp.csr_matrix((data, (u[first], g[first])), shape=(n_users, n_goods))
    return m


def popular_goods(
    n_goods: int, good_idx: np.ndarray, saved_at: np.ndarray, since: int, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `limit` goods saved most often since `since`; then, so that a quiet week still fills every
    list, the most saved of all time, then the newest (highest good_idx, as ids grow with time).

    Returns (good_idx, saves since `since`, saves of all time), most popular first."""
    ok = good_idx >= 0
    total = np.bincount(good_idx[ok], minlength=n_goods)
    recent = np.bincount(good_idx[ok & (saved_at >= since)], minlength=n_goods)
    order = np.lexsort((-np.arange(n_goods), -total, -recent))[:limit]
    return order.astype(np.int64), recent[order], total[order]


def fill(
    users: np.ndarray,
    picks: np.ndarray,
    target: int,
    min_picks: int,
    exclude: sp.csr_matrix,
    follows: sp.csr_matrix,
    recent_saves: sp.csr_matrix,
    popular: np.ndarray,
    domains: np.ndarray,
    max_per_domain: int,
) -> Filled:
    """Top up each user's model picks to `target` from followees' recent saves, then `popular`.

    users: int64 [n] user_idx. picks: int64 [n, k<=target] model picks (good_idx, -1 padded).
    exclude: bool csr [U, G]. follows: csr [U, U] follower -> followee. recent_saves: csr [U, G] from
    `recent_saves_by_user`. popular: good_idx, most popular first. The domain cap holds while it can; when a
    user would still have fewer than `min_picks`, it is lifted for the rest of that user's picks.
    """
    n = len(users)
    out = np.full((n, target), -1, dtype=np.int64)
    source = np.full((n, target), MODEL, dtype=np.int8)
    via = np.full((n, target), -1, dtype=np.int64)
    width = min(picks.shape[1], target)
    out[:, :width] = picks[:, :width]
    have = (out >= 0).sum(axis=1)
    for i in np.flatnonzero(have < target):
        u = int(users[i])
        chosen = [int(g) for g in out[i] if g >= 0]
        taken = set(chosen) | set(exclude.indices[exclude.indptr[u] : exclude.indptr[u + 1]].tolist())
        per_domain: dict[int, int] = {}
        for g in chosen:
            d = int(domains[g])
            if d >= 0:
                per_domain[d] = per_domain.get(d, 0) + 1
        offers = _followee_offers(u, follows, recent_saves) + [(int(g), POPULAR, -1) for g in popular]
        slot = len(chosen)
        for capped in (True, False):
            for g, src, who in offers:
                if slot >= target or (not capped and slot >= min_picks):
                    break
                if g in taken:
                    continue
                d = int(domains[g])
                if capped and d >= 0 and per_domain.get(d, 0) >= max_per_domain:
                    continue
                taken.add(g)
                if d >= 0:
                    per_domain[d] = per_domain.get(d, 0) + 1
                out[i, slot], source[i, slot], via[i, slot] = g, src, who
                slot += 1
    return Filled(picks=out, source=source, via_user=via)


def _followee_offers(user: int, follows: sp.csr_matrix, recent_saves: sp.csr_matrix) -> list[tuple[int, int, int]]:
    """(good_idx, FOLLOWEE, followee user_idx) of the user's followees' recent saves, newest first."""
    if user >= follows.shape[0]:
        return []
    followees = follows.indices[follows.indptr[user] : follows.indptr[user + 1]]
    followees = followees[followees < recent_saves.shape[0]]
    if len(followees) == 0:
        return []
    sub = recent_saves[followees].tocoo()
    order = np.lexsort((sub.col, -sub.data))
    seen: set[int] = set()
    offers = []
    for r, g in zip(sub.row[order].tolist(), sub.col[order].tolist(), strict=True):
        if g not in seen:
            seen.add(g)
            offers.append((g, FOLLOWEE, int(followees[r])))
    return offers
