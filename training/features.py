"""CLIP-space node features for the models: recency weights of saves and (weighted) mean features per node.

A save's weight in a user's representation decays with its age relative to the user's newest save
(`TrainConfig.recency_half_life_days`): it shapes PinSage-lite's user features and LightGCN's edge weights.
Everything is in graph indices of the HeteroData handed in.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from graphrec.core.artifacts import SAVES

SECONDS_PER_DAY = 86400.0


def recency_weights(owner: np.ndarray, time: np.ndarray, num_owners: int, half_life_days: float) -> np.ndarray:
    """Weight of each edge of an owner (e.g. each save of a user) by age relative to the owner's newest.

    owner: int64 [E] owner index, time: int64 [E] unix seconds. Returns float64 [E] in (0, 1]:
    0.5 ** (age / half_life); all ones when half_life_days <= 0.
    """
    if half_life_days <= 0 or len(owner) == 0:
        return np.ones(len(owner), dtype=np.float64)
    newest = np.full(num_owners, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(newest, owner, time)
    age_days = (newest[owner] - time) / SECONDS_PER_DAY
    return np.power(0.5, age_days / half_life_days)


def weighted_mean_features(
    owner: np.ndarray, good: np.ndarray, weight: np.ndarray, num_owners: int, good_x: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-owner weighted sums of good features: (sums float32 [num_owners, F], totals float32 [num_owners]).

    mean = sums / totals (zero where an owner has no goods). Kept as sums so a training batch can
    subtract its own supervision goods exactly.
    """
    w = torch.as_tensor(weight, dtype=torch.float32)
    sums = torch.zeros(num_owners, good_x.size(1))
    sums.index_add_(0, torch.as_tensor(owner, dtype=torch.long), good_x[torch.as_tensor(good)] * w[:, None])
    totals = torch.zeros(num_owners).index_add_(0, torch.as_tensor(owner, dtype=torch.long), w)
    return sums, totals


def as_mean(sums: Tensor, totals: Tensor) -> Tensor:
    """sums / totals row-wise; zero rows where totals <= 0 (a node without goods)."""
    return torch.where(totals[:, None] > 0, sums / totals.clamp(min=1e-30)[:, None], torch.zeros(()))


def node_features(data: HeteroData, half_life_days: float) -> dict[str, Tensor]:
    """CLIP-space input features per node type, float32 [n, F].

    good: its own CLIP vector. user: recency-weighted mean over its saves (zero without saves).
    domain: mean over its goods. Collections get none: their content arrives through contains-edges,
    which link batches filter, where a precomputed mean would leak the target good of its owner.
    """
    x = data["good"].x.float()
    feats = {"good": x, "user": as_mean(*user_feature_sums(data, half_life_days))}
    if "domain" in data.node_types:
        n = data["domain"].num_nodes
        dom = data["good"].domain.numpy() if "domain" in data["good"] else np.full(x.size(0), -1)
        known = dom >= 0
        sums, totals = weighted_mean_features(dom[known], np.nonzero(known)[0], np.ones(int(known.sum())), n, x)
        feats["domain"] = as_mean(sums, totals)
    return feats


def user_feature_sums(data: HeteroData, half_life_days: float) -> tuple[Tensor, Tensor]:
    """Recency-weighted sums of each user's saved goods' CLIP vectors and the weight totals."""
    x = data["good"].x.float()
    num_users = data["user"].num_nodes
    if SAVES not in data.edge_types:
        return torch.zeros(num_users, x.size(1)), torch.zeros(num_users)
    ei = data[SAVES].edge_index.numpy()
    t = data[SAVES].time.numpy() if "time" in data[SAVES] else np.zeros(ei.shape[1], dtype=np.int64)
    w = recency_weights(ei[0], t, num_users, half_life_days)
    return weighted_mean_features(ei[0], ei[1], w, num_users, x)
