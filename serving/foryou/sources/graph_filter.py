"""The graph filter (training.graph_filter's GF-CF, injected by the app) over the user's saves.

A filter given as a plain ScoreFn is a dense block [b, G] like any DenseSource's. GF-CF comes in its two parts
(context.FactoredScores): a sparse, non-negative linear term over the goods co-saved with the user's saves and
an inner product of a user vector with good vectors. Its top N are then found without a [b, G] block:

- the inner product's top N (I) by a search over the good vectors (serving.retrieval), excluded and unpickable
  goods removed; let t be the N-th of those inner products;
- every good outside I and outside the co-saved set C scores its inner product alone, at most t, and every
  good in I scores at least t (the linear term is >= 0): so the top N of C u I, scored exactly, are the top N;
- of C only the goods whose linear score plus t reaches the N-th best exact score in I can make it.

foryou.graph_filter_search: "dense" scores the whole [b, G] block (as before; at the demo scale it is the
cheapest: the block's ideal pass is one BLAS product and torch's topk, where the exact search's blocked product
and numpy selection took 4x as long); "exact" is the above with an exact search: the dense block's top N up to
float rounding and ties at the N-th place (tests/serving/foryou/test_graph_filter_top.py); "ivf" searches an
IVF index, so the inner-product top N is approximate and so is the list (at 10x, 256 users: recall@20 0.9994
and recall@200 0.9933 against "exact"); "auto" (the default) is "dense" up to GRAPH_FILTER_EXACT_GOODS goods
and "ivf" above, so the demo's lists do not move.
The scores of other sources' candidates (the ranker's graph_filter_score feature) are computed pair by pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from serving.foryou.context import FactoredScores, ForYouContext
from serving.foryou.sources.base import Candidates, DenseSource, csr_values, pairs_top_n

if TYPE_CHECKING:
    from serving.retrieval import GoodIndex

# foryou.graph_filter_search "auto": exact search up to this many goods, IVF above.
GRAPH_FILTER_EXACT_GOODS = 300_000
# The IVF index of the good vectors (as the daily job's 10x retrieval index: 1,024 lists, 32 probed).
IVF_NLIST = 1024
IVF_NPROBE = 32
# Relative slack on the bound (the search's inner products and the exact scores round differently).
SLACK = 1e-5


class FactoredBlock:
    """GF-CF's scores of a batch of users in parts: ``block[row, good]`` -> float32 [N] exact scores of the
    pairs (row: position in `users`), as a dense block's fancy indexing gives."""

    def __init__(self, ctx: ForYouContext, scores: FactoredScores, users: np.ndarray) -> None:
        self.ctx = ctx
        self.users = np.asarray(users, dtype=np.int64)
        self.linear = sp.csr_matrix(scores.linear(self.users), dtype=np.float32)
        self.linear.sum_duplicates()
        self.user_vecs = np.ascontiguousarray(scores.user_factors(self.users), dtype=np.float32)
        self.good_vecs = ctx.memo("graph_filter_good_factors", scores.good_factors)

    def __getitem__(self, key: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        row, good = (np.asarray(k, dtype=np.int64) for k in key)
        out = csr_values(self.linear, row, good).astype(np.float32)
        step = 65_536  # pairs per gather of [step, k] good vectors
        for lo in range(0, len(row), step):
            r, g = row[lo : lo + step], good[lo : lo + step]
            out[lo : lo + step] += np.einsum("nk,nk->n", self.user_vecs[r], self.good_vecs[g])
        return out

    def top(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(good_idx int64 [b, n], scores float32 [b, n]) best first, -1 / -inf padded: the top n of each user
        by exact score among pickable, not excluded goods with a positive score; ties lowest good_idx first."""
        from serving.retrieval import retrieve

        ctx, b = self.ctx, len(self.users)
        index = search_index(ctx, self.good_vecs)
        ex = sp.csr_matrix(ctx.exclude[self.users], dtype=bool)
        ex.sum_duplicates()
        ideal, ideal_score = retrieve(index, self.user_vecs, ex, n)
        have = ideal >= 0
        # The n-th inner product of the search (-inf when it found fewer: then every indexed good is in I).
        full = have.sum(axis=1) >= n
        t = np.where(full, ideal_score[:, n - 1] if n else -np.inf, -np.inf)
        r_i, c_i = np.nonzero(have)
        g_i = ideal[r_i, c_i]
        s_i = self[r_i, g_i]
        # The n-th best exact score in I, per user (a lower bound on the n-th best overall).
        best = np.full((b, max(n, 1)), np.inf, np.float32)
        best[r_i, c_i] = s_i
        floor = np.where(full, best.min(axis=1), -np.inf)
        # Co-saved goods that could still reach it: outside I their inner product is at most t. A user for whom
        # the search found fewer than n keeps all of them (with the exact search I then holds them already).
        lin = self.linear.tocoo()
        slack = SLACK * (np.abs(floor) + np.abs(np.where(full, t, 0.0)) + 1e-12)
        reach = lin.data + np.where(full, t, 0.0)[lin.row] >= np.where(full, floor - slack, -np.inf)[lin.row]
        r_c, g_c = lin.row[reach].astype(np.int64), lin.col[reach].astype(np.int64)
        ok = ctx.pickable()[g_c]
        r_c, g_c = r_c[ok], g_c[ok]
        if len(r_c):
            excluded = csr_values(ex, r_c, g_c)
            r_c, g_c = r_c[~excluded], g_c[~excluded]
        rows = np.concatenate([r_i.astype(np.int64), r_c])
        goods = np.concatenate([g_i, g_c])
        key = np.unique(rows * np.int64(ctx.arrays.n_goods) + goods)
        rows, goods = key // ctx.arrays.n_goods, key % ctx.arrays.n_goods
        scores = self[rows, goods]
        pos = np.isfinite(scores) & (scores > 0)
        return pairs_top_n(rows[pos], goods[pos], scores[pos], b, n)


def search_kind(ctx: ForYouContext) -> str:
    """foryou.graph_filter_search as run: "dense", "exact" or "ivf" ("auto": dense up to
    GRAPH_FILTER_EXACT_GOODS goods, where the [b, G] block is cheap, ivf above)."""
    kind = ctx.cfg.graph_filter_search
    if kind == "auto":
        return "dense" if ctx.arrays.n_goods <= GRAPH_FILTER_EXACT_GOODS else "ivf"
    if kind not in ("dense", "exact", "ivf"):
        raise ValueError(f"foryou.graph_filter_search must be 'auto', 'dense', 'exact' or 'ivf', got {kind!r}")
    return kind


def index_row(ctx: ForYouContext, good_vecs: np.ndarray) -> np.ndarray:
    """int64 [G]: each good's row in the search index, -1 for goods not in it (not pickable, or nobody saved
    them: a zero vector and no linear score, so never a positive score)."""

    def make() -> np.ndarray:
        inside = ctx.pickable() & np.any(good_vecs != 0, axis=1)
        out = np.full(len(inside), -1, np.int64)
        out[inside] = np.arange(int(inside.sum()))
        return out

    return ctx.memo("graph_filter_index_row", make)


def search_index(ctx: ForYouContext, good_vecs: np.ndarray) -> GoodIndex:
    """The good vectors' search index (serving.retrieval.GoodIndex), built once per context."""
    from serving.retrieval import build_index

    def make() -> GoodIndex:
        goods = np.flatnonzero(index_row(ctx, good_vecs) >= 0)
        return build_index(
            good_vecs[goods], goods, search_kind(ctx), nlist=IVF_NLIST, nprobe=IVF_NPROBE, seed=ctx.cfg.seed
        )

    return ctx.memo("graph_filter_index", make)  # type: ignore[no-any-return]


class GraphFilter(DenseSource):
    name = "graph_filter"

    def block(self, ctx: ForYouContext, users: np.ndarray) -> np.ndarray | FactoredBlock:
        if ctx.graph_filter is None:
            raise ValueError("the graph_filter source needs a graph filter; the app passes one in")
        if isinstance(ctx.graph_filter, FactoredScores) and search_kind(ctx) != "dense":
            return FactoredBlock(ctx, ctx.graph_filter, users)
        return np.asarray(ctx.graph_filter(users), dtype=np.float32)

    def from_block(
        self, ctx: ForYouContext, users: np.ndarray, block: np.ndarray | FactoredBlock, n: int
    ) -> Candidates:
        if not isinstance(block, FactoredBlock):
            return super().from_block(ctx, users, block, n)
        goods, scores = block.top(n)
        return Candidates(self.name, np.asarray(users, np.int64), goods, scores, np.full(goods.shape, -1, np.int64))
