"""For You lists: every source's candidates -> their union -> features -> the ranker (or, without one, a
reciprocal-rank fusion of the sources' ranks) -> calibration to the user's interests inside the domain cap,
then MMR (calibrate.final_list) -> a popularity top-up.

The same function serves `graphrec recommend` (the graph as of now) and the evaluate row `for_you` (the graph
as of the split time): the app builds the context and calls `for_you`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphrec.core.threads import library_threads, set_library_threads
from serving.foryou.calibrate import final_list
from serving.foryou.context import DAY, ForYouContext, ScoreFn
from serving.foryou.features import CandidateSet, candidate_batch
from serving.foryou.ranker import BATCH, Ranker, active_sources
from serving.foryou.sources import SOURCE_NAMES, make_source

# A pick's source code is its position here; "popular" is the top-up for users short of candidates.
PICK_SOURCES: tuple[str, ...] = (*SOURCE_NAMES, "popular")
POPULAR = PICK_SOURCES.index("popular")
# Candidates per user handed to the re-rank (best by ranker score).
RERANK_POOL = 100
# Reciprocal-rank fusion constant (Cormack et al. 2009).
RRF_K = 60.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForYouLists:
    """Row i belongs to user `users[i]`. goods int64 [n, k] best first, -1 padded; scores float32 [n, k] (higher
    first); source int8 [n, k] position in PICK_SOURCES of the source that ranked the pick best; via int64 [n, k]
    that source's via (followee user_idx, anchor good_idx or -1); interest int64 [n, k] (-1 none)."""

    users: np.ndarray
    goods: np.ndarray
    scores: np.ndarray
    source: np.ndarray
    via: np.ndarray
    interest: np.ndarray

    def source_counts(self) -> dict[str, int]:
        ok = self.goods >= 0
        counts = np.bincount(self.source[ok].astype(np.int64), minlength=len(PICK_SOURCES))
        return {name: int(c) for name, c in zip(PICK_SOURCES, counts, strict=True)}


def fusion_scores(cs: CandidateSet) -> np.ndarray:
    """float32 [N]: sum over the sources proposing a pair of 1 / (RRF_K + rank)."""
    return np.nansum(1.0 / (RRF_K + cs.source_rank), axis=1).astype(np.float32)


def _best_source(cs: CandidateSet) -> tuple[np.ndarray, np.ndarray]:
    """(PICK_SOURCES code [N], via [N]) of the source ranking each pair best."""
    rank = np.where(np.isnan(cs.source_rank), np.inf, cs.source_rank)
    j = rank.argmin(axis=1)
    codes = np.array([PICK_SOURCES.index(s) for s in cs.sources], dtype=np.int8)
    return codes[j], cs.via[np.arange(len(cs)), j]


def for_you(
    ctx: ForYouContext,
    users: np.ndarray,
    k: int,
    ranker: Ranker | None = None,
    threads: int = 1,
    *,
    workers: int | None = None,
    batch: int = BATCH,
) -> ForYouLists:
    """The top `k` For You picks of `users` (user_idx) as of ctx.arrays.as_of.

    workers: processes the batches are split over (default cfg.workers). Above 1, the first batch runs here
    (it builds the context's memoised views: interests, clusters, indexes; its sources on threads of their
    own, so the views build side by side), then the rest are handed out
    to forked workers that inherit the context, each with one thread for BLAS, torch,
    FAISS and the ranker; the lists are the same as in one process (tests/serving/foryou/test_workers.py)."""
    cfg = ctx.cfg
    users = np.asarray(users, dtype=np.int64)
    names = ranker.sources if ranker is not None else active_sources(ctx, cfg.sources)
    missing = set(active_sources(ctx, names)) ^ set(names)
    if missing:
        raise ValueError(f"the ranker was trained with source(s) {', '.join(sorted(missing))}, which this run lacks")
    sources = [make_source(s) for s in names]
    n = len(users)
    out = _empty_lists(users, k)
    workers = cfg.workers if workers is None else workers
    if workers < 1:
        raise ValueError(f"foryou.workers must be at least 1, got {workers}")
    starts = list(range(0, n, batch))
    if workers > 1 and len(starts) > 1 and "fork" in mp.get_all_start_methods():
        started = time.perf_counter()
        _fill(out, 0, _batch_lists(ctx, users[:batch], k, ranker, threads, sources, parallel=True))
        first_s = round(time.perf_counter() - started, 2)
        log.info(
            "for_you: first batch, with the context's views, %.1f s in one process",
            first_s,
            extra={"for_you_first_batch_s": first_s},
        )
        global _FORKED
        _FORKED = (ctx, users, k, ranker, sources, batch)
        try:
            # Batches handed out two at a time as workers free up: a share of heavy users does not leave one
            # worker running alone at the end. Each batch's lists go to its own rows, so the order they come
            # back in changes nothing.
            with mp.get_context("fork").Pool(
                min(workers, len(starts) - 1), initializer=set_library_threads, initargs=(1,)
            ) as pool:
                for start, part in pool.imap_unordered(_batch_at, starts[1:], chunksize=2):
                    _fill(out, start, part)
        finally:
            _FORKED = None
    else:
        for start in starts:
            _fill(out, start, _batch_lists(ctx, users[start : start + batch], k, ranker, threads, sources))
    _top_up(ctx, users, out.goods, out.scores)
    return out


# What forked workers read (set by for_you just before it forks; they inherit it).
_FORKED: tuple[Any, ...] | None = None


def _batch_at(start: int) -> tuple[int, ForYouLists]:
    assert _FORKED is not None
    ctx, users, k, ranker, sources, batch = _FORKED
    return start, _batch_lists(ctx, users[start : start + batch], k, ranker, 1, sources)


def _empty_lists(users: np.ndarray, k: int) -> ForYouLists:
    n = len(users)
    return ForYouLists(
        users,
        np.full((n, k), -1, np.int64),
        np.full((n, k), -np.inf, np.float32),
        np.full((n, k), POPULAR, np.int8),
        np.full((n, k), -1, np.int64),
        np.full((n, k), -1, np.int64),
    )


def _fill(out: ForYouLists, start: int, part: ForYouLists) -> None:
    rows = slice(start, start + len(part.users))
    for name in ("goods", "scores", "source", "via", "interest"):
        getattr(out, name)[rows] = getattr(part, name)


def _batch_lists(
    ctx: ForYouContext,
    chunk: np.ndarray,
    k: int,
    ranker: Ranker | None,
    threads: int,
    sources: list[Any],
    parallel: bool = False,
) -> ForYouLists:
    """One batch's lists, before the popularity top-up (parallel: see features.candidate_batch), with every
    numeric library on one thread, as in a forked worker: the same bits in one process and in workers."""
    with library_threads(1):
        a = ctx.arrays
        out = _empty_lists(chunk, k)
        cs, x = candidate_batch(ctx, chunk, sources, ctx.cfg.per_source, parallel=parallel)
        score = ranker.predict(x, threads) if ranker is not None else fusion_scores(cs)
        src, via = _best_source(cs)
        b = len(chunk)
        cand, cand_score, cand_slot = rerank_pool(cs, score, b, RERANK_POOL, ctx.cfg.interest_pool)
        # Calibrated to the user's interest mix inside the domain cap, then MMR (serving.foryou.calibrate).
        picked, picked_interest = final_list(ctx, chunk, cand, cand_score, k, cand_slot)
        # Look the chosen goods up again for their score, source, via and interest.
        key = cs.row.astype(np.int64) * a.n_goods + cs.good
        sort_key = np.argsort(key)
        want = np.arange(b)[:, None] * a.n_goods + np.maximum(picked, 0)
        at = sort_key[np.searchsorted(key[sort_key], want).clip(0, len(key) - 1)] if len(key) else want * 0
        ok = picked >= 0
        out.goods[:] = picked
        if len(key):
            out.scores[:] = np.where(ok, score[at], -np.inf)
            out.source[:] = np.where(ok, src[at], POPULAR)
            out.via[:] = np.where(ok, via[at], -1)
            out.interest[:] = np.where(ok, picked_interest, -1)
        return out


def rerank_pool(
    cs: CandidateSet, score: np.ndarray, n_users: int, pool: int, per_interest: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user, the `pool` best candidates by score, then each interest's `per_interest` best not among them,
    as padded matrices (goods int64 [n, C], scores float64 [n, C], interest slots int64 [n, C]; best first
    within each part, -1 / -inf padding)."""
    order = np.lexsort((-score, cs.row))
    row_sorted = cs.row[order]
    first = np.searchsorted(row_sorted, np.arange(n_users))
    pos = np.arange(len(order)) - first[row_sorted]
    keep = pos < pool
    if per_interest > 0:
        # Rank within (user, interest) by score: the best per_interest of each interest outside the pool join it.
        slot = cs.interest[order]
        o2 = np.lexsort((pos, slot, row_sorted))
        key = row_sorted[o2] * (int(slot.max(initial=0)) + 2) + slot[o2] + 1
        start = np.searchsorted(key, key, side="left")
        in_slot = np.empty(len(order), np.int64)
        in_slot[o2] = np.arange(len(o2)) - start
        keep |= (slot >= 0) & (in_slot < per_interest)
    r, idx = row_sorted[keep], order[keep]
    width = int(np.bincount(r, minlength=n_users).max(initial=0))
    p = np.arange(len(r)) - np.searchsorted(r, r, side="left")
    cand = np.full((n_users, max(width, pool)), -1, np.int64)
    cand_score = np.full(cand.shape, -np.inf, np.float64)
    cand_slot = np.full(cand.shape, -1, np.int64)
    cand[r, p] = cs.good[idx]
    cand_score[r, p] = score[idx]
    cand_slot[r, p] = cs.interest[idx]
    return cand, cand_score, cand_slot


def _top_up(ctx: ForYouContext, users: np.ndarray, goods: np.ndarray, scores: np.ndarray) -> None:
    """Fill short lists (in place) with the goods most saved in the last week, then of all time."""
    short = np.flatnonzero((goods >= 0).sum(axis=1) < goods.shape[1])
    if not len(short):
        return
    a = ctx.arrays
    recent = a.popularity(since=a.as_of - 7 * DAY)
    total = a.popularity()
    live = ctx.pickable()
    order = np.lexsort((-total, -recent))
    order = order[live[order]][: goods.shape[1] * 4 + int(np.diff(ctx.exclude.indptr).max(initial=0))]
    for i in short.tolist():
        have = goods[i][goods[i] >= 0]
        ex = ctx.exclude.indices[ctx.exclude.indptr[users[i]] : ctx.exclude.indptr[users[i] + 1]]
        fill = order[~np.isin(order, np.concatenate([have, ex]))][: goods.shape[1] - len(have)]
        goods[i, len(have) : len(have) + len(fill)] = fill
        scores[i, len(have) : len(have) + len(fill)] = -1e9 - np.arange(len(fill), dtype=np.float32)


def lists_score_fn(lists: ForYouLists, n_goods: int) -> ScoreFn:
    """Dense scores [b, G] that rank each user's list in its order (-inf off the list), for evaluation."""
    row_of = {int(u): i for i, u in enumerate(lists.users.tolist())}
    k = lists.goods.shape[1]

    def score(users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), n_goods), -np.inf, np.float32)
        for j, u in enumerate(np.asarray(users).tolist()):
            i = row_of.get(int(u))
            if i is None:
                continue
            g = lists.goods[i]
            ok = g >= 0
            out[j, g[ok]] = (k - np.arange(k, dtype=np.float32))[ok]
        return out

    return score
