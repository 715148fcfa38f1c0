"""LightGCN (He et al., SIGIR 2020) on the user-good saves: fast CPU training on arrays, and its Model.

The model is :class:`torch_geometric.nn.LightGCN` over ``num_users + num_goods`` nodes (user ``u`` is node
``u``, good ``g`` is node ``num_users + g``). Training differs from PyG's example recipe only in how it gets
there quickly on a CPU:

- the symmetric normalised adjacency ``D^-1/2 A D^-1/2`` (the same one :class:`LGConv` builds with
  ``gcn_norm``) is precomputed once as a sparse CSR matrix, and each step propagates the whole graph with
  ``num_layers`` sparse-dense products (the backward pass is the same product, as the matrix is symmetric);
- large batches with a sampled-softmax loss (in-batch goods plus shared uniform random goods as negatives,
  cosine similarity over a temperature), which converges in a few epochs where BPR needs hundreds;
- optional per-edge weights (e.g. recency), which enter the normalised adjacency;
- early stopping on a caller-supplied ``validate(user_vecs, good_vecs) -> float``, a time budget, and
  deterministic results for a seed.

``loss="bpr"`` keeps PyG's BPR loss (:meth:`LightGCN.recommendation_loss`) with one random negative per
positive, on the same fast propagation.

:func:`train_lightgcn` works on arrays of graph indices (public data sets use it directly);
:class:`LightGCNModel` is the ``training.models.base.Model`` that trains it on a graph artifact's saves
(recency-weighted edges) and embeds a newer graph by database id. LightGCN is transductive: goods it never saw
stay zero rows.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.nn import LightGCN

from graphrec.core.artifacts import SAVES, Embeddings, IdMaps
from graphrec.core.config import TrainConfig
from training.checkpoint import Trained
from training.features import recency_weights
from training.loop import Schedule, TrainedVectors, train_loop
from training.models.base import Fitted, embeddings, training_index
from training.split import VAL_METRIC, TimeSplit, validation_metrics

log = logging.getLogger(__name__)

Validate = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class LightGCNParams:
    """Hyperparameters of :func:`train_lightgcn`.

    ``negatives`` is the number of uniform random goods shared by a batch as negatives (softmax), with
    the batch's first ``in_batch_negatives`` positives, or the number of random negatives per positive
    (BPR). ``temperature`` scales cosine similarities in the
    softmax loss; with ``normalize`` the returned vectors are L2-normalised so their inner product is the
    trained score. ``weight_decay`` is the L2 penalty on the batch's layer-0 embeddings (PyG's
    ``lambda_reg``). ``time_budget_s`` bounds the training wall time (checked after each step).
    ``init="spectral"`` starts from the top singular vectors of the normalised user-good matrix (see
    :func:`spectral_embedding`, with ``spectral_power`` and ``spectral_degree_power``) instead of small random
    vectors, so a few epochs go a long way. ``lr_decay_steps`` > 0 decays the step size from ``lr`` towards zero
    along a half cosine over that many steps (counted across epochs) and ends training after them (a step
    at zero would change nothing); 0 keeps it flat.
    """

    embedding_dim: int = 64
    num_layers: int = 3
    loss: str = "softmax"
    lr: float = 5e-3
    batch_size: int = 32768
    negatives: int = 1024
    in_batch_negatives: int = 1024
    temperature: float = 0.1
    normalize: bool = True
    weight_decay: float = 0.0
    max_epochs: int = 30
    patience: int = 3
    validate_every: int = 1
    time_budget_s: float | None = None
    seed: int = 0
    init: str = "normal"
    spectral_power: float = 1.0
    spectral_degree_power: float = 0.0
    lr_decay_steps: int = 0

    @property
    def cosine(self) -> bool:
        """Whether scores are cosines (softmax with ``normalize``), so vectors are returned L2-normalised;
        BPR scores are raw inner products."""
        return self.loss == "softmax" and self.normalize

    def __post_init__(self) -> None:
        if self.init not in ("normal", "spectral"):
            raise ValueError(f"init must be 'normal' or 'spectral', got {self.init!r}")
        if self.loss not in ("bpr", "softmax"):
            raise ValueError(f"loss must be 'bpr' or 'softmax', got {self.loss!r}")
        if self.embedding_dim < 1 or self.num_layers < 0 or self.batch_size < 1 or self.negatives < 1:
            raise ValueError(f"invalid LightGCNParams: {self}")
        if self.lr_decay_steps < 0:
            raise ValueError(f"lr_decay_steps must be at least 0, got {self.lr_decay_steps}")
        if self.temperature <= 0 or self.lr <= 0:
            raise ValueError("temperature and lr must be positive")


@dataclass
class LightGCNResult(TrainedVectors[LightGCN]):
    """A trained LightGCN: ``model`` holds the best state (by ``validate``, else the last epoch).

    ``user_vecs`` [num_users, d] and ``good_vecs`` [num_goods, d] are float32 final propagated embeddings
    (L2-normalised when ``params.normalize``); score a (user_idx, good_idx) pair by their inner product.
    ``history`` has one dict per epoch: epoch, loss, val (None when not validated), seconds (cumulative).
    """


def normalized_adjacency(
    user_idx: np.ndarray,
    good_idx: np.ndarray,
    num_users: int,
    num_goods: int,
    edge_weight: np.ndarray | None = None,
) -> torch.Tensor:
    """Symmetric ``D^-1/2 A D^-1/2`` of the bipartite graph as a float32 sparse CSR [N, N], N = U + G.

    Equals what :func:`torch_geometric.nn.conv.gcn_norm` gives (no self loops) for the undirected edge list
    with the same weights; duplicate (user, good) pairs add up.
    """
    n = num_users + num_goods
    u = torch.as_tensor(np.asarray(user_idx, dtype=np.int64))
    g = torch.as_tensor(np.asarray(good_idx, dtype=np.int64)) + num_users
    w = (
        torch.ones(len(u), dtype=torch.float64)
        if edge_weight is None
        else torch.as_tensor(np.asarray(edge_weight, dtype=np.float64))
    )
    row = torch.cat([u, g])
    col = torch.cat([g, u])
    val = torch.cat([w, w])
    deg = torch.zeros(n, dtype=torch.float64).index_add_(0, row, val)
    dinv = deg.pow(-0.5)
    dinv[torch.isinf(dinv)] = 0.0
    val = dinv[row] * val * dinv[col]
    coo = torch.sparse_coo_tensor(torch.stack([row, col]), val.float(), (n, n), check_invariants=False).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


def spectral_embedding(
    adj: torch.Tensor, num_users: int, dim: int, seed: int = 0, *, power: float = 1.0, degree_power: float = 0.0
) -> torch.Tensor:
    """Layer-0 embeddings [N, dim] from the top ``dim`` singular triplets (u, s, v) of the user-good block
    of ``adj`` (the normalised matrix R~, by :func:`training.graph_filter.randomized_vt`): users get
    ``u * s^(power/2)``, goods ``v * s^(power/2) * d^degree_power`` (d the good's degree, at least 1).

    Each row pair [u; v] is an eigenvector of ``adj`` (eigenvalue s), so with ``degree_power`` 0 LightGCN's
    propagation only rescales these directions and the initial scores are a low-pass filter of R~;
    ``degree_power`` > 0 lets popular goods score higher, as GF-CF's ideal pass does with d^1/2. Rows are
    scaled to unit mean norm, the scale the optimiser expects.
    """
    import scipy.sparse as sp

    from training.graph_filter import randomized_vt

    csr = adj.to_sparse_coo().coalesce()
    idx, val = csr.indices().numpy(), csr.values().numpy().astype(np.float64)
    n = adj.shape[0]
    keep = (idx[0] < num_users) & (idx[1] >= num_users)
    block = sp.csr_matrix((val[keep], (idx[0][keep], idx[1][keep] - num_users)), shape=(num_users, n - num_users))
    k = min(dim, min(block.shape) - 1)
    s, vt = randomized_vt(block, k, seed=seed)
    v = vt.T
    u = (block @ v) / np.where(s > 0, s, 1.0)
    degree = np.maximum(np.diff(block.tocsc().indptr), 1).astype(np.float64)
    emb = np.zeros((n, dim))
    emb[:num_users, :k] = u * s ** (power / 2)
    emb[num_users:, :k] = v * s ** (power / 2) * (degree**degree_power)[:, None]
    emb /= max(float(np.linalg.norm(emb, axis=1).mean()), 1e-12)
    return torch.from_numpy(emb.astype(np.float32))


class _SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj``; the gradient is ``adj @ grad`` (no transpose needed)."""

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.adj @ grad


def propagate(model: LightGCN, adj: torch.Tensor) -> torch.Tensor:
    """LightGCN's final embeddings [N, d]: ``sum_l alpha_l adj^l E0``, as ``model.get_embedding`` computes."""
    x = model.embedding.weight
    out = x * model.alpha[0]
    for layer in range(model.num_layers):
        x = _SymmetricSpMM.apply(adj, x)
        out = out + x * model.alpha[layer + 1]
    return out


def _split_vectors(emb: torch.Tensor, num_users: int, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    if normalize:
        emb = F.normalize(emb, dim=1)
    arr = emb.detach().numpy().astype(np.float32, copy=True)
    return arr[:num_users], arr[num_users:]


def _softmax_loss(
    emb: torch.Tensor,
    users: torch.Tensor,
    goods: torch.Tensor,
    negatives: torch.Tensor,
    num_users: int,
    params: LightGCNParams,
) -> torch.Tensor:
    """Sampled softmax: each positive against a pool of goods shared by the batch (cosine / temperature).

    The pool is the batch's first ``params.in_batch_negatives`` positive goods (a popularity-weighted
    sample, as the batch is a random draw of edges) plus ``negatives`` (uniform).
    """
    pool = torch.cat([goods[: params.in_batch_negatives], negatives])
    u = emb[users]
    p = emb[num_users + goods]
    n = emb[num_users + pool]
    if params.normalize:
        u, p, n = F.normalize(u, dim=1), F.normalize(p, dim=1), F.normalize(n, dim=1)
    u = u / params.temperature
    pos = (u * p).sum(1)
    # Elementwise passes over the [B, pool] logits dominate on a CPU, so no mask and no concatenation:
    # a pool entry that happens to be the row's own positive is a rare, harmless extra term.
    lse = torch.logaddexp(pos, torch.logsumexp(u @ n.t(), dim=1))
    return (lse - pos).mean()


def _bpr_loss(
    model: LightGCN,
    emb: torch.Tensor,
    users: torch.Tensor,
    goods: torch.Tensor,
    generator: torch.Generator,
    num_users: int,
    num_goods: int,
    params: LightGCNParams,
) -> torch.Tensor:
    users = users.repeat(params.negatives)
    goods = goods.repeat(params.negatives)
    neg = torch.randint(0, num_goods, (len(users),), generator=generator)
    pos_rank = (emb[users] * emb[num_users + goods]).sum(-1)
    neg_rank = (emb[users] * emb[num_users + neg]).sum(-1)
    node_id = torch.cat([users, num_users + goods, num_users + neg]).unique()
    return model.recommendation_loss(pos_rank, neg_rank, node_id=node_id, lambda_reg=params.weight_decay)


def train_lightgcn(
    user_idx: np.ndarray,
    good_idx: np.ndarray,
    num_users: int,
    num_goods: int,
    params: LightGCNParams,
    *,
    edge_weight: np.ndarray | None = None,
    validate: Validate | None = None,
    progress: bool = False,
) -> LightGCNResult:
    """Train LightGCN on the save edges (``user_idx[e]`` saved ``good_idx[e]``) and return the best model.

    Inputs are graph indices (rows of the user and good tables), not database ids. ``edge_weight`` [E] > 0
    weights each edge in the propagation (e.g. recency). ``validate(user_vecs, good_vecs)`` (higher is
    better) runs every ``params.validate_every`` epochs; training stops after ``params.patience``
    validations without improvement, at ``params.max_epochs``, or when ``params.time_budget_s`` runs out,
    and the best validated state is kept. Same inputs and seed give the same result.
    """
    user_idx = np.asarray(user_idx, dtype=np.int64)
    good_idx = np.asarray(good_idx, dtype=np.int64)
    if user_idx.shape != good_idx.shape or user_idx.ndim != 1:
        raise ValueError("user_idx and good_idx must be 1-d arrays of the same length")
    if len(user_idx) == 0:
        raise ValueError("no training edges")
    if user_idx.min() < 0 or user_idx.max() >= num_users:
        raise ValueError(f"user_idx out of range [0, {num_users})")
    if good_idx.min() < 0 or good_idx.max() >= num_goods:
        raise ValueError(f"good_idx out of range [0, {num_goods})")
    if edge_weight is not None:
        edge_weight = np.asarray(edge_weight, dtype=np.float64)
        if edge_weight.shape != user_idx.shape or not np.all(np.isfinite(edge_weight)) or (edge_weight <= 0).any():
            raise ValueError("edge_weight must be finite, positive and one per edge")

    start = time.perf_counter()
    cosine = params.cosine
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    model = LightGCN(num_users + num_goods, params.embedding_dim, params.num_layers)
    if params.loss == "softmax":
        # Small init: cosine scores do not care about scale, and small vectors learn directions faster.
        torch.nn.init.normal_(model.embedding.weight, std=0.1)
    adj = normalized_adjacency(user_idx, good_idx, num_users, num_goods, edge_weight)
    if params.init == "spectral":
        with torch.no_grad():
            model.embedding.weight.copy_(
                spectral_embedding(
                    adj,
                    num_users,
                    params.embedding_dim,
                    params.seed,
                    power=params.spectral_power,
                    degree_power=params.spectral_degree_power,
                )
            )
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    users_t = torch.as_tensor(user_idx)
    goods_t = torch.as_tensor(good_idx)
    n_edges = len(users_t)
    steps_per_epoch = math.ceil(n_edges / params.batch_size)

    # Each epoch is one pass over a fresh permutation of the edges, drawn at its first step.
    perm = torch.empty(0, dtype=torch.long)

    def step_loss(epoch: int, step: int) -> tuple[Tensor, float]:
        nonlocal perm
        if step == 0:
            perm = torch.randperm(n_edges, generator=generator)
        if params.lr_decay_steps:
            done = min((epoch - 1) * steps_per_epoch + step, params.lr_decay_steps)
            for group in optimizer.param_groups:
                group["lr"] = params.lr * 0.5 * (1.0 + math.cos(math.pi * done / params.lr_decay_steps))
        batch = perm[step * params.batch_size : (step + 1) * params.batch_size]
        users, goods = users_t[batch], goods_t[batch]
        emb = propagate(model, adj)
        if params.loss == "softmax":
            negatives = torch.randint(0, num_goods, (params.negatives,), generator=generator)
            loss = _softmax_loss(emb, users, goods, negatives, num_users, params)
            if params.weight_decay > 0:
                node_id = torch.cat([users, num_users + goods, num_users + negatives]).unique()
                loss = loss + params.weight_decay * model.embedding.weight[node_id].pow(2).sum() / len(users)
        else:
            loss = _bpr_loss(model, emb, users, goods, generator, num_users, num_goods, params)
        return loss, float(len(batch))

    def validate_now() -> float:
        assert validate is not None
        return float(validate(*_split_vectors(propagate(model, adj), num_users, cosine)))

    schedule = Schedule(
        max_epochs=params.max_epochs,
        steps_per_epoch=steps_per_epoch,
        patience=params.patience,
        time_budget_s=params.time_budget_s,
        validate_every=params.validate_every,
        max_steps=params.lr_decay_steps or None,
    )
    loop = train_loop(
        "lightgcn",
        model,
        optimizer,
        step_loss,
        schedule,
        validate=validate_now if validate is not None else None,
        start=start,
        progress=progress,
    )
    with torch.no_grad():
        user_vecs, good_vecs = _split_vectors(propagate(model, adj), num_users, cosine)
    return LightGCNResult.of_loop(model, user_vecs, good_vecs, loop, start)


# --- the Model ---


def lightgcn_params(cfg: TrainConfig) -> LightGCNParams:
    """The LightGCNParams of `graphrec train`'s settings (LightGCN wants its own, much larger batches)."""
    return LightGCNParams(
        embedding_dim=cfg.embedding_dim,
        num_layers=cfg.num_layers,
        loss=cfg.loss,
        lr=cfg.lr,
        batch_size=cfg.lightgcn_batch_size,
        negatives=1 if cfg.loss == "bpr" else max(cfg.negatives, cfg.lightgcn_batch_size),
        temperature=cfg.temperature,
        weight_decay=cfg.weight_decay,
        max_epochs=cfg.max_epochs,
        patience=cfg.patience,
        time_budget_s=cfg.time_budget_s,
        seed=cfg.seed,
    )


def _edge_weights(users: np.ndarray, times: np.ndarray, num_users: int, half_life_days: float) -> np.ndarray | None:
    """Recency weights of the save edges, None when there is no decay (plain LightGCN)."""
    return recency_weights(users, times, num_users, half_life_days) if half_life_days > 0 else None


class LightGCNModel:
    """LightGCN as a `training.models.base.Model`, trained on the user-saves-good edges."""

    kind: ClassVar[str] = "lightgcn"
    inductive: ClassVar[bool] = False
    what: ClassVar[str] = "LightGCN on the user-good saves"

    def fit(self, split: TimeSplit, cfg: TrainConfig, *, progress: bool = False) -> Fitted:
        num_users, num_goods = split.num_users, split.num_goods
        params = lightgcn_params(cfg)
        result = train_lightgcn(
            split.train_users,
            split.train_goods,
            num_users,
            num_goods,
            params,
            edge_weight=_edge_weights(split.train_users, split.train_time, num_users, cfg.recency_half_life_days),
            validate=(lambda u, g: validation_metrics(u, g, split)[VAL_METRIC]) if split.has_validation else None,
            progress=progress,
        )
        args = {
            "num_users": num_users,
            "num_goods": num_goods,
            "embedding_dim": params.embedding_dim,
            "num_layers": params.num_layers,
            "normalize": params.normalize,
        }
        state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
        val = validation_metrics(result.user_vecs, result.good_vecs, split)
        return Fitted(state_dict=state, model_args=args, history=result.history, val=val)

    def embed(self, trained: Trained, data: HeteroData, id_maps: IdMaps) -> Embeddings:
        """The learned layer-0 vectors matched to `data` by database id and propagated over its saves (so
        recent saves still shape the user vectors); goods it never saw stay zero rows."""
        a = trained.meta.model_args
        old = LightGCN(a["num_users"] + a["num_goods"], a["embedding_dim"], a["num_layers"])
        old.load_state_dict(trained.state_dict)
        base = old.embedding.weight.detach()
        num_users, num_goods = data["user"].num_nodes, data["good"].num_nodes
        train_user = training_index(trained, id_maps, "user")
        train_good = training_index(trained, id_maps, "good")
        model = LightGCN(num_users + num_goods, a["embedding_dim"], a["num_layers"])
        with torch.no_grad():
            weight = torch.zeros(num_users + num_goods, a["embedding_dim"])
            ku, kg = np.nonzero(train_user >= 0)[0], np.nonzero(train_good >= 0)[0]
            weight[torch.as_tensor(ku)] = base[torch.as_tensor(train_user[ku])]
            weight[torch.as_tensor(num_users + kg)] = base[torch.as_tensor(a["num_users"] + train_good[kg])]
            model.embedding.weight.copy_(weight)
            ei = data[SAVES].edge_index.numpy()
            half_life = trained.meta.config.recency_half_life_days  # the same edge weights as in training
            edge_weight = _edge_weights(ei[0], data[SAVES].time.numpy(), num_users, half_life)
            emb = propagate(model, normalized_adjacency(ei[0], ei[1], num_users, num_goods, edge_weight))
            if a.get("normalize", True):
                emb = F.normalize(emb, dim=1)
        user_vecs = emb[:num_users].numpy()
        good_vecs = emb[num_users:].numpy().copy()
        good_vecs[train_good < 0] = 0.0
        return embeddings(trained, id_maps, user_vecs, good_vecs)
