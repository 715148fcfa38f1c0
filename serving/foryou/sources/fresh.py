"""Fresh goods: created in the last fresh_days with at most fresh_max_saves saves, closest by CLIP to one of
the user's newest saves (the score is that cosine; `via` names that save, the reason's anchor).

Up to FRESH_EXACT_POOL fresh goods every anchor is compared with every fresh good. Above it (at 10x, ~88,000
fresh goods: 31,000 users x 5 anchors x 88,000 x 512 was ~1.4e13 flops, minutes on two cores) each anchor's
nearest fresh goods come from an IVF index of the pool (serving.retrieval, approximate: 1,024 lists, 32
probed, the vectors stored as float16, so the cosines are float16's to ~1e-4) and the union over the user's
anchors is scored by them: with an exact search the union holds the exact top n (a good's score is its best
anchor's cosine, and each anchor's own top n bound the rest)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from serving.foryou.context import DAY, ForYouContext
from serving.foryou.sources.base import Candidates, batches

if TYPE_CHECKING:
    from serving.retrieval import GoodIndex

# Fresh goods compared with every anchor; a larger pool is searched through an index.
FRESH_EXACT_POOL = 50_000
# The pool's index above FRESH_EXACT_POOL ("exact" gives the exact top n through the same union). Its vectors
# as float16: at 10x the ~158,000 anchor searches of a run were ~23% of For You's per-user work, each bound by
# reading its 32 lists; float16 halves those reads (0.57 -> 0.37 ms a search on the 10x demo's 90,752 fresh
# goods, recall@200 against exact 0.9999 -> 0.9998; the scores move by float16's rounding, ~1e-4).
FRESH_INDEX = "ivf_fp16"
IVF_NLIST = 1024
IVF_NPROBE = 32


class Fresh:
    name = "fresh"

    def candidates(self, ctx: ForYouContext, users: np.ndarray, n: int) -> Candidates:
        a, cfg = ctx.arrays, ctx.cfg
        users = np.asarray(users, dtype=np.int64)
        pool = fresh_pool(ctx)
        goods = np.full((len(users), n), -1, np.int64)
        scores = np.full((len(users), n), -np.inf, np.float32)
        via = np.full((len(users), n), -1, np.int64)
        if len(pool) == 0:
            return Candidates(self.name, users, goods, scores, via)
        anchors = ctx.newest_saves(users, cfg.fresh_anchors)  # [n, m]
        if len(pool) > FRESH_EXACT_POOL:
            _searched(ctx, users, anchors, pool, n, goods, scores, via)
            return Candidates(self.name, users, goods, scores, via)
        pool_vecs = a.content[pool]  # [P, d]
        for start, chunk in batches(users, 64):
            anc = anchors[start : start + len(chunk)]
            v = a.content[np.maximum(anc, 0)]  # [b, m, d]
            b, m, d = v.shape
            sim = (v.reshape(b * m, d) @ pool_vecs.T).reshape(b, m, len(pool))
            sim[anc < 0] = -np.inf
            best_anchor = sim.argmax(axis=1)  # [b, P]
            s = sim.max(axis=1)  # [b, P]
            ex = ctx.exclude[chunk][:, pool].toarray()
            s[ex] = -np.inf
            k = min(n, len(pool))
            part = (
                np.argpartition(-s, k - 1, axis=1)[:, :k]
                if k < len(pool)
                else np.broadcast_to(np.arange(len(pool)), s.shape)
            )
            ps = np.take_along_axis(s, part, axis=1)
            order = np.argsort(-ps, axis=1, kind="stable")
            part = np.take_along_axis(part, order, axis=1)
            ps = np.take_along_axis(ps, order, axis=1)
            ok = np.isfinite(ps) & (ps > 0)
            rows = slice(start, start + len(chunk))
            goods[rows, :k] = np.where(ok, pool[part], -1)
            scores[rows, :k] = np.where(ok, ps, -np.inf)
            va = np.take_along_axis(anc, np.take_along_axis(best_anchor, part, axis=1), axis=1)
            via[rows, :k] = np.where(ok, va, -1)
        return Candidates(self.name, users, goods, scores, via)


def fresh_pool(ctx: ForYouContext) -> np.ndarray:
    """int64 [P]: the pickable goods created in the last fresh_days with at most fresh_max_saves saves."""

    def make() -> np.ndarray:
        a, cfg = ctx.arrays, ctx.cfg
        fresh = ctx.pickable() & (a.created_at >= a.as_of - cfg.fresh_days * DAY)
        fresh &= a.popularity() <= cfg.fresh_max_saves
        return np.flatnonzero(fresh)

    return ctx.memo("fresh_pool", make)  # type: ignore[no-any-return]


def _pool_index(ctx: ForYouContext, pool: np.ndarray) -> GoodIndex:
    from serving.retrieval import build_index

    def make() -> GoodIndex:
        vecs = np.asarray(ctx.arrays.content[pool], dtype=np.float32)
        return build_index(vecs, pool, FRESH_INDEX, nlist=IVF_NLIST, nprobe=IVF_NPROBE, seed=ctx.cfg.seed)

    return ctx.memo("fresh_index", make)  # type: ignore[no-any-return]


def _searched(
    ctx: ForYouContext,
    users: np.ndarray,
    anchors: np.ndarray,
    pool: np.ndarray,
    n: int,
    goods: np.ndarray,
    scores: np.ndarray,
    via: np.ndarray,
) -> None:
    """Fill goods / scores / via [len(users), n] from each anchor's nearest fresh goods (the pool's index),
    the union over the user's anchors scored by the best cosine an anchor found it at (best first, ties
    lowest good_idx; via the first such anchor)."""
    import scipy.sparse as sp

    from serving.retrieval import retrieve

    content = ctx.arrays.content
    index = _pool_index(ctx, pool)
    m = anchors.shape[1]
    for start, chunk in batches(users, 256):
        anc = anchors[start : start + len(chunk)]  # [b, m]
        b = len(chunk)
        has = anc >= 0
        q_row = np.repeat(np.arange(b), m)[has.ravel()]
        queries = np.asarray(content[anc[has]], dtype=np.float32)
        ex = sp.csr_matrix(ctx.exclude[chunk], dtype=bool)[q_row]
        found, sim = retrieve(index, queries, ex, n)  # [q, n] per anchor
        slot = np.flatnonzero(has.ravel()) % m  # each query's anchor slot
        r = np.repeat(q_row, n)
        g, s = found.ravel(), sim.ravel()
        best = np.repeat(slot, n)
        keep = (g >= 0) & np.isfinite(s) & (s > 0)
        r, g, s, best = r[keep].astype(np.int64), g[keep], s[keep], best[keep]
        # A good's score is its best cosine among the anchors that found it: an anchor that did not find it
        # has n other goods at least as close, so only goods outside the top n can score too low this way.
        order = np.lexsort((best, -s, g, r))
        r, g, s, best = r[order], g[order], s[order], best[order]
        first = np.ones(len(r), bool)
        first[1:] = (r[1:] != r[:-1]) | (g[1:] != g[:-1])
        r, g, s, best = r[first], g[first], s[first], best[first]
        order = np.lexsort((g, -s, r))
        r, g, s, best = r[order], g[order], s[order], best[order]
        place = np.arange(len(r)) - np.searchsorted(r, r, side="left")
        sel = place < n
        rows = start + r[sel]
        goods[rows, place[sel]] = g[sel]
        scores[rows, place[sel]] = s[sel]
        via[rows, place[sel]] = anc[r[sel], best[sel]]
