"""A graph as plain arrays, the form the For You pipeline (serving/foryou) works on.

Built by etl (etl/arrays.py) from the HeteroData of a graph artifact or of an evaluation's as-of-T graph, so
serving never needs torch_geometric. Index spaces are the graph's: user_idx, good_idx, collection_idx.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((values, (rows, cols)), shape=shape)
    m.sort_indices()
    return m


def timed_pairs(
    rows: np.ndarray, cols: np.ndarray, times: np.ndarray, shape: tuple[int, int]
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(binary float32 csr, float64 csr of the first time) with one entry per distinct (row, col)."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    order = np.lexsort((times, cols, rows))
    rows, cols, times = rows[order], cols[order], times[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, cols, times = rows[first], cols[first], times[first]
    return (
        _csr(rows, cols, np.ones(len(rows), np.float32), shape),
        _csr(rows, cols, times, shape),
    )


def _keep_before(binary: sp.csr_matrix, time: sp.csr_matrix, t: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    coo = time.tocoo()
    ok = coo.data <= t
    shape = (int(time.shape[0]), int(time.shape[1]))
    return (
        _csr(coo.row[ok], coo.col[ok], np.ones(int(ok.sum()), np.float32), shape),
        _csr(coo.row[ok], coo.col[ok], coo.data[ok], shape),
    )


class UserGoodSaves:
    """Sizes and popularity of anything holding `saves`, a csr [U, G] of users' saved goods (GraphArrays,
    evaluation's TrainData)."""

    saves: sp.csr_matrix

    @property
    def n_users(self) -> int:
        return int(self.saves.shape[0])

    @property
    def n_goods(self) -> int:
        return int(self.saves.shape[1])

    def popularity(self) -> np.ndarray:
        """int64 [G]: users who saved each good."""
        return np.bincount(self.saves.indices, minlength=self.n_goods).astype(np.int64)


@dataclass(frozen=True)
class GraphArrays(UserGoodSaves):
    """One graph as arrays. Times are unix seconds. U users, G goods, C collections.

    saves:         float32 csr [U, G], 1.0 per distinct (user, good) saved at or before `as_of`
    save_time:     float64 csr [U, G], same pattern: the first save time
    follows:       float32 csr [U, U], follower -> followee; follow_time the same pattern with times
    contains:      float32 csr [C, G], collection holds good; contains_time its times
    collection_owner: int64 [C] user_idx of each collection's owner (-1 unknown)
    content:       float32 [G, d] L2-normalised content (CLIP) vectors
    domain:        int64 [G] domain_idx, -1 unknown
    created_at:    int64 [G] when each good was created
    as_of:         nothing newer than this is in the arrays
    min_goods:     a user is eligible for picks with more than this many saved goods
    """

    saves: sp.csr_matrix
    save_time: sp.csr_matrix
    follows: sp.csr_matrix
    follow_time: sp.csr_matrix
    contains: sp.csr_matrix
    contains_time: sp.csr_matrix
    collection_owner: np.ndarray
    content: np.ndarray
    domain: np.ndarray
    created_at: np.ndarray
    as_of: int
    min_goods: int = 10

    def __post_init__(self) -> None:
        u, g = self.saves.shape
        checks = {
            "save_time": (self.save_time.shape, (u, g)),
            "follows": (self.follows.shape, (u, u)),
            "follow_time": (self.follow_time.shape, (u, u)),
            "contains": (self.contains.shape[1], g),
            "contains_time": (self.contains_time.shape, self.contains.shape),
            "collection_owner": (len(self.collection_owner), self.contains.shape[0]),
            "content": (len(self.content), g),
            "domain": (len(self.domain), g),
            "created_at": (len(self.created_at), g),
        }
        for name, (got, want) in checks.items():
            if tuple(np.atleast_1d(got)) != tuple(np.atleast_1d(want)):
                raise ValueError(f"GraphArrays.{name} has shape {got}, expected {want} (saves are {u} x {g})")

    @property
    def n_collections(self) -> int:
        return int(self.contains.shape[0])

    def saves_per_user(self) -> np.ndarray:
        return np.diff(self.saves.indptr).astype(np.int64)

    def eligible(self) -> np.ndarray:
        """bool [U]: users with more than `min_goods` saved goods."""
        return self.saves_per_user() > self.min_goods

    def live(self) -> np.ndarray:
        """bool [G]: goods that exist at `as_of` (a good created later cannot be picked yet)."""
        return self.created_at <= self.as_of

    def popularity(self, since: float | None = None) -> np.ndarray:
        """int64 [G]: users whose first save of the good is at or after `since` (all of them when None)."""
        if since is None:
            return super().popularity()
        ok = self.save_time.data >= since
        return np.bincount(self.save_time.indices[ok], minlength=self.n_goods).astype(np.int64)

    def as_of_time(self, t: int) -> GraphArrays:
        """The graph as it stood at `t` (<= as_of): every edge newer than t dropped, index spaces unchanged.

        Goods created after t stay in the arrays (so indices line up) but are not `live()`; their collection
        rows and saves are gone with the edges."""
        t = int(t)
        if t > self.as_of:
            raise ValueError(f"as_of_time({t}) is after the arrays' as_of {self.as_of}")
        saves, save_time = _keep_before(self.saves, self.save_time, t)
        follows, follow_time = _keep_before(self.follows, self.follow_time, t)
        contains, contains_time = _keep_before(self.contains, self.contains_time, t)
        return replace(
            self,
            saves=saves,
            save_time=save_time,
            follows=follows,
            follow_time=follow_time,
            contains=contains,
            contains_time=contains_time,
            as_of=t,
        )
