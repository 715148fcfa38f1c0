"""The database rows the daily picks need, as columnar arrays, and the index spaces serving works in.

Serving's own index spaces (not the graph's): `good_idx` is a position in `ServingRows.good_id` (the goods
that are not deleted, sorted by id), `user_idx` a position in `ServingRows.user_id` (sorted). Ids are database
keys. Deleted goods are absent from `good_id`, so nothing deleted can ever be indexed, retrieved or picked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class ServingRows:
    user_id: np.ndarray  # int64 [U] sorted
    good_id: np.ndarray  # int64 [G] sorted, goods not deleted
    good_domain: np.ndarray  # int64 [G] index into domain_names, -1 when unknown
    domain_names: np.ndarray  # str [D]
    save_user: np.ndarray  # int64 [S] user_id
    save_good: np.ndarray  # int64 [S] good_id (deleted goods included; they map to -1)
    save_time: np.ndarray  # int64 [S] unix seconds
    owned_user: np.ndarray  # int64 [N] owner user_id of a collection holding...
    owned_collection: np.ndarray  # int64 [N] ...this collection_id, which holds...
    owned_good: np.ndarray  # int64 [N] ...this good_id
    follower: np.ndarray  # int64 [F] user_id
    followee: np.ndarray  # int64 [F] user_id
    picked_user: np.ndarray  # int64 [P] user_id: picks served in the last `repeat_days` days
    picked_good: np.ndarray  # int64 [P] good_id
    now: int  # unix seconds the rows were read at

    def user_idx(self, ids: np.ndarray) -> np.ndarray:
        return _positions(self.user_id, ids)

    def good_idx(self, ids: np.ndarray) -> np.ndarray:
        return _positions(self.good_id, ids)

    @property
    def num_users(self) -> int:
        return len(self.user_id)

    @property
    def num_goods(self) -> int:
        return len(self.good_id)


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Position of each id in `sorted_ids`, -1 where absent."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(sorted_ids) == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, ids).clip(0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1).astype(np.int64)


def pair_matrix(n_rows: int, n_cols: int, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """bool csr [n_rows, n_cols] with True at each (row, col) pair; pairs with a -1 are dropped."""
    keep = (rows >= 0) & (cols >= 0)
    data = np.ones(int(keep.sum()), dtype=bool)
    m = sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(n_rows, n_cols), dtype=bool)
    m.sum_duplicates()
    return m


def saved_matrix(rows: ServingRows) -> sp.csr_matrix:
    """bool csr [U, G]: the goods (not deleted) each user saved."""
    return pair_matrix(rows.num_users, rows.num_goods, rows.user_idx(rows.save_user), rows.good_idx(rows.save_good))


def exclusion_matrix(rows: ServingRows) -> sp.csr_matrix:
    """bool csr [U, G]: goods never to pick for a user: their saves, goods in their own collections, and
    goods picked for them in the last `repeat_days` days. (Deleted goods have no good_idx at all.)"""
    u = np.concatenate([rows.save_user, rows.owned_user, rows.picked_user])
    g = np.concatenate([rows.save_good, rows.owned_good, rows.picked_good])
    return pair_matrix(rows.num_users, rows.num_goods, rows.user_idx(u), rows.good_idx(g))


def eligible_users(rows: ServingRows, min_goods: int) -> np.ndarray:
    """user_idx of users with more than `min_goods` distinct saved goods that are not deleted."""
    counts = np.asarray(saved_matrix(rows).sum(axis=1)).ravel()
    return np.flatnonzero(counts > min_goods)
