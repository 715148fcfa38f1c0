"""Co-save neighbours of the user's recent saves: goods saved by the same people, recency weighted.

score(u, g) = sum_i w_ui * cooc(i, g) / sqrt(pop_i * pop_g), where cooc counts users who saved both (each user
weighted 1 / their saves, so heavy savers do not dominate) and w_ui = 0.5 ** (age of u's save of i / half-life).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from serving.foryou.context import ForYouContext
from serving.foryou.sources.base import DenseSource


def _parts(ctx: ForYouContext) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
    """(S D^-1/2 csr [U, G], S^T csr [G, U], 1/saves per user [U], 1/sqrt(pop) [G]), memoised."""

    def make() -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
        s = sp.csr_matrix(ctx.arrays.saves, dtype=np.float32)
        pop = np.asarray(s.sum(axis=0)).ravel()
        dg = np.divide(1.0, np.sqrt(pop), out=np.zeros_like(pop), where=pop > 0).astype(np.float32)
        du = np.asarray(s.sum(axis=1)).ravel()
        du_inv = np.divide(1.0, du, out=np.zeros_like(du), where=du > 0).astype(np.float32)
        return sp.csr_matrix(s @ sp.diags(dg)), sp.csr_matrix(s.T), du_inv, dg

    return ctx.memo("cosave_parts", make)


def cosave_scores(ctx: ForYouContext, users: np.ndarray) -> sp.csr_matrix:
    """float32 csr [b, G] co-save scores of `users` (zero, so absent, outside the goods co-saved with theirs)."""
    right, s_t, du_inv, dg = _parts(ctx)
    seeds = sp.csr_matrix(ctx.recency_weights()[users] @ sp.diags(dg))  # [b, G]
    via_users = sp.csr_matrix((seeds @ s_t) @ sp.diags(du_inv))  # [b, U]
    return sp.csr_matrix(via_users @ right, dtype=np.float32)


class CoSave(DenseSource):
    name = "cosave"

    def block(self, ctx: ForYouContext, users: np.ndarray) -> sp.csr_matrix:
        return cosave_scores(ctx, users)
