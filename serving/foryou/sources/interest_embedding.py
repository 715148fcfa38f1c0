"""Retrieval per interest (PinnerSage): for each of the user's interests, the goods nearest to it in the graph
model's embedding space, so a user with four tastes gets candidates for all four rather than one neighbourhood
of a single user vector.

An interest's query is the normalised mean of the model vectors of its saved goods (its medoid's vector when
`query="medoid"`, as PinnerSage does); goods are scored by cosine to it (exact matmul over every good). The
user's `n` candidates are shared out between the interests by weight, with every interest guaranteed
`n // (2 * interests)` places, so a small taste still gets candidates to calibrate with. `via` is the
interest's medoid (the saved good the reason can name) and `interest` its slot. Without the model's vectors
(the app passed none) the interests' CLIP centroids are the queries.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from serving.foryou.context import ForYouContext
from serving.foryou.interests import UserInterests, rows_of, user_interests
from serving.foryou.sources.base import Candidates


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 1e-12)


def interest_queries(ui: UserInterests, good_vecs: np.ndarray, query: str = "centroid") -> np.ndarray:
    """float32 [I, d]: one unit query vector per flat interest in the space of `good_vecs` [G, d]."""
    vecs = np.asarray(good_vecs, dtype=np.float32)
    if query == "medoid":
        return _unit(vecs[np.maximum(ui.medoid, 0)] * (ui.medoid >= 0)[:, None])
    if query != "centroid":
        raise ValueError(f"query must be 'centroid' or 'medoid', got {query!r}")
    member = ui.save_interest >= 0
    m = sp.csr_matrix(
        (np.ones(int(member.sum()), np.float32), (ui.save_interest[member], ui.save_good[member])),
        shape=(len(ui.owner), len(vecs)),
    )
    return _unit(np.asarray(m @ _unit(vecs), dtype=np.float32))


def quotas(weight: np.ndarray, n: int) -> np.ndarray:
    """int64 [b, K] places per interest slot: half of n shared equally, half by weight (largest remainders),
    summing to n for every user with an interest."""
    w = np.asarray(weight, dtype=np.float64)
    live = w > 0
    m = live.sum(axis=1, keepdims=True)
    share = np.where(live, 0.5 / np.maximum(m, 1) + 0.5 * w, 0.0)
    share = np.divide(share, share.sum(axis=1, keepdims=True), out=np.zeros_like(share), where=m > 0)
    raw = share * n
    q = np.floor(raw).astype(np.int64)
    short = n - q.sum(axis=1)
    rema = np.where(live, raw - q, -1.0)
    order = np.argsort(-rema, axis=1, kind="stable")
    bump = np.arange(w.shape[1])[None, :] < short[:, None]
    np.put_along_axis(q, order, np.take_along_axis(q, order, axis=1) + bump * (m > 0), axis=1)
    return np.where(live, q, 0)


class InterestEmbedding:
    name = "interest"

    def __init__(self, query: str = "centroid", batch: int = 128) -> None:
        self.query = query
        self.batch = batch

    def candidates(self, ctx: ForYouContext, users: np.ndarray, n: int) -> Candidates:
        users = np.asarray(users, dtype=np.int64)
        ui = user_interests(ctx)
        if ctx.model is not None:
            space = np.asarray(ctx.model.good_vecs, dtype=np.float32)
        else:
            space = np.asarray(ctx.arrays.content, dtype=np.float32)
        queries = ctx.memo(f"interest_queries_{self.query}", lambda: interest_queries(ui, space, self.query))
        space_t = ctx.memo("interest_space_t", lambda: np.ascontiguousarray(_unit(space).T))
        ok_good = ctx.pickable() & (np.abs(space).sum(axis=1) > 0)

        goods = np.full((len(users), n), -1, np.int64)
        scores = np.full((len(users), n), -np.inf, np.float32)
        via = np.full((len(users), n), -1, np.int64)
        slots = np.full((len(users), n), -1, np.int64)
        rows = rows_of(ui, users)
        per_user = max(float(ui.count.mean()) if len(ui.users) else 1.0, 1.0)
        batch = int(max(8, min(self.batch, 2e7 // (space.shape[0] * per_user))))  # sims [queries, G] stay small
        for start in range(0, len(users), batch):
            sl = slice(start, start + batch)
            r = rows[sl]
            ir = np.where((r >= 0)[:, None], ui.row[np.maximum(r, 0)], -1)  # [b, K]
            w = np.where(ir >= 0, ui.weight[np.maximum(r, 0)], 0.0)
            q = quotas(w, n)
            bi, kj = np.nonzero(ir >= 0)
            if len(bi) == 0:
                continue
            sims = queries[ir[bi, kj]] @ space_t  # [Q, G]
            sims[:, ~ok_good] = -np.inf
            sims[ctx.exclude[users[sl]].toarray()[bi]] = -np.inf
            depth = min(n, sims.shape[1])
            part = np.argpartition(-sims, depth - 1, axis=1)[:, :depth]
            ps = np.take_along_axis(sims, part, axis=1)
            order = np.lexsort((part, -ps), axis=1)
            top = np.take_along_axis(part, order, axis=1)
            top_s = np.take_along_axis(ps, order, axis=1)
            for i in range(len(r)):
                mine = np.flatnonzero(bi == i)
                if len(mine) == 0:
                    continue
                # Every interest's top quota first, then its next goods for places duplicates leave empty; a
                # good counts once, for its best interest; the chosen n are listed by cosine.
                g_f, s_f = top[mine].ravel(), top_s[mine].ravel()
                k_f = np.repeat(kj[mine], depth)
                in_f = (np.arange(depth)[None, :] < q[i, kj[mine]][:, None]).ravel()
                fin = np.isfinite(s_f)
                g_f, s_f, k_f, in_f = g_f[fin], s_f[fin], k_f[fin], in_f[fin]
                o = np.lexsort((g_f, -s_f))  # best interest of each good first
                _, first = np.unique(g_f[o], return_index=True)
                keep = o[first]
                keep = keep[np.lexsort((g_f[keep], -s_f[keep], ~in_f[keep]))][:n]
                keep = keep[np.lexsort((g_f[keep], -s_f[keep]))]
                row, take = start + i, len(keep)
                goods[row, :take] = g_f[keep]
                scores[row, :take] = s_f[keep]
                slots[row, :take] = k_f[keep]
                via[row, :take] = ui.medoid[ir[i, k_f[keep]]]
        return Candidates(self.name, users, goods, scores, via, interest=slots)
