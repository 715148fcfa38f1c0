"""Amazon Beauty (the S3-Rec preprocessing) as time-ordered sequences, split leave-last-out.

`Beauty.txt`: one line per user, ``user_id item_id item_id ...`` oldest first, 1-based ids.
`Beauty_item2attributes.json`: item id -> attribute ids, the item's brand first (when it has one) and then
its fine-grained categories. A brand is recognised as an attribute that only ever comes first: the few
top-level categories that lead the list of unbranded items also appear later in other items' lists.
Brands play the part of Goodsend's shop domains; the category attributes (multi-hot, L2-normalised) play
the part of the CLIP vectors.

Rows and columns are 0-based here: ``user_idx = user_id - 1``, ``good_idx = item_id - 1``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from evaluation.datasets.gowalla import PublicSplit, int_lines, to_csr
from evaluation.protocol import EvalSet, binary_csr, from_public

SEQUENCES_FILE = "Beauty.txt"
ATTRIBUTES_FILE = "Beauty_item2attributes.json"


@dataclass(frozen=True)
class SequenceSplit(PublicSplit):
    """A leave-last-out split with what the Goodsend-like metrics need.

    train: all but each user's last item (binary csr [U, I]); test: the last item; validation: the
    second-to-last item (inside train; for early stopping only). position: csr like train whose values are
    each train item's place counted back from the user's newest train item (-1 newest, -2 before, ...).
    domain: int64 [I] brand index or -1; content: float32 [I, A] L2-normalised category multi-hot.
    """

    validation: sp.csr_matrix | None = None
    position: sp.csr_matrix | None = None
    domain: np.ndarray | None = None
    content: np.ndarray | None = None


def read_attributes(path: Path, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(domain int64 [n_items] brand index or -1, content float32 [n_items, n_categories])."""
    if not path.is_file():
        raise FileNotFoundError(f"missing data file {path}")
    raw = json.loads(path.read_text())
    lists: dict[int, list[int]] = {}
    for key, attrs in raw.items():
        try:
            item = int(key) - 1
            values = [int(a) for a in attrs]
        except (TypeError, ValueError):
            raise ValueError(f"{path}: item {key!r}: expected integer ids, got {attrs!r}") from None
        if 0 <= item < n_items:
            lists[item] = values
    later = {a for attrs in lists.values() for a in attrs[1:]}
    brands = sorted({attrs[0] for attrs in lists.values() if attrs and attrs[0] not in later})
    brand_idx = {b: i for i, b in enumerate(brands)}
    categories = sorted({a for attrs in lists.values() for a in attrs if a not in brand_idx})
    cat_idx = {c: i for i, c in enumerate(categories)}
    domain = np.full(n_items, -1, dtype=np.int64)
    content = np.zeros((n_items, max(len(categories), 1)), dtype=np.float32)
    for item, attrs in lists.items():
        if attrs and attrs[0] in brand_idx:
            domain[item] = brand_idx[attrs[0]]
        cats = [cat_idx[a] for a in attrs if a in cat_idx]
        content[item, cats] = 1.0
    norms = np.linalg.norm(content, axis=1, keepdims=True)
    content = np.divide(content, norms, out=np.zeros_like(content), where=norms > 0)
    return domain, content


def read_sequence_lines(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parallel int64 arrays (user_id, item_id), each user's items in file order, from S3-Rec lines
    ``user_id item_id item_id ...`` (1-based ids, one line per user). Errors name the file and line."""
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    first_line: dict[int, int] = {}
    for line_no, ids in int_lines(path):
        if (ids < 1).any():
            raise ValueError(f"{path}:{line_no}: ids are 1-based; found {int(ids.min())}")
        if len(ids) < 2:
            raise ValueError(f"{path}:{line_no}: user {ids[0]} has no items")
        user = int(ids[0])
        if user in first_line:
            raise ValueError(f"{path}:{line_no}: user {user} already has a line ({first_line[user]})")
        first_line[user] = line_no
        users.append(np.full(len(ids) - 1, user, dtype=np.int64))
        items.append(ids[1:])
    if not users:
        raise ValueError(f"{path}: no interactions")
    return np.concatenate(users), np.concatenate(items)


def load_sequence_file(path: Path, attributes: Path | None = None, name: str | None = None) -> SequenceSplit:
    """A sequence file in the S3-Rec format (one user per line, items oldest first, 1-based ids) and
    optionally its item -> attribute ids JSON; leave-last-out split (see SequenceSplit). Without
    attributes, `domain` and `content` are None."""
    path = Path(path)
    users, items = read_sequence_lines(path)
    # Users in file order; rows are user_id - 1 as in the published files.
    order = np.argsort(users, kind="stable")
    users, items = users[order] - 1, items[order] - 1
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    # Place of each interaction counted from the end of its user's sequence.
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    lengths = np.diff(np.r_[starts, len(users)])
    from_end = np.repeat(starts + lengths, lengths) - np.arange(len(users))  # 1 = last
    last, second = from_end == 1, from_end == 2
    train = ~last & (lengths[np.repeat(np.arange(len(starts)), lengths)] > 1)
    # A repeated item keeps its newest place.
    position = binary_csr(users[train], items[train], (n_users, n_items), from_end[train] - 1)
    position.data = -position.data
    domain, content = read_attributes(attributes, n_items) if attributes is not None else (None, None)
    return SequenceSplit(
        train=to_csr(users[train], items[train], n_users, n_items),
        test=to_csr(users[last], items[last], n_users, n_items),
        n_users=n_users,
        n_items=n_items,
        name=name or path.stem,
        validation=to_csr(users[second], items[second], n_users, n_items),
        position=position,
        domain=domain,
        content=content,
    )


def validation_window(s: SequenceSplit) -> SequenceSplit:
    """The split one step earlier: each user's validation item (the one before the last) becomes the test,
    the train items before it train, and the one before those validates. Settings of rows that have none of
    their own (the For You pipeline's) are chosen here, never on the test item."""
    if s.position is None or s.validation is None:
        raise ValueError(f"{s.name}: a validation window needs the sequence order and the validation item")
    pos = s.position.tocoo()
    keep = pos.data != -1
    rows, cols, steps = pos.row[keep], pos.col[keep], pos.data[keep] + 1
    shape = (s.n_users, s.n_items)
    position = binary_csr(rows, cols, shape, -steps)
    position.data = -position.data
    return dataclasses.replace(
        s,
        train=to_csr(rows, cols, s.n_users, s.n_items),
        test=s.validation,
        validation=to_csr(rows[steps == -1], cols[steps == -1], s.n_users, s.n_items),
        position=position,
        name=f"{s.name}-validation",
    )


def load_beauty(root: Path) -> SequenceSplit:
    """Read `root/Beauty.txt` and `root/Beauty_item2attributes.json`; leave-last-out split."""
    root = Path(root)
    seq_path = root / SEQUENCES_FILE
    if not seq_path.is_file():
        raise FileNotFoundError(f"Amazon Beauty data missing: {seq_path} not found")
    return load_sequence_file(seq_path, root / ATTRIBUTES_FILE, name="beauty")


def sequence_evalset(s: SequenceSplit, *, description: str, seed: int = 0) -> EvalSet:
    """The EvalSet of a leave-last-out sequence split: save_time counts steps of each user's sequence (no
    clock), split at 0, its validation item, attributes as content and domains."""
    return from_public(
        s.name,
        s.train,
        s.test,
        save_time=s.position,
        split_time=0.0,
        time_in_steps=True,
        validation=s.validation,
        content=s.content,
        domain=s.domain,
        seed=seed,
        description=description,
    )
