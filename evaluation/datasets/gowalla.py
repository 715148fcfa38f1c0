"""The Gowalla split of the LightGCN paper (He et al., SIGIR 2020), read from ``train.txt`` and ``test.txt``.

Each line is ``user_id item_id item_id ...`` with 0-based ids. Users and items are the rows and columns of
scipy csr matrices [n_users, n_items]; here an item plays the part of a good (``good_idx``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

TRAIN_FILE = "train.txt"
TEST_FILE = "test.txt"


@dataclass(frozen=True)
class PublicSplit:
    """A public train/test split: ``train`` and ``test`` are binary csr [n_users, n_items]."""

    train: sp.csr_matrix
    test: sp.csr_matrix
    n_users: int
    n_items: int
    name: str


def read_user_items(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``user item item ...`` lines into parallel int64 arrays (user_idx, item_idx); see
    :func:`read_user_lines`."""
    users, items, _ = read_user_lines(path)
    return users, items


def int_lines(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(1-based line number, int64 ids) of each non-blank line of whitespace-separated integers in `path`.
    A missing file or a non-integer token is an error naming the file (and line)."""
    if not path.is_file():
        raise FileNotFoundError(f"missing data file {path}")
    with path.open() as f:
        for line_no, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            try:
                ids = np.array([int(t) for t in tokens], dtype=np.int64)
            except ValueError:
                raise ValueError(f"{path}:{line_no}: expected integer ids, got {line.strip()[:80]!r}") from None
            yield line_no, ids


def read_user_lines(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Read ``user item item ...`` lines into parallel int64 arrays (user_idx, item_idx) and the number of
    users (largest user id on any line + 1).

    A line with a user and no items is allowed (that user has no interactions); a non-integer token is an
    error naming the file and line.
    """
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    n_users = 0
    for line_no, ids in int_lines(path):
        if (ids < 0).any():
            raise ValueError(f"{path}:{line_no}: negative id")
        n_users = max(n_users, int(ids[0]) + 1)
        users.append(np.full(len(ids) - 1, ids[0], dtype=np.int64))
        items.append(ids[1:])
    if not users:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    return np.concatenate(users), np.concatenate(items), n_users


def to_csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary csr [n_users, n_items]; duplicate pairs count once."""
    m = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items), dtype=np.float32
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def load_gowalla(root: Path) -> PublicSplit:
    """Load ``root/train.txt`` and ``root/test.txt``; ids span both files."""
    root = Path(root)
    for name in (TRAIN_FILE, TEST_FILE):
        if not (root / name).is_file():
            raise FileNotFoundError(
                f"Gowalla data missing: {root / name} not found (expected the LightGCN split in {root})"
            )
    tr_u, tr_i, tr_users = read_user_lines(root / TRAIN_FILE)
    te_u, te_i, te_users = read_user_lines(root / TEST_FILE)
    n_users = max(tr_users, te_users)
    n_items = int(max(tr_i.max(initial=-1), te_i.max(initial=-1))) + 1
    return PublicSplit(
        train=to_csr(tr_u, tr_i, n_users, n_items),
        test=to_csr(te_u, te_i, n_users, n_items),
        n_users=n_users,
        n_items=n_items,
        name="gowalla",
    )


def carve_validation(
    train: sp.csr_matrix, share: float = 0.1, seed: int = 0, min_keep: int = 1
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split ``train`` into (fit, validation): a random ``share`` of each user's items, seeded.

    Each user keeps at least ``min_keep`` items in ``fit``; a user with too few items gives none to
    validation. Both results are binary csr of the same shape as ``train``.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    train = sp.csr_matrix(train)
    rng = np.random.default_rng(seed)
    counts = np.diff(train.indptr)
    n_val = np.minimum(np.floor(counts * share + rng.random(len(counts))).astype(np.int64), counts - min_keep)
    n_val = np.maximum(n_val, 0)
    # One random key per stored entry; within each row, the n_val smallest keys go to validation.
    keys = rng.random(train.nnz)
    rows = np.repeat(np.arange(train.shape[0]), counts)
    order = np.lexsort((keys, rows))
    rank = np.empty(train.nnz, dtype=np.int64)
    rank[order] = np.arange(train.nnz) - np.repeat(train.indptr[:-1], counts)
    is_val = rank < np.repeat(n_val, counts)
    cols = train.indices
    fit = to_csr(rows[~is_val], cols[~is_val], *train.shape)
    val = to_csr(rows[is_val], cols[is_val], *train.shape)
    return fit, val
