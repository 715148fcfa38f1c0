"""The contract every candidate source keeps: users in, scored goods (with what the reason names) out."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

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
    ctx: ForYouContext,
    users: np.ndarray,
    scores: np.ndarray,
    n: int,
    allowed: np.ndarray | None = None,
    cols: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best `n` goods per row of dense `scores` [b, G] (modified in place): excluded goods, goods not pickable
    at as_of (and outside `allowed` bool [G]) and non-positive or non-finite scores never count. Goods with
    equal scores come lowest good_idx first, also across the n-th place (`largest_n`). cols: the goods of
    `scores`' columns when it covers only some (int64 [C], ascending; every other good then scores 0).
    Returns (good_idx int64 [b, n'], scores float32 [b, n']) with n' = min(n, columns), best first, -1 / -inf
    padded."""
    ok = ctx.pickable() if allowed is None else ctx.pickable() & allowed
    ex = ctx.exclude[users].tocoo()
    if cols is None:
        scores[:, ~ok] = -np.inf
        scores[ex.row, ex.col] = -np.inf
    else:
        scores[:, ~ok[cols]] = -np.inf
        pos = np.searchsorted(cols, ex.col)
        hit = pos < len(cols)
        hit[hit] = cols[pos[hit]] == ex.col[hit]
        scores[ex.row[hit], pos[hit]] = -np.inf
    top = float(scores.max()) if scores.size else -np.inf
    if np.isnan(top) or top == np.inf:  # rare: a full pass only when some score is NaN or +inf
        scores[~np.isfinite(scores)] = -np.inf
    part, ps = largest_n(scores, n, floor=0.0)
    ps[~(ps > 0)] = -np.inf  # after the selection: a row with fewer than n positive scores is padded
    order = np.lexsort((part, -ps), axis=1)
    goods = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(ps, order, axis=1).astype(np.float32)
    if cols is not None:
        goods = cols[goods]
    goods[~np.isfinite(sc)] = -1
    return goods, sc


@dataclass(frozen=True)
class ColumnBlock:
    """A dense score block over some goods only: values float32 [b, C] of the goods cols int64 [C] (ascending);
    every other good scores 0. Indexed like a dense block: ``block[row, good]`` -> float32 [N]."""

    values: np.ndarray
    cols: np.ndarray

    def __getitem__(self, key: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        row, good = (np.asarray(k, dtype=np.int64) for k in key)
        pos = np.searchsorted(self.cols, good)
        hit = pos < len(self.cols)
        hit[hit] = self.cols[pos[hit]] == good[hit]
        out = np.zeros(len(row), np.float32)
        out[hit] = self.values[row[hit], pos[hit]]
        return out


def csr_values(m: sp.csr_matrix, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """m[row, col] for pairs (0 where m has no entry; m csr with sorted indices and no duplicates) in m's
    dtype: one binary search over the entries' (row, col) keys, where scipy's per-pair sampling took ~10 s
    per 1,000 users at 10x."""
    row, col = np.asarray(row, dtype=np.int64), np.asarray(col, dtype=np.int64)
    out = np.zeros(len(row), dtype=m.dtype)
    if not m.nnz or not len(row):
        return out
    width = np.int64(m.shape[1])
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * width + m.indices
    want = row * width + col
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    hit = keys[pos] == want
    out[hit] = m.data[pos[hit]]
    return out


def _sorted(m: sp.csr_matrix) -> sp.csr_matrix:
    m.sum_duplicates()  # also sorts the indices
    return m


def sparse_top_n(ctx: ForYouContext, users: np.ndarray, scores: sp.spmatrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """top_n of a sparse score block [b, G] (its missing entries are 0, so never picked): the same goods in the
    same order as top_n of the block made dense, without the [b, G] array. Returns (good_idx int64 [b, n],
    scores float32 [b, n]) best first, -1 / -inf padded."""
    b = len(users)
    m = sp.csr_matrix(scores, dtype=np.float32)
    m.sum_duplicates()
    row = np.repeat(np.arange(b), np.diff(m.indptr))
    col, val = m.indices.astype(np.int64), m.data
    ok = np.isfinite(val) & (val > 0) & ctx.pickable()[col]
    row, col, val = row[ok], col[ok], val[ok]
    if len(row):
        ex = _sorted(sp.csr_matrix(ctx.exclude[users], dtype=bool))
        hit = csr_values(ex, row, col)
        row, col, val = row[~hit], col[~hit], val[~hit]
    # Rows with more than n entries: keep those at or above the n-th largest value (ties cut below).
    count = np.bincount(row, minlength=b)
    start = np.concatenate([[0], np.cumsum(count)])
    floor = row_nth_largest(val, start, n, np.flatnonzero(count > n))
    keep = val >= floor[row]
    return pairs_top_n(row[keep], col[keep], val[keep], b, n)


def row_nth_largest(values: np.ndarray, indptr: np.ndarray, n: int, rows: np.ndarray) -> np.ndarray:
    """values' dtype [len(indptr) - 1]: for each row i in `rows` (each with at least n entries), the n-th largest
    of values[indptr[i] : indptr[i + 1]]; -inf for every other row."""
    out = np.full(len(indptr) - 1, -np.inf, values.dtype)
    for i in rows.tolist():
        v = values[indptr[i] : indptr[i + 1]]
        out[i] = np.partition(v, len(v) - n)[len(v) - n]
    return out


def pairs_top_n(row: np.ndarray, col: np.ndarray, val: np.ndarray, b: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's n best (col, val) pairs in top_n's order (best value first, lowest good_idx among equals):
    (good_idx int64 [b, n], scores float32 [b, n]), -1 / -inf padded. row: int64 [N] in [0, b)."""
    order = np.lexsort((col, -val, row))
    row, col, val = row[order], col[order], val[order]
    place = np.arange(len(row)) - np.searchsorted(row, row, side="left")
    sel = place < n
    goods = np.full((b, n), -1, np.int64)
    out = np.full((b, n), -np.inf, np.float32)
    goods[row[sel], place[sel]] = col[sel]
    out[row[sel], place[sel]] = val[sel]
    return goods, out


def row_runs(row: np.ndarray) -> list[tuple[int, int]] | None:
    """(start, end) of each run of equal values in `row`, or None when the runs are mostly of one (more than
    len(row) / 16 of them): a per-pair path is then cheaper than a product per run."""
    if not len(row):
        return []
    cut = np.flatnonzero(row[1:] != row[:-1]) + 1
    if len(cut) > len(row) // 16:
        return None
    starts = [0, *cut.tolist()]
    return list(zip(starts, [*starts[1:], len(row)], strict=True))


def pair_dots(a: np.ndarray, row: np.ndarray, b: np.ndarray, col: np.ndarray) -> np.ndarray:
    """float32 [N]: ``a[row[i]] . b[col[i]]`` for pairs (a [R, k], b [C, k]). Pairs grouped by row (candidates
    come so) take one product per run of equal rows, with a's row read once: gathering a's row per pair as well
    cost ~3x as much (180,000 pairs, k 256). The same float32 values either way (einsum sums each dot in one
    order)."""
    row, col = np.asarray(row, dtype=np.int64), np.asarray(col, dtype=np.int64)
    out = np.empty(len(row), np.float32)
    runs = row_runs(row)
    if runs is None:  # a gather per pair, in chunks of [step, k]
        step = 65_536
        for lo in range(0, len(row), step):
            out[lo : lo + step] = np.einsum("nk,nk->n", a[row[lo : lo + step]], b[col[lo : lo + step]])
        return out
    for lo, hi in runs:
        out[lo:hi] = np.einsum("nk,k->n", b[col[lo:hi]], a[row[lo]])
    return out


def pair_values(block: Any, row: np.ndarray, good: np.ndarray) -> np.ndarray:
    """float32 [N]: a score block's values at (row, good) pairs; the block is dense [b, G], a scipy sparse
    matrix (0 where it has no entry) or an object indexed like a dense block (graph_filter's FactoredBlock)."""
    if sp.issparse(block):
        return csr_values(_sorted(sp.csr_matrix(block)), row, good).astype(np.float32)
    return np.asarray(block[row, good], dtype=np.float32).ravel()


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

    def block(self, ctx: ForYouContext, users: np.ndarray) -> Any:
        raise NotImplementedError

    def from_block(self, ctx: ForYouContext, users: np.ndarray, block: Any, n: int) -> Candidates:
        """The top n of `block` (dense [b, G], a ColumnBlock, or scipy sparse: missing entries score 0)."""
        if sp.issparse(block):
            g, sc = sparse_top_n(ctx, users, block, n)
        elif isinstance(block, ColumnBlock):
            g, sc = top_n(ctx, users, np.array(block.values, dtype=np.float32, order="C"), n, cols=block.cols)
        else:
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
