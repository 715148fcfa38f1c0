"""What the evaluator works on: the data as of the split time T, and the held-out saves after it.

Everything is in the index space of the candidate goods (`good_idx`: a good that existed at T and was not
deleted; for the demo these are the goods of the graph built as of T) and of the users (`user_idx`).

`TrainData` is all a baseline or model may see. `EvalSet` adds the test saves, which only the evaluator
reads, so a recommender cannot look at the answers by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from graphrec.core.arrays import UserGoodSaves


@dataclass(frozen=True)
class TrainData(UserGoodSaves):
    """The saves before T and what is known about the goods.

    saves:     float32 csr [U, G], 1.0 where user_idx saved good_idx before T (deduplicated).
    save_time: csr [U, G] with the same pattern, the first save time (unix seconds, or a sequence position
               for public data without clocks), or None when the data has no order.
    content:   float32 [G, d] L2-normalised content vectors (CLIP for Goodsend), or None.
    domain:    int64 [G] domain index per good, -1 unknown, or None.
    split_time: T in the units of save_time, or None.
    validation: csr [U, G] saves set aside (inside `saves`) for a model's early stopping, or None (a model
               then carves its own out of `saves`). Never the test set.
    """

    saves: sp.csr_matrix
    save_time: sp.csr_matrix | None = None
    content: np.ndarray | None = None
    domain: np.ndarray | None = None
    split_time: float | None = None
    validation: sp.csr_matrix | None = None
    # save_time counts steps of a user's sequence (public data without clocks), not seconds.
    time_in_steps: bool = False
    seed: int = 0


@dataclass(frozen=True)
class SoftTest:
    """Test saves of goods created after T, which no recommender could pick: scored by likeness instead.

    rows: int64 [S] position in `EvalSet.users` of the saving user; vecs: float32 [S, d] the new goods'
    content vectors (or None); domain: int64 [S] their domain index in the candidates' domain space (-1 when
    the domain is unknown or has no candidate goods).
    """

    rows: np.ndarray
    vecs: np.ndarray | None
    domain: np.ndarray | None


@dataclass(frozen=True)
class DemoTruth:
    """The demo generator's planted answer: interest[user_idx, style] weights and style[good_idx]."""

    interest: np.ndarray  # float32 [U, S]
    style: np.ndarray  # int64 [G], -1 unknown


@dataclass(frozen=True)
class EvalSet:
    """One evaluation: the train view, the evaluated users and their held-out saves.

    users: int64 [n] user_idx of the evaluated users (eligible at T with at least one test save of a
    candidate good). test: csr [n, G], rows aligned with `users`. soft: the evaluated users' test saves of
    goods created after T. `graph` is (HeteroData, IdMaps, manifest) as of T for the trained models, or None.
    `counts` says how the test set was formed (for the report).
    """

    name: str
    train: TrainData
    users: np.ndarray
    test: sp.csr_matrix
    soft: SoftTest | None = None
    truth: DemoTruth | None = None
    graph: Any = None
    counts: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def binary_csr(
    rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], values: np.ndarray | None = None
) -> sp.csr_matrix:
    """csr [shape], one entry per distinct (row, col): 1.0, or the minimum of `values` (the first time)."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if values is None:
        m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        m.sum_duplicates()
        m.data[:] = 1.0
        return m
    values = np.asarray(values, dtype=np.float64)
    order = np.lexsort((values, cols, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    m = sp.csr_matrix((values[first], (rows[first], cols[first])), shape=shape)
    m.sort_indices()
    return m


def from_public(
    name: str,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    *,
    save_time: sp.csr_matrix | None = None,
    split_time: float | None = None,
    time_in_steps: bool = False,
    validation: sp.csr_matrix | None = None,
    content: np.ndarray | None = None,
    domain: np.ndarray | None = None,
    seed: int = 0,
    description: str = "",
) -> EvalSet:
    """An EvalSet from a public train/test split: every item is a candidate, train items are excluded, and
    the evaluated users are those with at least one test item (the LightGCN protocol)."""
    train = sp.csr_matrix(train, dtype=np.float32)
    train.data[:] = 1.0
    test = sp.csr_matrix(test, dtype=np.float32)
    # A test item the user already had in train can never be ranked; drop it from the truth.
    test = test - test.multiply(train)
    test.eliminate_zeros()
    users = np.flatnonzero(np.diff(test.indptr) > 0).astype(np.int64)
    return EvalSet(
        name=name,
        train=TrainData(
            saves=train,
            save_time=save_time,
            content=content,
            domain=domain,
            split_time=split_time,
            validation=validation,
            time_in_steps=time_in_steps,
            seed=seed,
        ),
        users=users,
        test=sp.csr_matrix(test[users]),
        counts={
            "users": int(train.shape[0]),
            "goods": int(train.shape[1]),
            "train_saves": int(train.nnz),
            "evaluated_users": len(users),
            "test_saves": int(test.nnz),
        },
        description=description,
    )
