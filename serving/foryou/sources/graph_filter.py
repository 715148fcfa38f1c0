"""The graph filter (training.graph_filter's GF-CF, injected by the app) over the user's saves.

A filter given as a plain ScoreFn is a dense block [b, G] like any DenseSource's. GF-CF comes in its two parts
(context.FactoredScores): a sparse, non-negative linear term over the goods co-saved with the user's saves and
an inner product of a user vector with good vectors. Its top N are then found without a [b, G] block:

- the inner product's top N (I) by a search over the good vectors (serving.retrieval), excluded and unpickable
  goods removed; let t be the N-th of those inner products;
- every good outside I and outside the co-saved set C scores its inner product alone, at most t, and every
  good in I scores at least t (the linear term is >= 0): so the top N of C u I, scored exactly, are the top N;
- of C only the goods whose linear score plus t reaches the N-th best exact score in I can make it.

Most users need no search at all (FactoredBlock._bounded): where the co-saved term dominates, the N-th best
lower bound over C (linear score minus |u| |v_g|) already beats the inner product of every good but the few with
the longest vectors, so C's survivors and those few goods, scored exactly, hold the exact top N. At 10x (256
users, 2.4M co-saved pairs) it settled 235 of 256 users, every one with the exact list, and the batch's top N
took 0.51 s instead of 1.34 s; the bound and the search then agree on 99.99% of the picks.

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
from serving.foryou.sources.base import (
    Candidates,
    DenseSource,
    csr_values,
    pair_dots,
    pairs_top_n,
    row_nth_largest,
)

if TYPE_CHECKING:
    from serving.retrieval import GoodIndex

# foryou.graph_filter_search "auto": exact search up to this many goods, IVF above.
GRAPH_FILTER_EXACT_GOODS = 300_000
# The IVF index of the good vectors (as the daily job's 10x retrieval index: 1,024 lists, 32 probed).
IVF_NLIST = 1024
IVF_NPROBE = 32
# Users whose top N the norm bound settles (FactoredBlock._bounded) when at most this many goods' vectors are
# long enough to beat their N-th best co-saved good; the others are searched.
BOUND_MAX_GOODS = 8192
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
        out += pair_dots(self.user_vecs, row, self.good_vecs, good)
        return out

    def top(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(good_idx int64 [b, n], scores float32 [b, n]) best first, -1 / -inf padded: the top n of each user
        by exact score among pickable, not excluded goods with a positive score; ties lowest good_idx first.
        Users the norm bound settles (`_bounded`) get their exact top n; the others the search's (see the module
        docstring)."""
        ctx, b = self.ctx, len(self.users)
        ex = sp.csr_matrix(ctx.exclude[self.users], dtype=bool)
        ex.sum_duplicates()
        settled, r_b, g_b = self._bounded(n, ex)
        r_s, g_s = self._searched(np.flatnonzero(~settled), n, ex)
        rows = np.concatenate([r_b, r_s])
        goods = np.concatenate([g_b, g_s])
        ok = ctx.pickable()[goods]
        rows, goods = rows[ok], goods[ok]
        if len(rows):
            excluded = csr_values(ex, rows, goods)
            rows, goods = rows[~excluded], goods[~excluded]
        key = np.sort(rows * np.int64(ctx.arrays.n_goods) + goods)  # a sort, not np.unique: its hash is slower here
        key = key[np.concatenate([[True], key[1:] != key[:-1]])] if len(key) else key
        rows, goods = key // ctx.arrays.n_goods, key % ctx.arrays.n_goods
        scores = self[rows, goods]
        pos = np.isfinite(scores) & (scores > 0)
        return pairs_top_n(rows[pos], goods[pos], scores[pos], b, n)

    def _bounded(self, n: int, ex: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The users whose top n the Cauchy-Schwarz bound settles without a search, and the (row, good) pairs that
        can make it: (settled bool [b], rows int64 [M], goods int64 [M]).

        |u . v_g| <= |u| |v_g|, so a co-saved good scores at least lin - |u| |v_g|; let F be a user's n-th best
        such lower bound over the pickable, not excluded co-saved goods. Then a co-saved good whose upper bound
        lin + |u| |v_g| falls below F cannot make the top n, nor can a good outside the co-saved set whose
        |u| |v_g| falls below F. When F > 0 and at most BOUND_MAX_GOODS goods have a vector that long (or the
        user's vector is zero: the linear term alone), the pairs left are scored exactly."""
        ctx, b = self.ctx, len(self.users)
        lin = self.linear
        row = np.repeat(np.arange(b, dtype=np.int64), np.diff(lin.indptr))
        col = lin.indices.astype(np.int64)
        valid = ctx.pickable()[col]
        if len(row):
            valid &= ~csr_values(ex, row, col)
        u_norm = np.linalg.norm(self.user_vecs, axis=1).astype(np.float64)
        g_norm, by_norm, sorted_norm = good_norms(ctx, self.good_vecs)
        reach = u_norm[row] * g_norm[col] * (1.0 + SLACK) + 1e-12
        low = np.where(valid, lin.data - reach, -np.inf)
        # Invalid pairs are -inf there, so a row's n-th largest is over its valid ones when it has n of them.
        count = np.bincount(row[valid], minlength=b)
        floor = row_nth_largest(low, lin.indptr, n, np.flatnonzero(count >= n) if n > 0 else np.zeros(0, np.int64))
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(u_norm > 0, floor * (1.0 - SLACK) / u_norm, np.inf)
        longer = np.searchsorted(-sorted_norm, -need, side="right")  # goods with |v_g| >= need
        settled = (u_norm == 0) | ((floor > 0) & (longer <= BOUND_MAX_GOODS))
        keep = valid & settled[row] & (lin.data + reach >= floor[row])
        extra = np.where(settled & (u_norm > 0), longer, 0)
        r_x = np.repeat(np.arange(b, dtype=np.int64), extra)
        g_x = by_norm[np.arange(len(r_x)) - np.repeat(np.cumsum(extra) - extra, extra)]
        return settled, np.concatenate([row[keep], r_x]), np.concatenate([col[keep], g_x])

    def _searched(self, sub: np.ndarray, n: int, ex: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """The pairs that can make the top n of rows `sub`, from the inner product's top n (I) by the search and
        the co-saved goods that could still beat I's n-th best exact score (the module docstring)."""
        from serving.retrieval import retrieve

        ctx = self.ctx
        if not len(sub):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        index = search_index(ctx, self.good_vecs)
        ideal, ideal_score = retrieve(index, self.user_vecs[sub], ex[sub], n)
        have = ideal >= 0
        # The n-th inner product of the search (-inf when it found fewer: then every indexed good is in I).
        full = have.sum(axis=1) >= n
        t = np.where(full, ideal_score[:, n - 1] if n else -np.inf, -np.inf)
        r_i, c_i = np.nonzero(have)
        g_i = ideal[r_i, c_i]
        s_i = self[sub[r_i], g_i]
        # The n-th best exact score in I, per user (a lower bound on the n-th best overall).
        best = np.full((len(sub), max(n, 1)), np.inf, np.float32)
        best[r_i, c_i] = s_i
        floor = np.where(full, best.min(axis=1), -np.inf)
        # Co-saved goods that could still reach it: outside I their inner product is at most t. A user for whom
        # the search found fewer than n keeps all of them (with the exact search I then holds them already).
        at = np.full(len(self.users), -1, np.int64)
        at[sub] = np.arange(len(sub))
        lin = self.linear.tocoo()
        mine = at[lin.row] >= 0
        lr, lc, lv = at[lin.row[mine]], lin.col[mine].astype(np.int64), lin.data[mine]
        slack = SLACK * (np.abs(floor) + np.abs(np.where(full, t, 0.0)) + 1e-12)
        reach = lv + np.where(full, t, 0.0)[lr] >= np.where(full, floor - slack, -np.inf)[lr]
        return np.concatenate([sub[r_i], sub[lr[reach]]]), np.concatenate([g_i, lc[reach]])


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


def good_norms(ctx: ForYouContext, good_vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(|v_g| float64 [G], good_idx int64 [G] longest vector first, their lengths descending), once per
    context."""

    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        norm = np.linalg.norm(good_vecs, axis=1).astype(np.float64)
        order = np.argsort(-norm, kind="stable")
        return norm, order, norm[order]

    return ctx.memo("graph_filter_good_norms", make)  # type: ignore[no-any-return]


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
