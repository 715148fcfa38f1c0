"""A small planted world as GraphArrays: users like one or two of four styles, goods are CLIP-like vectors
around their style, saves spread over 120 days (newer goods are saved later), follows inside a style, and
collections of same-style goods."""

from __future__ import annotations

import numpy as np

from graphrec.core.arrays import GraphArrays, timed_pairs

DAY = 86_400
T0 = 1_700_000_000
N_USERS, N_GOODS, STYLES, DIM = 150, 800, 4, 16
AS_OF = T0 + 120 * DAY


def planted(seed: int = 0, extra_saves: tuple[tuple[int, int, int], ...] = ()) -> GraphArrays:
    rng = np.random.default_rng(seed)
    style = rng.integers(0, STYLES, N_GOODS)
    centers = rng.standard_normal((STYLES, DIM))
    content = centers[style] + 0.6 * rng.standard_normal((N_GOODS, DIM))
    content = (content / np.linalg.norm(content, axis=1, keepdims=True)).astype(np.float32)
    created = np.sort(rng.integers(T0 - 30 * DAY, AS_OF - DAY, N_GOODS))
    likes = [rng.choice(STYLES, size=rng.integers(1, 3), replace=False) for _ in range(N_USERS)]
    rows, cols, times = [], [], []
    # Popular goods within a style are saved more (a Zipf-like weight per good).
    weight = 1.0 / (1.0 + rng.permutation(N_GOODS) % 50)
    for u in range(N_USERS):
        pool = np.flatnonzero(np.isin(style, likes[u]))
        p = weight[pool] / weight[pool].sum()
        goods = rng.choice(pool, size=int(rng.integers(8, 30)), replace=False, p=p)
        for g in goods:
            rows.append(u)
            cols.append(g)
            times.append(int(rng.integers(max(created[g], T0), AS_OF)))
    for u, g, t in extra_saves:
        rows.append(u)
        cols.append(g)
        times.append(t)
    saves, save_time = timed_pairs(np.array(rows), np.array(cols), np.array(times), (N_USERS, N_GOODS))
    fa, fb, ft = [], [], []
    for u in range(N_USERS):
        same = [v for v in range(N_USERS) if v != u and set(likes[v]) & set(likes[u])]
        for v in rng.choice(same, size=min(4, len(same)), replace=False):
            fa.append(u)
            fb.append(int(v))
            ft.append(int(rng.integers(T0, AS_OF)))
    follows, follow_time = timed_pairs(np.array(fa), np.array(fb), np.array(ft), (N_USERS, N_USERS))
    n_coll = 40
    owner = rng.integers(0, N_USERS, n_coll)
    cc, cg, ct = [], [], []
    for c in range(n_coll):
        pool = np.flatnonzero(style == rng.integers(0, STYLES))
        for g in rng.choice(pool, size=6, replace=False):
            cc.append(c)
            cg.append(int(g))
            ct.append(int(rng.integers(max(created[g], T0), AS_OF)))
    contains, contains_time = timed_pairs(np.array(cc), np.array(cg), np.array(ct), (n_coll, N_GOODS))
    return GraphArrays(
        saves=saves,
        save_time=save_time,
        follows=follows,
        follow_time=follow_time,
        contains=contains,
        contains_time=contains_time,
        collection_owner=owner.astype(np.int64),
        content=content,
        domain=(np.arange(N_GOODS) % 25).astype(np.int64),
        created_at=created.astype(np.int64),
        as_of=AS_OF,
        min_goods=5,
    )


def style_of_goods(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, STYLES, N_GOODS)
