"""Fast CPU training of LightGCN (He et al., SIGIR 2020) on a bipartite user-good graph.

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
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.nn import LightGCN
from tqdm import tqdm

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
    :func:`spectral_embedding`) instead of small random vectors, so a few epochs go a long way.
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
        if self.temperature <= 0 or self.lr <= 0:
            raise ValueError("temperature and lr must be positive")


@dataclass
class LightGCNResult:
    """A trained LightGCN: ``model`` holds the best state (by ``validate``, else the last epoch).

    ``user_vecs`` [num_users, d] and ``good_vecs`` [num_goods, d] are float32 final propagated embeddings
    (L2-normalised when ``params.normalize``); score a (user_idx, good_idx) pair by their inner product.
    ``history`` has one dict per epoch: epoch, loss, val (None when not validated), seconds (cumulative).
    """

    model: LightGCN
    user_vecs: np.ndarray
    good_vecs: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float | None = None
    best_epoch: int | None = None
    train_s: float = 0.0


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


def spectral_embedding(adj: torch.Tensor, num_users: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Layer-0 embeddings [N, dim] from the top ``dim`` singular triplets (u, s, v) of the user-good block
    of ``adj`` (the normalised matrix R~): users get ``u * s^1/2``, goods ``v * s^1/2``.

    Each row pair [u; v] is an eigenvector of ``adj`` (eigenvalue s), so LightGCN's propagation only
    rescales these directions; rows are scaled to unit mean norm, the scale the optimiser expects.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import svds

    csr = adj.to_sparse_coo().coalesce()
    idx, val = csr.indices().numpy(), csr.values().numpy().astype(np.float64)
    n = adj.shape[0]
    keep = (idx[0] < num_users) & (idx[1] >= num_users)
    block = sp.csr_matrix((val[keep], (idx[0][keep], idx[1][keep] - num_users)), shape=(num_users, n - num_users))
    k = min(dim, min(block.shape) - 1)
    v0 = np.random.default_rng(seed).random(min(block.shape))
    u, s, vt = svds(block, k=k, v0=v0)
    emb = np.zeros((n, dim))
    emb[:num_users, :k] = u * np.sqrt(s)
    emb[num_users:, :k] = vt.T * np.sqrt(s)
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
            model.embedding.weight.copy_(spectral_embedding(adj, num_users, params.embedding_dim, params.seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    users_t = torch.as_tensor(user_idx)
    goods_t = torch.as_tensor(good_idx)
    n_edges = len(users_t)
    steps_per_epoch = math.ceil(n_edges / params.batch_size)

    history: list[dict[str, Any]] = []
    best_val: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    out_of_time = False

    epochs = tqdm(range(1, params.max_epochs + 1), desc="lightgcn", disable=not progress, unit="epoch")
    for epoch in epochs:
        model.train()
        perm = torch.randperm(n_edges, generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            batch = perm[step * params.batch_size : (step + 1) * params.batch_size]
            users, goods = users_t[batch], goods_t[batch]
            optimizer.zero_grad()
            emb = propagate(model, adj)
            if params.loss == "softmax":
                negatives = torch.randint(0, num_goods, (params.negatives,), generator=generator)
                loss = _softmax_loss(emb, users, goods, negatives, num_users, params)
                if params.weight_decay > 0:
                    node_id = torch.cat([users, num_users + goods, num_users + negatives]).unique()
                    loss = loss + params.weight_decay * model.embedding.weight[node_id].pow(2).sum() / len(users)
            else:
                loss = _bpr_loss(model, emb, users, goods, generator, num_users, num_goods, params)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {float(loss)} at epoch {epoch} step {step}")
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            if params.time_budget_s is not None and time.perf_counter() - start > params.time_budget_s:
                out_of_time = True
                break

        record: dict[str, Any] = {"epoch": epoch, "loss": total / n_edges, "val": None}
        if validate is not None and (epoch % params.validate_every == 0 or out_of_time):
            model.eval()
            with torch.no_grad():
                users_v, goods_v = _split_vectors(propagate(model, adj), num_users, cosine)
            val = float(validate(users_v, goods_v))
            record["val"] = val
            if best_val is None or val > best_val:
                best_val, best_epoch, stale = val, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        log.info(
            "lightgcn epoch %d loss %.4f val %s (%.0f s)",
            epoch,
            record["loss"],
            record["val"],
            record["seconds"],
        )
        epochs.set_postfix(loss=f"{record['loss']:.4f}", val=record["val"])
        if out_of_time:
            log.info("lightgcn: time budget of %.0f s reached at epoch %d", params.time_budget_s, epoch)
            break
        if validate is not None and stale >= params.patience:
            log.info("lightgcn: no validation gain for %d validations, stopping at epoch %d", stale, epoch)
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        user_vecs, good_vecs = _split_vectors(propagate(model, adj), num_users, cosine)
    return LightGCNResult(
        model=model,
        user_vecs=user_vecs,
        good_vecs=good_vecs,
        history=history,
        best_val=best_val,
        best_epoch=best_epoch,
        train_s=time.perf_counter() - start,
    )
