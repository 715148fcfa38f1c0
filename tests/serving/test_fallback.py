"""Fallbacks: followees' recent saves first, then popular goods; never an excluded good; the domain cap."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from serving import fallback


def _csr(n_rows: int, n_cols: int, pairs: list[tuple[int, int]], data: list[int] | None = None) -> sp.csr_matrix:
    r, c = zip(*pairs, strict=True) if pairs else ((), ())
    return sp.csr_matrix((data or [1] * len(pairs), (r, c)), shape=(n_rows, n_cols))


def test_fill_order_exclusions_and_sources() -> None:
    # Users 0..2, goods 0..9 in domains g % 3. User 0 follows user 1, who saved goods 5 (newer) and 4.
    domains = np.arange(10) % 3
    follows = _csr(3, 3, [(0, 1)])
    recent = _csr(3, 10, [(1, 4), (1, 5)], data=[10, 20])
    exclude = _csr(3, 10, [(0, 6)], data=[1]).astype(bool)
    model = np.array([[7, -1, -1, -1]])
    out = fallback.fill(
        np.array([0]), model, 6, 5, exclude, follows, recent, np.array([6, 7, 8, 9, 0, 1, 2]), domains, 2
    )
    assert out.picks[0].tolist() == [7, 5, 4, 8, 9, 0]
    assert out.source[0].tolist() == [fallback.MODEL, fallback.FOLLOWEE, fallback.FOLLOWEE] + [fallback.POPULAR] * 3
    assert out.via_user[0].tolist() == [-1, 1, 1, -1, -1, -1]
    per_domain = np.bincount(domains[out.picks[0]])
    assert per_domain.max() <= 2


def test_cap_lifts_only_to_reach_min_picks() -> None:
    # Every good in one domain: the cap (1) would allow a single pick; min_picks 3 lifts it to three.
    domains = np.zeros(10, dtype=np.int64)
    empty = sp.csr_matrix((1, 10), dtype=bool)
    out = fallback.fill(
        np.array([0]),
        np.full((1, 0), -1),
        5,
        3,
        empty,
        sp.csr_matrix((1, 1)),
        sp.csr_matrix((1, 10)),
        np.arange(10),
        domains,
        1,
    )
    assert out.picks[0].tolist() == [0, 1, 2, -1, -1]


def test_recent_saves_keep_the_newest_time_and_popular_counts() -> None:
    u = np.array([0, 0, 1, 1, 1])
    g = np.array([3, 3, 3, 4, 2])
    t = np.array([100, 300, 200, 50, 150])
    m = fallback.recent_saves_by_user(2, 5, u, g, t, since=100)
    assert m[0, 3] == 300 - 100 + 1 and m[1, 4] == 0 and m[1, 2] == 150 - 100 + 1
    goods, recent, total = fallback.popular_goods(5, g, t, since=100, limit=5)
    # Recent saves first (good 4's only save is older), then all-time saves, then the newest goods.
    assert goods.tolist() == [3, 2, 4, 1, 0]
    assert recent.tolist() == [3, 1, 0, 0, 0] and total.tolist() == [3, 1, 1, 0, 0]
