"""The union of every source's candidates, and the features of each (user, good) pair the ranker scores.

Features use only `ctx.arrays` (the graph as of ctx.arrays.as_of), so a context built on
`arrays.as_of_time(cut)` gives features from before the cut alone (tests/serving/foryou/test_leakage.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from graphrec.core.threads import library_threads
from serving.foryou.context import DAY, ForYouContext
from serving.foryou.sources.base import Candidates, DenseSource, Source, pair_dots, pair_values

# Features that do not depend on which sources run, in column order after the per-source ones.
PAIR_FEATURES = (
    "n_sources",
    "pop_all",
    "pop_7d",
    "pop_30d",
    "age_days",
    "domain_share",
    "cluster_share",
    "followees_saved",
    "collection_cooc",
    "clip_max",
    "clip_mean",
    "model_cos",
    "user_saves",
    "interest_share",
    "n_interests",
)
# Newest saves whose CLIP vectors clip_max compares with.
CLIP_ANCHORS = 20


def feature_names(source_names: Sequence[str]) -> tuple[str, ...]:
    per_source = tuple(f"{s}_{what}" for s in source_names for what in ("score", "rank"))
    return per_source + PAIR_FEATURES


@dataclass(frozen=True)
class CandidateSet:
    """One row per distinct (user, good) any source proposed, grouped by user in `users` order.

    row: int64 [N] position in `users`; good: int64 [N]; group: int64 [len(users)] rows per user (0 for a user
    without candidates); source_score / source_rank: float32 [N, S] (NaN where source s did not propose the
    pair; rank 1 is its best); via: int64 [N, S]; interest: int64 [N] the slot of the user's interest the pair
    serves (from union: the one a source names; from candidate_batch: candidate_interest's), -1 none."""

    users: np.ndarray
    sources: tuple[str, ...]
    row: np.ndarray
    good: np.ndarray
    group: np.ndarray
    source_score: np.ndarray
    source_rank: np.ndarray
    via: np.ndarray
    interest: np.ndarray

    def __len__(self) -> int:
        return len(self.row)


def union(users: np.ndarray, cands: Sequence[Candidates], n_goods: int) -> CandidateSet:
    """Merge the sources' candidates for `users` (each Candidates' rows must be `users`, in order)."""
    users = np.asarray(users, dtype=np.int64)
    keys, src, pos = [], [], []
    for s, c in enumerate(cands):
        if len(c.users) != len(users) or not np.array_equal(c.users, users):
            raise ValueError(f"source {c.source} answered for other users than asked")
        r, j = np.nonzero(c.goods >= 0)
        keys.append(r.astype(np.int64) * n_goods + c.goods[r, j])
        src.append(np.full(len(r), s, np.int64))
        pos.append(np.stack([r, j], axis=1))
    all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    uniq, inv = np.unique(all_keys, return_inverse=True)
    n, n_src = len(uniq), len(cands)
    score = np.full((n, n_src), np.nan, np.float32)
    rank = np.full((n, n_src), np.nan, np.float32)
    via = np.full((n, n_src), -1, np.int64)
    interest = np.full(n, -1, np.int64)
    start = 0
    for s, c in enumerate(cands):
        r, j = pos[s][:, 0], pos[s][:, 1]
        at = inv[start : start + len(r)]
        start += len(r)
        score[at, s] = c.scores[r, j]
        rank[at, s] = j + 1
        via[at, s] = c.via[r, j]
        if c.interest is not None:
            named = c.interest[r, j] >= 0
            interest[at[named]] = c.interest[r, j][named]
    row = uniq // n_goods
    return CandidateSet(
        users=users,
        sources=tuple(c.source for c in cands),
        row=row,
        good=uniq % n_goods,
        group=np.bincount(row, minlength=len(users)).astype(np.int64),
        source_score=score,
        source_rank=rank,
        via=via,
        interest=interest,
    )


def candidate_interest(ctx: ForYouContext, cs: CandidateSet) -> np.ndarray:
    """int64 [N]: the slot of the user's interest each candidate serves (serving.foryou.interests), -1 none."""
    from serving.foryou.interests import good_interest, projected_vectors, user_interests

    return good_interest(user_interests(ctx), cs.users[cs.row], cs.good, projected_vectors(ctx), projected=True)


def features(
    ctx: ForYouContext,
    cs: CandidateSet,
    blocks: dict[str, Any] | None = None,
    slot: np.ndarray | None = None,
) -> np.ndarray:
    """float32 [N, len(feature_names(cs.sources))]; NaN is LightGBM's missing value.

    blocks: the dense score blocks [len(users), G] of DenseSources for these users (source name -> block):
    their score feature is then filled for every candidate, not only those the source proposed. slot:
    candidate_interest(ctx, cs) when the caller has it."""
    a = ctx.arrays
    blocks = blocks or {}
    users, row, good = cs.users, cs.row, cs.good
    n = len(cs)
    cols: list[np.ndarray] = []
    for s, name in enumerate(cs.sources):
        sc = cs.source_score[:, s].copy()
        if name in blocks:
            full = pair_values(blocks[name], row, good)
            sc = np.where(np.isfinite(full), full, np.nan).astype(np.float32)
        cols += [sc, cs.source_rank[:, s]]
    cols.append((~np.isnan(cs.source_rank)).sum(axis=1).astype(np.float32))
    pop = ctx.memo("pop_all", a.popularity)
    pop7 = ctx.memo("pop_7d", lambda: a.popularity(since=a.as_of - 7 * DAY))
    pop30 = ctx.memo("pop_30d", lambda: a.popularity(since=a.as_of - 30 * DAY))
    cols += [np.log1p(pop[good]), np.log1p(pop7[good]), np.log1p(pop30[good])]
    cols.append(((a.as_of - a.created_at[good]) / DAY).astype(np.float32))
    dom = a.domain[good]
    dshare = ctx.user_domain_share()[users]
    ds = np.where(dom >= 0, pair_values(dshare, row, np.maximum(dom, 0)), np.nan)
    cols.append(ds.astype(np.float32))
    cshare = ctx.user_cluster_share()[users]
    cols.append(pair_values(cshare, row, ctx.clusters()[good]))
    # Followees who saved the good (ever, up to as_of).
    fol_saved = sp.csr_matrix(a.follows[users] @ a.saves)
    cols.append(pair_values(fol_saved, row, good))
    # Collections holding the good that also hold one of the user's saves.
    if a.n_collections:
        touched = sp.csr_matrix(a.saves[users] @ a.contains.T)
        touched.data[:] = 1.0
        cooc = sp.csr_matrix(touched @ a.contains)
        cols.append(pair_values(cooc, row, good))
    else:
        cols.append(np.zeros(n, np.float32))
    # CLIP: best cosine to one of the newest saves; cosine to the recency-weighted mean of the saves. One
    # small matrix product per user (gathering [N, d] vectors per anchor costs far more).
    anchors = ctx.newest_saves(users, CLIP_ANCHORS)
    mean = np.asarray(ctx.recency_weights()[users] @ a.content, dtype=np.float32)
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    best = np.full(n, np.nan, np.float32)
    to_mean = np.full(n, np.nan, np.float32)
    bounds = np.concatenate([[0], np.cumsum(cs.group)])
    for i in range(len(users)):
        lo, hi = bounds[i], bounds[i + 1]
        if hi == lo:
            continue
        gv = a.content[good[lo:hi]]
        anc = anchors[i][anchors[i] >= 0]
        if len(anc):
            best[lo:hi] = (gv @ a.content[anc].T).max(axis=1)
        to_mean[lo:hi] = gv @ mean[i]
    cols += [best, to_mean]
    if ctx.model is not None:
        mv = ctx.model
        cols.append(pair_dots(mv.user_vecs, users[row], mv.good_vecs, good))
    else:
        cols.append(np.full(n, np.nan, np.float32))
    cols.append(np.log1p(a.saves_per_user()[users][row]).astype(np.float32))
    # The weight of the user's interest the good falls in (serving.foryou.interests; 0 when it serves none).
    from serving.foryou.interests import rows_of, user_interests

    ui = user_interests(ctx)
    slot = candidate_interest(ctx, cs) if slot is None else slot
    urow = rows_of(ui, users)[row]
    has = (slot >= 0) & (urow >= 0)
    share = np.zeros(n, np.float32)
    share[has] = ui.weight[urow[has], slot[has]]
    cols.append(share)
    cols.append(np.where(urow >= 0, ui.count[np.maximum(urow, 0)], 0).astype(np.float32))
    return np.stack(cols, axis=1).astype(np.float32) if n else np.zeros((0, len(cols)), np.float32)


def candidate_batch(
    ctx: ForYouContext, users: np.ndarray, sources: Sequence[Source], n: int, *, parallel: bool = False
) -> tuple[CandidateSet, np.ndarray]:
    """Every source's candidates for `users` (one batch), their union (its `interest`: the slot of the user's
    interest each candidate serves, candidate_interest) and its feature matrix.

    Every numeric library runs on one thread here, as in For You's forked workers: OpenBLAS's sgemm rounds
    differently on 1 and 2 threads on some CPUs (an AMD EPYC with the Haswell kernels: up to 6e-5 on a
    [300, 512] x [512, 20000] product), so a batch's scores are then the same bits wherever it runs.

    parallel: the sources (and the users' interests, which the union's slots need) each on a thread of their
    own. For a run's first batch, which builds the context's memoised views (interests, search indexes, ...):
    they then build side by side on both cores instead of one after another. The candidates and features are
    the same either way."""

    def one(src: Source) -> tuple[Any, Candidates]:
        if isinstance(src, DenseSource):
            b = src.block(ctx, users)
            return b, src.from_block(ctx, users, b, n)
        return None, src.candidates(ctx, users, n)

    with library_threads(1):
        if parallel:
            from concurrent.futures import ThreadPoolExecutor

            from serving.foryou.interests import projected_vectors

            # A thread per task, so a source waiting for a view another thread builds never holds up one that
            # could run; the library pools of one thread each keep the cores from being oversubscribed.
            with ThreadPoolExecutor(len(sources) + 1) as pool:
                views = pool.submit(projected_vectors, ctx)
                done = list(pool.map(one, sources))
                views.result()
        else:
            done = [one(src) for src in sources]
        cands = [c for _, c in done]
        blocks = {src.name: b for src, (b, _) in zip(sources, done, strict=True) if b is not None}
        cs = union(users, cands, ctx.arrays.n_goods)
        cs = dataclasses.replace(cs, interest=candidate_interest(ctx, cs))
        return cs, features(ctx, cs, blocks, cs.interest)
