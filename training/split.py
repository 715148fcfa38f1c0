"""The time-based validation split every model trains and early-stops on: `time_split`, `validation_metrics`.

The newest `val_share` of the saves in a graph are held out; a model trains on the graph as it was before
them (every timed edge older than the cut) and is validated by Recall@20 of the held-out saves, never
ranking a user's training saves. All indices are graph indices (`user_idx`, `good_idx`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from graphrec.core import metrics
from graphrec.core.artifacts import SAVES

VAL_K = 20
VAL_METRIC = f"recall@{VAL_K}"  # the figure early stopping watches
SCORE_BLOCK = 1 << 25  # floats per block of validation scores (128 MB)


@dataclass
class TimeSplit:
    """The validation holdout. `graph` has every timed edge older than `cutoff` (unix s), goods untouched.

    train_users/train_goods: int64 [E] the saves the model learns from (graph indices), `train_time` their
    times; `val_users` int64 [V] users with at least one held-out and one training save; `val_truth` csr
    [V, G] their held-out goods; `seen` csr [U, G] training saves, never ranked; `candidates` bool [G]
    the goods that existed before the cut (created_at < cutoff): only they are ranked and count as
    held-out truth, as in a graph built `--as-of` the cut (a good created by a save in the window could
    not have been recommended before it).
    """

    cutoff: int
    graph: HeteroData
    train_users: np.ndarray
    train_goods: np.ndarray
    train_time: np.ndarray
    val_users: np.ndarray
    val_truth: sp.csr_matrix
    seen: sp.csr_matrix
    candidates: np.ndarray

    @property
    def num_users(self) -> int:
        return int(self.graph["user"].num_nodes)

    @property
    def num_goods(self) -> int:
        return int(self.graph["good"].num_nodes)

    @property
    def has_validation(self) -> bool:
        return len(self.val_users) > 0


def edges_before(data: HeteroData, cutoff: int | None) -> HeteroData:
    """A copy of `data` (sharing node tensors) keeping only edges with time < cutoff (untimed edges stay)."""
    out = HeteroData()
    for t in data.node_types:
        for key, value in data[t].items():
            out[t][key] = value
    for e in data.edge_types:
        store = data[e]
        keep = None
        if cutoff is not None and "time" in store:
            keep = torch.as_tensor(store.time) < cutoff
        for key, value in store.items():
            if keep is not None and isinstance(value, Tensor) and value.dim() >= 1:
                value = value[:, keep] if key == "edge_index" else value[keep]
            out[e][key] = value
    return out


def time_split(data: HeteroData, val_share: float) -> TimeSplit:
    """Hold out the newest `val_share` of the saves (by time) for validation; see TimeSplit."""
    num_users, num_goods = data["user"].num_nodes, data["good"].num_nodes
    ei = data[SAVES].edge_index.numpy()
    t = data[SAVES].time.numpy().astype(np.int64)
    if len(t) == 0:
        raise ValueError("the graph has no saves to train on")
    if val_share > 0:
        cutoff = int(np.quantile(t, 1.0 - val_share, method="higher"))
        if (t < cutoff).sum() == 0:
            raise ValueError(f"val_share={val_share} leaves no saves older than the validation window")
    else:
        cutoff = int(t.max()) + 1
    train = t < cutoff
    seen = sp.csr_matrix(
        (np.ones(int(train.sum()), dtype=np.float32), (ei[0, train], ei[1, train])),
        shape=(num_users, num_goods),
    )
    created = data["good"].created_at.numpy() if "created_at" in data["good"] else np.zeros(num_goods)
    candidates = created < cutoff if val_share > 0 else np.ones(num_goods, dtype=bool)
    val_u, val_g = ei[0, ~train], ei[1, ~train]
    old_good = candidates[val_g]
    val_u, val_g = val_u[old_good], val_g[old_good]
    has_train = np.diff(seen.indptr) > 0
    keep = has_train[val_u]
    val_users = np.unique(val_u[keep])
    row = np.searchsorted(val_users, val_u[keep])
    truth = sp.csr_matrix((np.ones(len(row), dtype=np.float32), (row, val_g[keep])), shape=(len(val_users), num_goods))
    return TimeSplit(
        cutoff=cutoff,
        graph=edges_before(data, cutoff if val_share > 0 else None),
        train_users=ei[0, train],
        train_goods=ei[1, train],
        train_time=t[train],
        val_users=val_users,
        val_truth=truth,
        seen=seen,
        candidates=candidates,
    )


def sample_validation(split: TimeSplit, n: int, seed: int) -> TimeSplit:
    """`split` with a seeded sample of `n` of its validation users (all when n <= 0 or there are fewer).
    Ranking every good for every validation user grows with users x goods: at 50,000 users and 1M goods one
    validation ranked ~2e10 scores."""
    if n <= 0 or len(split.val_users) <= n:
        return split
    rows = np.sort(np.random.default_rng(seed).choice(len(split.val_users), n, replace=False))
    return dataclasses.replace(split, val_users=split.val_users[rows], val_truth=split.val_truth[rows])


def validation_metrics(user_vecs: np.ndarray, good_vecs: np.ndarray, split: TimeSplit) -> dict[str, float]:
    """Recall@20 and NDCG@20 of the held-out saves, ranking by inner product the goods that existed
    before the cut, training saves excluded. Empty when the split has no validation users."""
    good_t = np.ascontiguousarray(good_vecs, dtype=np.float32).T
    user_vecs = np.asarray(user_vecs, dtype=np.float32)
    return validation_scores(lambda users: user_vecs[users] @ good_t, split)


def validation_scores(score_fn: Callable[[np.ndarray], np.ndarray], split: TimeSplit) -> dict[str, float]:
    """`validation_metrics` for any scorer: score_fn(user_idx [b]) -> float [b, G] (a copy is masked, so
    score_fn may return its own cache). Empty when the split has no validation users."""
    if len(split.val_users) == 0:
        return {}
    not_yet = ~split.candidates

    def scores(users: np.ndarray) -> np.ndarray:
        out = np.array(score_fn(users), dtype=np.float32, copy=True)
        out[:, not_yet] = -np.inf
        return out

    # Users per scored block: about SCORE_BLOCK floats at a time (a 1,024-user block of 1M goods held ~24 GB
    # in scores, their copies and argpartition's int64 indices).
    batch = max(1, min(1024, SCORE_BLOCK // max(len(split.candidates), 1)))
    picks = metrics.topk(scores, split.val_users, VAL_K, exclude=split.seen, batch_size=batch)
    return {
        f"recall@{VAL_K}": float(metrics.recall_at_k(picks, split.val_truth, VAL_K).mean()),
        f"ndcg@{VAL_K}": float(metrics.ndcg_at_k(picks, split.val_truth, VAL_K).mean()),
        "val_users": len(split.val_users),
    }
