"""PinSage-lite: a heterogeneous GraphSAGE encoder over user, good, collection and domain nodes, and its Model.

Every node enters through the same learned projection of a CLIP-space feature: a good's own CLIP
embedding, and for a user, collection or domain the (recency-weighted) mean CLIP embedding of its goods
(`training.features.node_features`). Nothing is tied to a node's index, so users and goods unseen in training
get embeddings from their features and edges alone (inductive). `num_layers` rounds of `HeteroConv` with one
`SAGEConv` per edge type then mix in the neighborhood; the outputs are L2-normalised so a user-good score
is a cosine.

Two inputs say which goods of a style people actually re-save, which CLIP and mean-aggregated neighbours
cannot: a learned id embedding for each good with at least `train.id_min_saves` training saves (the others,
and goods new since training, share the all-zero "unknown" row, so they get their vector from CLIP alone),
and with `train.degree_features` a learned projection of the good's popularity, log1p of its save count and
of its recency-weighted save count (`good_degrees`). The map from training goods to id rows is a buffer of
the module (`id_row`), so it travels in the checkpoint and `embed` finds each good's row through the
checkpoint's id maps.

Training (`PinSageModel.fit`) runs on user-saves-good links with neighbor sampling
(`training.sampler.HeteroNeighborSampler`); losses BPR or sampled softmax (in-batch plus random goods,
optionally hard negatives from the positive's domain). A batch's own supervision edges and its goods' share
of its users' features are left out, so nothing leaks the target.

Id space: everything here is in graph indices of the HeteroData handed in (`user_idx`, `good_idx`, ...).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv

from graphrec.core.artifacts import SAVES, Embeddings, IdMaps
from graphrec.core.config import TrainConfig
from training import losses
from training.checkpoint import Trained
from training.features import (
    as_mean,
    inv_sqrt_degrees,
    node_features,
    recency_weights,
    save_matrix,
    spectral_good_features,
    spectral_user_basis,
    user_feature_sums,
)
from training.loop import Schedule, train_loop
from training.models.base import Fitted, embeddings, training_index
from training.sampler import HeteroNeighborSampler
from training.split import VAL_METRIC, TimeSplit, validation_metrics

log = logging.getLogger(__name__)

EdgeType = tuple[str, str, str]

DEGREE_FEATURES = 2  # log1p(save count), log1p(recency-weighted save count)


def good_save_weights(data: HeteroData, half_life_days: float) -> Tensor:
    """Weight of each save (graph order) in its good's recency-weighted count: 0.5 ** (age / half-life), age
    relative to the newest save of the graph; all ones when half_life_days <= 0. float32 [E]."""
    t = data[SAVES].time.numpy() if "time" in data[SAVES] else np.zeros(data[SAVES].num_edges, dtype=np.int64)
    w = recency_weights(np.zeros(len(t), dtype=np.int64), t, 1, half_life_days)
    return torch.as_tensor(w, dtype=torch.float32)


def good_degrees(data: HeteroData, half_life_days: float) -> tuple[Tensor, Tensor]:
    """(save count, recency-weighted save count) of every good, float32 [G] each (raw, so a batch can take
    its own supervision saves out before `degree_input`)."""
    n = data["good"].num_nodes
    if SAVES not in data.edge_types:
        return torch.zeros(n), torch.zeros(n)
    goods = data[SAVES].edge_index[1]
    counts = torch.zeros(n).index_add_(0, goods, torch.ones(len(goods)))
    return counts, torch.zeros(n).index_add_(0, goods, good_save_weights(data, half_life_days))


def degree_input(counts: Tensor, weighted: Tensor) -> Tensor:
    """The degree features of goods: float32 [n, DEGREE_FEATURES]."""
    return torch.stack([torch.log1p(counts.clamp(min=0)), torch.log1p(weighted.clamp(min=0))], dim=1)


def id_rows(train_goods: np.ndarray, num_goods: int, min_saves: int) -> Tensor:
    """Id row of each good: 1.. for goods with at least `min_saves` saves in `train_goods` (graph order),
    0 (the shared unknown row) for the rest; all 0 when min_saves <= 0. int64 [num_goods]."""
    rows = torch.zeros(num_goods, dtype=torch.long)
    if min_saves <= 0:
        return rows
    counts = np.bincount(np.asarray(train_goods, dtype=np.int64), minlength=num_goods)
    own = np.nonzero(counts >= min_saves)[0]
    rows[torch.as_tensor(own)] = torch.arange(1, len(own) + 1)
    return rows


class PinSageLite(torch.nn.Module):
    """Heterogeneous GraphSAGE over CLIP-space node features.

    Args:
        node_types: node types that may appear (e.g. ("user", "good", "collection", "domain")).
        edge_types: edge types used for message passing, each (src, rel, dst).
        feature_dim: width F of the input features (512 for CLIP).
        embedding_dim: width d of hidden layers and outputs.
        num_layers: message-passing rounds (match the sampler's number of hops).
        dropout: dropout on hidden states during training.
        num_train_goods: goods of the training graph (the length of the `id_row` buffer).
        num_ids: rows of the id embedding, row 0 the shared all-zero "unknown" row (<= 1: no id embedding).
        popularity_input: add a learned projection of the good's popularity (`good_degrees`).
        num_train_users: users of the training graph (the rows of the `user_basis` buffer).
        spectral_width: width k of the spectral input (`training.features.spectral_user_basis`; 0: none).

    forward(x_dict, edge_index_dict) -> dict of float32 [n_type, d] L2-normalised embeddings, where
    x_dict[type] is float32 [n_type, F] and edge_index_dict[edge_type] int64 [2, E] of local indices;
    good_rows int64 [n_good] (id row of each good, 0 unknown) and good_deg float32 [n_good, 2] (log1p
    popularity) feed the id embedding and the degree projection when the module has them.
    """

    id_row: Tensor  # buffer: training good index -> id row
    user_basis: Tensor  # buffer: training user index -> spectral basis row [num_train_users, spectral_width]

    def __init__(
        self,
        node_types: tuple[str, ...],
        edge_types: tuple[EdgeType, ...],
        feature_dim: int,
        embedding_dim: int,
        num_layers: int,
        dropout: float = 0.0,
        num_train_goods: int = 0,
        num_ids: int = 0,
        popularity_input: bool = False,
        num_train_users: int = 0,
        spectral_width: int = 0,
    ) -> None:
        super().__init__()
        self.node_types = tuple(node_types)
        self.edge_types = tuple(tuple(e) for e in edge_types)
        self.feature_dim = feature_dim
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.num_train_goods = num_train_goods
        self.num_ids = num_ids if num_ids > 1 else 0
        self.popularity_input = popularity_input
        self.num_train_users = num_train_users if spectral_width > 0 else 0
        self.spectral_width = spectral_width
        self.register_buffer("user_basis", torch.zeros(self.num_train_users, spectral_width))
        self.spec_proj = torch.nn.Linear(spectral_width, embedding_dim, bias=False) if spectral_width > 0 else None
        # Training good index -> id row (0: the shared unknown row); set by fit, loaded from checkpoints.
        self.register_buffer("id_row", torch.zeros(num_train_goods, dtype=torch.long))
        self.id_emb = torch.nn.Embedding(self.num_ids, embedding_dim, padding_idx=0) if self.num_ids else None
        self.deg_proj = torch.nn.Linear(DEGREE_FEATURES, embedding_dim, bias=False) if popularity_input else None
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
        # Zero at the start: the model begins as the content-only one and learns what ids and popularity add.
        if self.id_emb is not None:
            torch.nn.init.zeros_(self.id_emb.weight)
        if self.deg_proj is not None:
            torch.nn.init.zeros_(self.deg_proj.weight)
        if self.spec_proj is not None:
            torch.nn.init.zeros_(self.spec_proj.weight)

    def args(self) -> dict:
        """Constructor arguments, for checkpoints."""
        return {
            "node_types": list(self.node_types),
            "edge_types": [list(e) for e in self.edge_types],
            "feature_dim": self.feature_dim,
            "embedding_dim": self.embedding_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "num_train_goods": self.num_train_goods,
            "num_ids": self.num_ids,
            "popularity_input": self.popularity_input,
            "num_train_users": self.num_train_users,
            "spectral_width": self.spectral_width,
        }

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[EdgeType, Tensor],
        num_nodes_dict: dict[str, int] | None = None,
        good_rows: Tensor | None = None,
        good_deg: Tensor | None = None,
        spec_dict: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """x_dict: CLIP-space inputs per node type; types only in num_nodes_dict (e.g. collections,
        whose content arrives through their edges) start from their type's learned vector alone.
        spec_dict: spectral inputs float32 [n_type, k] (users, goods) when the module has them."""
        # proj(x) * scale == proj(x * scale) (no bias), without a scaled copy of x (2 GB for 1M goods).
        h = {t: self.proj(x) * self.input_scale + self.type_bias[t] for t, x in x_dict.items()}
        if self.spec_proj is not None and spec_dict is not None:
            scale = math.sqrt(self.spectral_width)
            for t, z in spec_dict.items():
                if t in h:
                    h[t] = h[t] + self.spec_proj(z * scale)
        if "good" in h:
            if self.id_emb is not None and good_rows is not None:
                h["good"] = h["good"] + self.id_emb(good_rows)
            if self.deg_proj is not None and good_deg is not None:
                h["good"] = h["good"] + self.deg_proj(good_deg)
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


# --- training batches ---


class _Batches:
    """Leak-free training batches of save links for PinSage-lite, drawn from the training graph."""

    def __init__(self, split: TimeSplit, cfg: TrainConfig, user_basis: Tensor | None = None) -> None:
        g = split.graph
        self.cfg = cfg
        self.num_goods = g["good"].num_nodes
        self.feats = node_features(g, cfg.recency_half_life_days)
        self.user_sums, self.user_totals = user_feature_sums(g, cfg.recency_half_life_days)
        # The same weights as the user features, aligned with the training saves in graph order.
        ei = g[SAVES].edge_index
        self.users, self.goods = ei[0], ei[1]
        self.weights = torch.as_tensor(
            recency_weights(ei[0].numpy(), g[SAVES].time.numpy(), g["user"].num_nodes, cfg.recency_half_life_days),
            dtype=torch.float32,
        )
        self.save_counts = torch.bincount(ei[0], minlength=g["user"].num_nodes)
        self.good_counts, self.good_weighted = good_degrees(g, cfg.recency_half_life_days)
        self.good_save_w = good_save_weights(g, cfg.recency_half_life_days)
        node_maps = {}
        if "collection" in g.node_types and "owner" in g["collection"]:
            node_maps["collection"] = torch.as_tensor(g["collection"].owner, dtype=torch.long)
        self.sampler = HeteroNeighborSampler(
            g, {e: list(cfg.fanouts) for e in g.edge_types}, seed=cfg.seed, node_maps=node_maps
        )
        self.domain_goods = _domain_index(g) if cfg.hard_negatives else None
        self.user_basis = user_basis
        if user_basis is not None:
            n_users = g["user"].num_nodes
            r = save_matrix(ei[0].numpy(), ei[1].numpy(), n_users, self.num_goods)
            du, dg = inv_sqrt_degrees(r)
            self.du = torch.as_tensor(du, dtype=torch.float32)
            self.dg = torch.as_tensor(dg, dtype=torch.float32)
            self.spec_good = spectral_good_features(
                ei[0].numpy(), ei[1].numpy(), n_users, self.num_goods, user_basis, torch.arange(n_users)
            )
            self.spec_user_sums = user_feature_sums(g, cfg.recency_half_life_days, self.spec_good)[0]
        self.generator = torch.Generator().manual_seed(cfg.seed)

    def __len__(self) -> int:
        return len(self.users)

    def epoch(self) -> Tensor:
        return torch.randperm(len(self.users), generator=self.generator)

    def batch(self, idx: Tensor) -> dict[str, Any]:
        """Inputs of one step for the save links `idx` (positions in the training saves)."""
        u, g, w = self.users[idx], self.goods[idx], self.weights[idx]
        neg = torch.randint(0, self.num_goods, (self.cfg.negatives,), generator=self.generator)
        extra = [neg]
        hard = None
        if self.domain_goods is not None:
            hard = _same_domain(self.domain_goods, g, self.generator)
            extra.append(hard)
        out, u_loc, g_loc, extra_loc = self.sampler.sample_links(u, g, SAVES, {"good": torch.cat(extra)})
        ids = out.node
        # The batch's own goods leave its users' features, like their edges leave the subgraph.
        s, tot = self.user_sums[ids["user"]], self.user_totals[ids["user"]]
        s.index_add_(0, u_loc, -w[:, None] * self.feats["good"][g])
        tot.index_add_(0, u_loc, -w)
        # The count, not the float total, says whether anything is left (no rounding residue).
        left = self.save_counts[ids["user"]].index_add_(0, u_loc, -torch.ones_like(u_loc))
        # Likewise the batch's own saves leave its goods' popularity.
        counts = self.good_counts[ids["good"]].index_add_(0, g_loc, -torch.ones(len(g_loc)))
        weighted = self.good_weighted[ids["good"]].index_add_(0, g_loc, -self.good_save_w[idx])
        x_dict = {
            "user": as_mean(s, torch.where(left > 0, tot, torch.zeros(()))),
            **{t: self.feats[t][ids[t]] for t in self.feats if t != "user"},
        }
        spec = None
        if self.user_basis is not None:
            # The batch's own saves leave the spectral inputs too: the user's mean, and the good's fold-in
            # (once per distinct pair: the save matrix is binary).
            su = self.spec_user_sums[ids["user"]].index_add_(0, u_loc, -w[:, None] * self.spec_good[g])
            sg = self.spec_good[ids["good"]]
            keys = u * self.num_goods + g
            uniq, inv = torch.unique(keys, return_inverse=True)
            first = torch.full((len(uniq),), len(keys), dtype=torch.long).scatter_reduce_(
                0, inv, torch.arange(len(keys)), reduce="amin"
            )
            fu, fg = u[first], g[first]
            sg.index_add_(0, g_loc[first], -(self.du[fu] * self.dg[fg])[:, None] * self.user_basis[fu])
            spec = {"user": as_mean(su, torch.where(left > 0, tot, torch.zeros(()))), "good": sg}
        edge_index = {e: torch.stack([out.row[e], out.col[e]]) for e in out.row}
        n_cand = int(torch.unique(torch.cat([g, *extra])).numel())  # seed goods come first
        neg_loc = extra_loc["good"][: len(neg)]
        log_q = None
        if self.cfg.logq_correction:
            # Chance of a candidate being drawn: in-batch positives by popularity, the random goods uniformly.
            counts_all = self.good_counts[ids["good"][:n_cand]]
            q = len(idx) * counts_all / max(len(self.users), 1) + len(neg) / self.num_goods
            log_q = torch.log(q.clamp(min=1e-12))
        hard_loc = extra_loc["good"][len(neg) :] if hard is not None else None
        return {
            "x": x_dict,
            "good_ids": ids["good"],
            "good_deg": degree_input(counts, weighted),
            "num_nodes": {t: v.numel() for t, v in ids.items()},
            "edge_index": edge_index,
            "u_loc": u_loc,
            "g_loc": g_loc,
            "u": u,
            "n_cand": n_cand,
            "neg_loc": neg_loc,
            "hard_loc": hard_loc,
            "log_q": log_q,
            "spec": spec,
        }


def _domain_index(g: HeteroData) -> tuple[Tensor, Tensor, Tensor]:
    """(domain per good, CSR ptr over domains, goods sorted by domain) for same-domain negatives."""
    dom = torch.as_tensor(g["good"].domain, dtype=torch.long)
    n_dom = int(dom.max()) + 1 if dom.numel() and int(dom.max()) >= 0 else 0
    order = torch.argsort(dom, stable=True)
    known = order[dom[order] >= 0]
    counts = torch.bincount(dom[known], minlength=n_dom)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
    return dom, ptr, known


def _same_domain(index: tuple[Tensor, Tensor, Tensor], goods: Tensor, generator: torch.Generator) -> Tensor:
    """A random good of each good's domain (a uniform random good when the domain is unknown)."""
    dom, ptr, members = index
    d = dom[goods]
    out = torch.randint(0, len(dom), (len(goods),), generator=generator)
    ok = d >= 0
    lo, hi = ptr[d[ok]], ptr[d[ok] + 1]
    r = torch.rand(int(ok.sum()), generator=generator)
    out[ok] = members[lo + (r * (hi - lo).to(torch.float32)).long().clamp(max=(hi - lo - 1).clamp(min=0))]
    return out


def _step_loss(model: PinSageLite, b: dict[str, Any], cfg: TrainConfig) -> Tensor:
    emb = model(b["x"], b["edge_index"], b["num_nodes"], model.id_row[b["good_ids"]], b["good_deg"], b["spec"])
    uv = emb["user"][b["u_loc"]]
    if cfg.loss == "softmax":
        cand = emb["good"][: b["n_cand"]]
        u, g_loc = b["u"], b["g_loc"]
        # Another positive of the same user in this batch is not a negative for it.
        same_user = (u[:, None] == u[None, :]) & (g_loc[:, None] != g_loc[None, :])
        mask = torch.zeros(len(u), b["n_cand"], dtype=torch.bool)
        rows, cols = same_user.nonzero(as_tuple=True)
        mask[rows, g_loc[cols]] = True
        return losses.sampled_softmax_loss(uv, cand, g_loc, mask, cfg.temperature, b["log_q"])
    neg_loc = b["hard_loc"] if b["hard_loc"] is not None else b["neg_loc"]
    if len(neg_loc) < len(uv):
        neg_loc = neg_loc.repeat(math.ceil(len(uv) / len(neg_loc)))
    return losses.bpr_loss(uv, emb["good"][b["g_loc"]], emb["good"][neg_loc[: len(uv)]], cfg.temperature)


def spectral_inputs(
    model: PinSageLite, data: HeteroData, half_life_days: float, user_rows: Tensor | None = None
) -> dict[str, Tensor] | None:
    """The spectral inputs of `data`'s users and goods (None when the module has none): goods folded in
    through their savers' basis rows, users the recency-weighted mean of their goods'. user_rows: int64 [U]
    training index of each user of `data` (-1: new); None when `data` is the training graph itself."""
    if model.spec_proj is None or SAVES not in data.edge_types:
        return None
    n_users, n_goods = data["user"].num_nodes, data["good"].num_nodes
    rows = torch.arange(n_users) if user_rows is None else user_rows
    rows = torch.where(rows < len(model.user_basis), rows, torch.full_like(rows, -1))
    ei = data[SAVES].edge_index.numpy()
    good = spectral_good_features(ei[0], ei[1], n_users, n_goods, model.user_basis, rows)
    return {"user": as_mean(*user_feature_sums(data, half_life_days, good)), "good": good}


def pinsage_vectors(
    model: PinSageLite,
    data: HeteroData,
    half_life_days: float,
    good_rows: Tensor | None = None,
    user_rows: Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Full-graph embeddings (all neighbors, no sampling): user_vecs [U, d], good_vecs [G, d], float32.

    good_rows: int64 [G] id row of each good of `data` (0: unknown); user_rows: int64 [U] training index of
    each user (-1: new); both None when `data` is the training graph itself."""
    spec = spectral_inputs(model, data, half_life_days, user_rows)
    x = node_features(data, half_life_days)
    edge_index = {e: data[e].edge_index for e in data.edge_types}
    num_nodes = {t: data[t].num_nodes for t in data.node_types}
    rows = model.id_row if good_rows is None else good_rows
    deg = degree_input(*good_degrees(data, half_life_days))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        emb = model(x, edge_index, num_nodes, rows, deg, spec)
    model.train(was_training)
    return emb["user"].numpy().astype(np.float32), emb["good"].numpy().astype(np.float32)


# --- the Model ---


def build_pinsage(model_args: dict[str, Any], state_dict: dict[str, Tensor] | None = None) -> PinSageLite:
    """The PinSageLite of a checkpoint's `model_args`, weights loaded when given, in eval mode."""
    a = model_args
    model = PinSageLite(
        node_types=tuple(a["node_types"]),
        edge_types=tuple(tuple(e) for e in a["edge_types"]),
        feature_dim=a["feature_dim"],
        embedding_dim=a["embedding_dim"],
        num_layers=a["num_layers"],
        dropout=a.get("dropout", 0.0),
        num_train_goods=a.get("num_train_goods", 0),
        num_ids=a.get("num_ids", 0),
        popularity_input=a.get("popularity_input", False),
        num_train_users=a.get("num_train_users", 0),
        spectral_width=a.get("spectral_width", 0),
    )
    if state_dict is not None:
        model.load_state_dict(state_dict)
    model.eval()
    return model


class PinSageModel:
    """PinSage-lite as a `training.models.base.Model`."""

    kind: ClassVar[str] = "pinsage"
    inductive: ClassVar[bool] = True
    what: ClassVar[str] = "PinSage-lite GNN on the user-good-collection-domain graph"

    def fit(self, split: TimeSplit, cfg: TrainConfig, *, progress: bool = False) -> Fitted:
        g = split.graph
        if len(cfg.fanouts) != cfg.num_layers:
            raise ValueError(f"train.fanouts has {len(cfg.fanouts)} hops but train.num_layers is {cfg.num_layers}")
        start = time.perf_counter()
        basis = None
        if cfg.spectral_dim > 0:
            basis = torch.from_numpy(
                spectral_user_basis(
                    split.train_users, split.train_goods, split.num_users, split.num_goods, cfg.spectral_dim, cfg.seed
                )
            )
        batches = _Batches(split, cfg, basis)
        rows = id_rows(split.train_goods, split.num_goods, cfg.id_min_saves)
        model = PinSageLite(
            node_types=tuple(g.node_types),
            edge_types=tuple(g.edge_types),
            feature_dim=int(g["good"].x.size(1)),
            embedding_dim=cfg.embedding_dim,
            num_layers=cfg.num_layers,
            num_train_goods=split.num_goods,
            num_ids=int(rows.max()) + 1 if rows.numel() else 0,
            popularity_input=cfg.degree_features,
            num_train_users=split.num_users,
            spectral_width=int(basis.size(1)) if basis is not None else 0,
        )
        model.id_row.copy_(rows)
        if basis is not None:
            model.user_basis.copy_(basis)
        log.info(
            "pinsage: %d of %d goods have their own id row (train.id_min_saves %d); degree features %s",
            model.num_ids - 1 if model.num_ids else 0,
            split.num_goods,
            cfg.id_min_saves,
            "on" if cfg.degree_features else "off",
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        full_steps = math.ceil(len(batches) / cfg.batch_size)
        steps = min(full_steps, cfg.steps_per_epoch) if cfg.steps_per_epoch > 0 else full_steps
        # Epochs of `steps` steps walk on through one permutation of the saves, drawing the next when it ends.
        perm, pos = batches.epoch(), 0

        def step_loss(epoch: int, step: int) -> tuple[Tensor, float]:
            nonlocal perm, pos
            if pos >= len(perm):
                perm, pos = batches.epoch(), 0
            idx = perm[pos : pos + cfg.batch_size]
            pos += cfg.batch_size
            return _step_loss(model, batches.batch(idx), cfg), 1.0

        def validate() -> float:
            return validation_metrics(*pinsage_vectors(model, g, cfg.recency_half_life_days), split)[VAL_METRIC]

        schedule = Schedule(cfg.max_epochs, steps, cfg.patience, cfg.time_budget_s)
        result = train_loop(
            "pinsage",
            model,
            optimizer,
            step_loss,
            schedule,
            validate=validate if split.has_validation else None,
            start=start,
            progress=progress,
        )
        assert result.best_state is not None
        figures = validation_metrics(*pinsage_vectors(model, g, cfg.recency_half_life_days), split)
        return Fitted(state_dict=result.best_state, model_args=model.args(), history=result.history, val=figures)

    def embed(self, trained: Trained, data: HeteroData, id_maps: IdMaps) -> Embeddings:
        model = build_pinsage(trained.meta.model_args, trained.state_dict)
        # Each good's id row through the checkpoint's id maps: new goods (and any beyond the buffer) get row 0.
        tidx = torch.as_tensor(training_index(trained, id_maps, "good"), dtype=torch.long)
        known = (tidx >= 0) & (tidx < len(model.id_row))
        rows = torch.zeros(len(tidx), dtype=torch.long)
        rows[known] = model.id_row[tidx[known]]
        users = torch.as_tensor(training_index(trained, id_maps, "user"), dtype=torch.long)
        user_vecs, good_vecs = pinsage_vectors(model, data, trained.meta.config.recency_half_life_days, rows, users)
        return embeddings(trained, id_maps, user_vecs, good_vecs)
