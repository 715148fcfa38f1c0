"""Next goods for the user's recent sequence: the sequence model's scores (injected by the app).

The app passes `ctx.sequence`, a callable user_idx int64 [b] -> float32 [b, G]: how likely each good is
the user's next save after their newest saves in `ctx.arrays` (training.models.sasrec.next_good_scorer over
the sequence model's checkpoint; NaN or -inf: no score). Serving never sees the model itself. The reason names
the user's newest save (`via`): "next after <good>".
"""

from __future__ import annotations

import numpy as np

from serving.foryou.context import ForYouContext, ScoreFn
from serving.foryou.sources.base import Candidates, DenseSource


def sequence_fn(ctx: ForYouContext) -> ScoreFn:
    if ctx.sequence is None:
        raise ValueError("the sequence source needs the sequence model's scores; the app passes them in")
    return ctx.sequence


class NextGoods(DenseSource):
    name = "sequence"

    def block(self, ctx: ForYouContext, users: np.ndarray) -> np.ndarray:
        """float32 [b, G]: the model's scores shifted so each user's lowest finite score is 1 (the shared
        top_n keeps positive scores only, and a dot product may be negative); users without saves get -inf."""
        users = np.asarray(users, dtype=np.int64)
        s = np.array(sequence_fn(ctx)(users), dtype=np.float32, copy=True)
        if s.shape != (len(users), ctx.arrays.n_goods):
            raise ValueError(f"sequence scores have shape {s.shape}, expected {(len(users), ctx.arrays.n_goods)}")
        finite = np.isfinite(s)
        low = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
        s = np.where(finite, s - np.where(np.isfinite(low), low, 0.0) + 1.0, -np.inf).astype(np.float32)
        s[np.diff(ctx.arrays.save_time.indptr)[users] == 0] = -np.inf
        return s

    def from_block(self, ctx: ForYouContext, users: np.ndarray, block: np.ndarray, n: int) -> Candidates:
        c = super().from_block(ctx, users, block, n)
        newest = ctx.newest_saves(np.asarray(users, dtype=np.int64), 1)[:, :1]
        via = np.where(c.goods >= 0, newest, -1)
        return Candidates(c.source, c.users, c.goods, c.scores, via)
