"""Fresh goods: created in the last fresh_days with at most fresh_max_saves saves, closest by CLIP to one of
the user's newest saves (the score is that cosine; `via` names that save, the reason's anchor)."""

from __future__ import annotations

import numpy as np

from serving.foryou.context import DAY, ForYouContext
from serving.foryou.sources.base import Candidates, batches


class Fresh:
    name = "fresh"

    def candidates(self, ctx: ForYouContext, users: np.ndarray, n: int) -> Candidates:
        a, cfg = ctx.arrays, ctx.cfg
        users = np.asarray(users, dtype=np.int64)
        fresh = ctx.pickable() & (a.created_at >= a.as_of - cfg.fresh_days * DAY)
        fresh &= a.popularity() <= cfg.fresh_max_saves
        pool = np.flatnonzero(fresh)
        goods = np.full((len(users), n), -1, np.int64)
        scores = np.full((len(users), n), -np.inf, np.float32)
        via = np.full((len(users), n), -1, np.int64)
        if len(pool) == 0:
            return Candidates(self.name, users, goods, scores, via)
        pool_vecs = a.content[pool]  # [P, d]
        anchors = ctx.newest_saves(users, cfg.fresh_anchors)  # [n, m]
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
