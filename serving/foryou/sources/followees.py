"""What the people the user follows saved lately: score = sum over followees of the save's recency weight.

`via` names the followee with the newest save of the good (the reason: "saved by @them")."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from serving.foryou.context import DAY, ForYouContext
from serving.foryou.sources.base import Candidates, batches, sparse_top_n


def recent_saves(ctx: ForYouContext) -> sp.csr_matrix:
    """float32 csr [U, G]: saves of the last followee_days, valued by recency weight."""

    def make() -> sp.csr_matrix:
        st = ctx.arrays.save_time
        since = ctx.arrays.as_of - ctx.cfg.followee_days * DAY
        w = ctx.recency_weights()
        data = np.where(st.data >= since, w.data, 0.0).astype(np.float32)
        # Copies of the index arrays: eliminate_zeros works in place and must not touch the graph's.
        m = sp.csr_matrix((data, st.indices.copy(), st.indptr.copy()), st.shape)
        m.eliminate_zeros()
        return m

    return ctx.memo("followee_recent", make)


class Followees:
    name = "followees"

    def candidates(self, ctx: ForYouContext, users: np.ndarray, n: int) -> Candidates:
        users = np.asarray(users, dtype=np.int64)
        recent = recent_saves(ctx)
        follows = ctx.arrays.follows
        st = ctx.arrays.save_time
        goods = np.full((len(users), n), -1, np.int64)
        scores = np.full((len(users), n), -np.inf, np.float32)
        via = np.full((len(users), n), -1, np.int64)
        for start, chunk in batches(users):
            g, sc = sparse_top_n(ctx, chunk, follows[chunk] @ recent, n)
            goods[start : start + len(chunk), : g.shape[1]] = g
            scores[start : start + len(chunk), : g.shape[1]] = sc
        # The followee with the newest save of each pick.
        for i, u in enumerate(users.tolist()):
            fol = follows.indices[follows.indptr[u] : follows.indptr[u + 1]]
            row = goods[i]
            ok = row >= 0
            if not len(fol) or not ok.any():
                continue
            t = np.asarray(st[fol][:, row[ok]].todense())  # [followees, picks], 0 where not saved
            best = t.argmax(axis=0)
            via[i, np.flatnonzero(ok)] = np.where(t.max(axis=0) > 0, fol[best], -1)
        return Candidates(self.name, users, goods, scores, via)
