"""The contract every candidate source keeps: users in, scored goods (with what the reason names) out."""

from __future__ import annotations

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
    at as_of (and outside `allowed` bool [G]) and non-positive or non-finite scores never count."""
    ok = ctx.pickable() if allowed is None else ctx.pickable() & allowed
    scores[:, ~ok] = -np.inf
    ex = ctx.exclude[users].tocoo()
    scores[ex.row, ex.col] = -np.inf
    scores[~np.isfinite(scores) | (scores <= 0)] = -np.inf
    b, g = scores.shape
    n = min(n, g)
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n] if n < g else np.broadcast_to(np.arange(g), (b, g))
    ps = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -ps), axis=1)
    goods = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(ps, order, axis=1).astype(np.float32)
    goods[~np.isfinite(sc)] = -1
    return goods, sc


class DenseSource:
    """A source defined by a dense score block over every good: `block(ctx, users [b]) -> float32 [b, G]`.

    The pipeline asks for the block once per batch of users and reads both the top `n` (the candidates) and
    the scores of every other source's candidates (a feature) from it."""

    name = "dense"

    def block(self, ctx: ForYouContext, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def from_block(self, ctx: ForYouContext, users: np.ndarray, block: np.ndarray, n: int) -> Candidates:
        g, sc = top_n(ctx, users, np.array(block, dtype=np.float32, copy=True), n)
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
