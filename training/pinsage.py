"""PinSage-lite: a heterogeneous GraphSAGE encoder over user, good, collection and domain nodes.

Every node enters through the same learned projection of a CLIP-space feature: a good's own CLIP
embedding, and for a user, collection or domain the (recency-weighted) mean CLIP embedding of its goods
(`node_features`). Nothing is tied to a node's index, so users and goods unseen in training get
embeddings from their features and edges alone (inductive). `num_layers` rounds of `HeteroConv` with one
`SAGEConv` per edge type then mix in the neighborhood; the outputs are L2-normalised so a user-good score
is a cosine.

Id space: everything here is in graph indices of the HeteroData handed in (`user_idx`, `good_idx`, ...).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv

from graphrec.core.artifacts import SAVES

EdgeType = tuple[str, str, str]
SECONDS_PER_DAY = 86400.0


class PinSageLite(torch.nn.Module):
    """Heterogeneous GraphSAGE over CLIP-space node features.

    Args:
        node_types: node types that may appear (e.g. ("user", "good", "collection", "domain")).
        edge_types: edge types used for message passing, each (src, rel, dst).
        feature_dim: width F of the input features (512 for CLIP).
        embedding_dim: width d of hidden layers and outputs.
        num_layers: message-passing rounds (match the sampler's number of hops).
        dropout: dropout on hidden states during training.

    forward(x_dict, edge_index_dict) -> dict of float32 [n_type, d] L2-normalised embeddings, where
    x_dict[type] is float32 [n_type, F] and edge_index_dict[edge_type] int64 [2, E] of local indices.
    """

    def __init__(
        self,
        node_types: tuple[str, ...],
        edge_types: tuple[EdgeType, ...],
        feature_dim: int,
        embedding_dim: int,
        num_layers: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.node_types = tuple(node_types)
        self.edge_types = tuple(tuple(e) for e in edge_types)
        self.feature_dim = feature_dim
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.dropout = dropout
        # No bias, and inputs scaled to unit-variance components (CLIP vectors are unit-norm): otherwise
        # the biases dominate at initialisation and every node starts out with the same embedding.
        self.proj = torch.nn.Linear(feature_dim, embedding_dim, bias=False)
        self.input_scale = math.sqrt(feature_dim)
        # One learned offset per node type: the feature spaces are shared, their roles are not.
        self.type_bias = torch.nn.ParameterDict(
            {t: torch.nn.Parameter(torch.zeros(embedding_dim)) for t in self.node_types}
        )
        self.convs = torch.nn.ModuleList(
            HeteroConv(
                {e: SAGEConv((embedding_dim, embedding_dim), embedding_dim, aggr="mean") for e in self.edge_types},
                aggr="sum",
            )
            for _ in range(num_layers)
        )
        self.out = torch.nn.ModuleDict(
            {t: torch.nn.Linear(embedding_dim, embedding_dim, bias=False) for t in ("user", "good")}
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        for p in self.type_bias.values():
            torch.nn.init.zeros_(p)
        for conv in self.convs:
            assert isinstance(conv, HeteroConv)
            conv.reset_parameters()
        for lin in self.out.values():
            assert isinstance(lin, torch.nn.Linear)
            lin.reset_parameters()

    def args(self) -> dict:
        """Constructor arguments, for checkpoints."""
        return {
            "node_types": list(self.node_types),
            "edge_types": [list(e) for e in self.edge_types],
            "feature_dim": self.feature_dim,
            "embedding_dim": self.embedding_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
        }

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[EdgeType, Tensor],
        num_nodes_dict: dict[str, int] | None = None,
    ) -> dict[str, Tensor]:
        """x_dict: CLIP-space inputs per node type; types only in num_nodes_dict (e.g. collections,
        whose content arrives through their edges) start from their type's learned vector alone."""
        h = {t: self.proj(x * self.input_scale) + self.type_bias[t] for t, x in x_dict.items()}
        for t, n in (num_nodes_dict or {}).items():
            if t not in h:
                h[t] = self.type_bias[t].expand(n, -1)
        edges = {e: ei for e, ei in edge_index_dict.items() if e in self.edge_types and ei.numel() > 0}
        for conv in self.convs:
            msg = conv(h, edges)
            # Residual update; node types that receive no messages keep their state.
            h = {t: v + F.relu(msg[t]) if t in msg else v for t, v in h.items()}
            if self.dropout > 0:
                h = {t: F.dropout(v, self.dropout, self.training) for t, v in h.items()}
        return {t: F.normalize(self.out[t](h[t]), dim=-1) for t in self.out if t in h}


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
