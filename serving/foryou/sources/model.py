"""The graph model's embeddings (injected by the app): goods with the largest inner product with the user."""

from __future__ import annotations

import numpy as np

from serving.foryou.context import ForYouContext
from serving.foryou.sources.base import DenseSource


class Model(DenseSource):
    name = "model"

    def block(self, ctx: ForYouContext, users: np.ndarray) -> np.ndarray:
        mv = ctx.model
        if mv is None:
            raise ValueError("the model source needs the model's vectors; the app passes them in")
        has_vec = ctx.memo("model_has_vec", lambda: np.any(mv.good_vecs != 0, axis=1))
        s = mv.user_vecs[users] @ mv.good_vecs.T
        # Inner products may be negative; shift rows so the positive-score rule keeps every good with a vector.
        s = s - s.min(axis=1, keepdims=True) + 1.0
        s[:, ~has_vec] = -np.inf
        s[~np.any(mv.user_vecs[users] != 0, axis=1)] = -np.inf
        return s.astype(np.float32)
