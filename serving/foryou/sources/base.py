"""The contract every candidate source keeps: users in, scored goods (with what the reason names) out."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from serving.foryou.context import ForYouContext

# Users scored per dense [batch, G] block.
BATCH = 256


@dataclass(frozen=True)
class Candidates:
    """One source's candidates. Row i belongs to user `users[i]`.

    goods: int64 [n, k] good_idx, best first, -1 padded; scores: float32 [n, k], -inf at padding (comparable
    only within one source); via: int64 [n, k] what the reason names (a followee's user_idx for `followees`,
    else an anchor good_idx or -1); interest: int64 [n, k] the user's interest the pick serves, or None."""

    source: str
    users: np.ndarray
    goods: np.ndarray
    scores: np.ndarray
    via: np.ndarray
    interest: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("goods", "scores", "via"):
            a = getattr(self, name)
            if a.ndim != 2 or a.shape[0] != n or a.shape != self.goods.shape:
                raise ValueError(f"{self.source}: Candidates.{name} has shape {a.shape}, goods {self.goods.shape}")


class Source(Protocol):
    name: str

    def candidates(self, ctx: ForYouContext, users: np.ndarray, n: int) -> Candidates: ...


def batches(users: np.ndarray, size: int = BATCH) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(users), size):
        yield start, users[start : start + size]


def top_n(
    ctx: ForYouContext, users: np.ndarray, scores: np.ndarray, n: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best `n` goods per row of dense `scores` [b, G] (modified in place): excluded goods, goods not pickable
    at as_of (and outside `allowed` bool [G]) and non-positive or non-finite scores never count. Goods with
    equal scores come lowest good_idx first, also across the n-th place (`largest_n`).
    Returns (good_idx int64 [b, n'], scores float32 [b, n']) with n' = min(n, G), best first, -1 / -inf padded."""
    ok = ctx.pickable() if allowed is None else ctx.pickable() & allowed
    scores[:, ~ok] = -np.inf
    ex = ctx.exclude[users].tocoo()
    scores[ex.row, ex.col] = -np.inf
    top = float(scores.max()) if scores.size else -np.inf
    if np.isnan(top) or top == np.inf:  # rare: a full pass only when some score is NaN or +inf
        scores[~np.isfinite(scores)] = -np.inf
    part, ps = largest_n(scores, n, floor=0.0)
    ps[~(ps > 0)] = -np.inf  # after the selection: a row with fewer than n positive scores is padded
    order = np.lexsort((part, -ps), axis=1)
    goods = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(ps, order, axis=1).astype(np.float32)
    goods[~np.isfinite(sc)] = -1
    return goods, sc


def largest_n(scores: np.ndarray, n: int, floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Columns and values of the n largest entries of each row of `scores` [b, G] (no NaN), unordered; among
    entries equal to the n-th largest value, the lowest columns (a selection alone picks any of them), so the
    result does not depend on how the n are found: torch's topk when the process has torch loaded (the daily
    job does; about 3x quicker on 2 cores than argpartition, 25x on a column-major block), else numpy's
    argpartition. floor: rows whose n-th largest value is at or below it keep the selection's columns for
    that value (the caller drops such entries: top_n's non-positive scores, the common case of a user with
    fewer than n positive scores, which otherwise cost two passes over the row)."""
    b, g = scores.shape
    n = min(n, g)
    if n == g:
        return np.broadcast_to(np.arange(g), (b, g)).copy(), scores.copy()
    torch = sys.modules.get("torch")
    if torch is not None and scores.dtype == np.float32:
        # A column-major block (GF-CF's and trending's are) is copied row-major first: topk on it as it is,
        # or numpy's path, cost ~25x the copy.
        part = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), n, dim=1, sorted=False).indices.numpy()
    else:
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    ps = np.take_along_axis(scores, part, axis=1)
    nth = ps.min(axis=1)
    fix = (scores == nth[:, None]).sum(axis=1) > (ps == nth[:, None]).sum(axis=1)
    if floor is not None:
        fix &= nth > floor
    for i in np.flatnonzero(fix):  # ties across the n-th place: rare outside integer-valued scores
        row = scores[i]
        above = np.flatnonzero(row > nth[i])
        part[i] = np.concatenate([above, np.flatnonzero(row == nth[i])[: n - len(above)]])
        ps[i] = row[part[i]]
    return part, ps


class DenseSource:
    """A source defined by a dense score block over every good: `block(ctx, users [b]) -> float32 [b, G]`.

    The pipeline asks for the block once per batch of users and reads both the top `n` (the candidates) and
    the scores of every other source's candidates (a feature) from it."""

    name = "dense"

    def block(self, ctx: ForYouContext, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def from_block(self, ctx: ForYouContext, users: np.ndarray, block: np.ndarray, n: int) -> Candidates:
        g, sc = top_n(ctx, users, np.array(block, dtype=np.float32, order="C"), n)  # a row-major copy
        goods = np.full((len(users), n), -1, np.int64)
        scores = np.full((len(users), n), -np.inf, np.float32)
        goods[:, : g.shape[1]] = g
        scores[:, : g.shape[1]] = sc
        return Candidates(self.name, np.asarray(users, np.int64), goods, scores, np.full(goods.shape, -1, np.int64))

    def candidates(self, ctx: ForYouContext, users: np.ndarray, n: int) -> Candidates:
        users = np.asarray(users, dtype=np.int64)
        parts = [self.from_block(ctx, chunk, self.block(ctx, chunk), n) for _, chunk in batches(users)]
        if not parts:
            z = np.zeros((0, n), np.int64)
            return Candidates(self.name, users, z, z.astype(np.float32), z)
        return Candidates(
            self.name,
            users,
            np.concatenate([p.goods for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.via for p in parts]),
        )
