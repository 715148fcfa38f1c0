"""Train a model on a graph artifact: `fit` -> `Trained` -> `save_trained` (models/<version>/).

Validation is time-based: the newest `cfg.val_share` of the saves in the graph are held out, the model
trains on the graph as it was before them (every timed edge older than the cut), and early stopping
watches Recall@20 of the held-out saves, never ranking a user's training saves. The caller hands in a
graph built as of its own split time, so training never sees an evaluation window.

Two models:
- "pinsage": `training.pinsage.PinSageLite`, trained on user-saves-good links with neighbor sampling
  (`training.sampler.HeteroNeighborSampler`); losses BPR or sampled softmax (in-batch plus random goods,
  optionally hard negatives from the positive's domain).
- "lightgcn": `training.lightgcn.train_lightgcn` on the user-saves-good edges.

A save's weight in a user's representation decays with its age (`cfg.recency_half_life_days`, relative
to the user's newest save): it shapes PinSage-lite's user features and LightGCN's edge weights.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from tqdm import tqdm

from graphrec.core import metrics
from graphrec.core.artifacts import (
    IdMaps,
    current_model,
    load_checkpoint,
    load_graph,
    save_checkpoint,
    set_current_model,
)
from graphrec.core.config import TrainConfig
from training import losses
from training.lightgcn import LightGCNParams, LightGCNResult, train_lightgcn
from training.pinsage import PinSageLite, as_mean, node_features, recency_weights, user_feature_sums
from training.sampler import HeteroNeighborSampler

log = logging.getLogger(__name__)

SAVES = ("user", "saves", "good")
MODELS = ("pinsage", "lightgcn")
VAL_K = 20


class NonFiniteError(FloatingPointError):
    """NaN or Inf in the loss or gradients. `last_good_state` is the best state_dict validated before
    the failure (None if none was), so a caller can inspect it; nothing is saved by `fit`."""

    def __init__(self, message: str, epoch: int, step: int, last_good_state: dict[str, Tensor] | None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.last_good_state = last_good_state


@dataclass
class Trained:
    """A trained model and everything needed to score with it.

    kind: "pinsage" or "lightgcn"; version: unique name of its checkpoint directory; state_dict: tensors;
    meta: JSON-able dict with "model_args", "config" (the resolved TrainConfig), "graph_manifest",
    "val" (validation metrics), "history", "train_s"; id_maps: the id maps of the training graph.
    """

    kind: str
    version: str
    state_dict: dict[str, Tensor]
    meta: dict[str, Any]
    id_maps: IdMaps


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


def validation_metrics(user_vecs: np.ndarray, good_vecs: np.ndarray, split: TimeSplit) -> dict[str, float]:
    """Recall@20 and NDCG@20 of the held-out saves, ranking by inner product the goods that existed
    before the cut, training saves excluded."""
    if len(split.val_users) == 0:
        return {}
    good_t = np.ascontiguousarray(good_vecs, dtype=np.float32).T
    user_vecs = np.asarray(user_vecs, dtype=np.float32)
    not_yet = ~split.candidates

    def scores(users: np.ndarray) -> np.ndarray:
        out = user_vecs[users] @ good_t
        out[:, not_yet] = -np.inf
        return out

    picks = metrics.topk(scores, split.val_users, VAL_K, exclude=split.seen)
    return {
        f"recall@{VAL_K}": float(metrics.recall_at_k(picks, split.val_truth, VAL_K).mean()),
        f"ndcg@{VAL_K}": float(metrics.ndcg_at_k(picks, split.val_truth, VAL_K).mean()),
        "val_users": len(split.val_users),
    }


def check_inputs(data: HeteroData) -> None:
    """Fail early, naming the row, on inputs that would poison training."""
    x = data["good"].x
    bad = (~torch.isfinite(x).all(dim=1)).nonzero().view(-1)
    if bad.numel():
        raise ValueError(f"good_idx {int(bad[0])} (and {bad.numel() - 1} more) has non-finite CLIP features")
    if SAVES not in data.edge_types or "time" not in data[SAVES]:
        raise ValueError("the graph has no ('user', 'saves', 'good') edges with times")


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def new_version(kind: str) -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{kind}"


def fit(
    data: HeteroData, id_maps: IdMaps, manifest: dict[str, Any], cfg: TrainConfig, *, progress: bool = True
) -> Trained:
    """Train `cfg.model` on `data` with early stopping on the time-based validation window.

    data: a graph artifact's HeteroData; id_maps and manifest: the same artifact's. Raises
    NonFiniteError when the loss or a gradient stops being finite. Deterministic for `cfg.seed`.
    """
    if cfg.model not in MODELS:
        raise ValueError(f"train.model must be one of {MODELS}, got {cfg.model!r}")
    if cfg.loss not in ("bpr", "softmax"):
        raise ValueError(f"train.loss must be 'bpr' or 'softmax', got {cfg.loss!r}")
    if not 0 <= cfg.val_share < 1:
        raise ValueError(f"train.val_share must be in [0, 1), got {cfg.val_share}")
    check_inputs(data)
    start = time.perf_counter()
    seed_everything(cfg.seed)
    split = time_split(data, cfg.val_share)
    log.info(
        "training %s on %d saves; validating on %d users' %d newest saves",
        cfg.model,
        len(split.train_users),
        len(split.val_users),
        split.val_truth.nnz,
    )
    if cfg.model == "lightgcn":
        state, args, history, val = _fit_lightgcn(split, data, cfg, progress)
    else:
        state, args, history, val = _fit_pinsage(split, cfg, progress)
    train_s = time.perf_counter() - start
    meta = {
        "kind": cfg.model,
        "model_args": args,
        "config": dataclasses.asdict(cfg),
        "graph_manifest": manifest,
        "val": val,
        "val_cutoff": split.cutoff,
        "history": history,
        "train_s": train_s,
    }
    return Trained(kind=cfg.model, version=new_version(cfg.model), state_dict=state, meta=meta, id_maps=id_maps)


# --- LightGCN -------------------------------------------------------------------------------------------


def _fit_lightgcn(
    split: TimeSplit, data: HeteroData, cfg: TrainConfig, progress: bool
) -> tuple[dict[str, Tensor], dict[str, Any], list[dict[str, Any]], dict[str, float]]:
    num_users, num_goods = data["user"].num_nodes, data["good"].num_nodes
    params = LightGCNParams(
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
    weight = recency_weights(split.train_users, split.train_time, num_users, cfg.recency_half_life_days)
    try:
        result = _run_lightgcn(split, num_users, num_goods, params, weight, cfg, progress)
    except FloatingPointError as e:  # lightgcn names the epoch and step
        raise NonFiniteError(f"lightgcn: {e}; nothing saved", -1, -1, None) from e
    val = validation_metrics(result.user_vecs, result.good_vecs, split)
    state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    args = {
        "num_users": num_users,
        "num_goods": num_goods,
        "embedding_dim": params.embedding_dim,
        "num_layers": params.num_layers,
        "normalize": params.normalize,
    }
    return state, args, result.history, val


def _run_lightgcn(
    split: TimeSplit,
    num_users: int,
    num_goods: int,
    params: LightGCNParams,
    weight: np.ndarray,
    cfg: TrainConfig,
    progress: bool,
) -> LightGCNResult:
    has_val = len(split.val_users) > 0
    return train_lightgcn(
        split.train_users,
        split.train_goods,
        num_users,
        num_goods,
        params,
        edge_weight=weight if cfg.recency_half_life_days > 0 else None,
        validate=(lambda u, g: validation_metrics(u, g, split)[f"recall@{VAL_K}"]) if has_val else None,
        progress=progress,
    )


# --- PinSage-lite ---------------------------------------------------------------------------------------


class _Batches:
    """Leak-free training batches of save links for PinSage-lite, drawn from the training graph."""

    def __init__(self, split: TimeSplit, cfg: TrainConfig) -> None:
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
        node_maps = {}
        if "collection" in g.node_types and "owner" in g["collection"]:
            node_maps["collection"] = torch.as_tensor(g["collection"].owner, dtype=torch.long)
        self.sampler = HeteroNeighborSampler(
            g, {e: list(cfg.fanouts) for e in g.edge_types}, seed=cfg.seed, node_maps=node_maps
        )
        self.domain_goods = _domain_index(g) if cfg.hard_negatives else None
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
        x_dict = {
            "user": as_mean(s, torch.where(left > 0, tot, torch.zeros(()))),
            **{t: self.feats[t][ids[t]] for t in self.feats if t != "user"},
        }
        edge_index = {e: torch.stack([out.row[e], out.col[e]]) for e in out.row}
        n_cand = int(torch.unique(torch.cat([g, *extra])).numel())  # seed goods come first
        neg_loc = extra_loc["good"][: len(neg)]
        hard_loc = extra_loc["good"][len(neg) :] if hard is not None else None
        return {
            "x": x_dict,
            "num_nodes": {t: v.numel() for t, v in ids.items()},
            "edge_index": edge_index,
            "u_loc": u_loc,
            "g_loc": g_loc,
            "u": u,
            "n_cand": n_cand,
            "neg_loc": neg_loc,
            "hard_loc": hard_loc,
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
    emb = model(b["x"], b["edge_index"], b["num_nodes"])
    uv = emb["user"][b["u_loc"]]
    if cfg.loss == "softmax":
        cand = emb["good"][: b["n_cand"]]
        u, g_loc = b["u"], b["g_loc"]
        # Another positive of the same user in this batch is not a negative for it.
        same_user = (u[:, None] == u[None, :]) & (g_loc[:, None] != g_loc[None, :])
        mask = torch.zeros(len(u), b["n_cand"], dtype=torch.bool)
        rows, cols = same_user.nonzero(as_tuple=True)
        mask[rows, g_loc[cols]] = True
        return losses.sampled_softmax_loss(uv, cand, g_loc, mask, cfg.temperature)
    neg_loc = b["hard_loc"] if b["hard_loc"] is not None else b["neg_loc"]
    if len(neg_loc) < len(uv):
        neg_loc = neg_loc.repeat(math.ceil(len(uv) / len(neg_loc)))
    return losses.bpr_loss(uv, emb["good"][b["g_loc"]], emb["good"][neg_loc[: len(uv)]], cfg.temperature)


def pinsage_vectors(model: PinSageLite, data: HeteroData, half_life_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Full-graph embeddings (all neighbors, no sampling): user_vecs [U, d], good_vecs [G, d], float32."""
    x = node_features(data, half_life_days)
    edge_index = {e: data[e].edge_index for e in data.edge_types}
    num_nodes = {t: data[t].num_nodes for t in data.node_types}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        emb = model(x, edge_index, num_nodes)
    model.train(was_training)
    return emb["user"].numpy().astype(np.float32), emb["good"].numpy().astype(np.float32)


def _fit_pinsage(
    split: TimeSplit, cfg: TrainConfig, progress: bool
) -> tuple[dict[str, Tensor], dict[str, Any], list[dict[str, Any]], dict[str, float]]:
    g = split.graph
    if len(cfg.fanouts) != cfg.num_layers:
        raise ValueError(f"train.fanouts has {len(cfg.fanouts)} hops but train.num_layers is {cfg.num_layers}")
    start = time.perf_counter()
    batches = _Batches(split, cfg)
    model = PinSageLite(
        node_types=tuple(g.node_types),
        edge_types=tuple(g.edge_types),
        feature_dim=int(g["good"].x.size(1)),
        embedding_dim=cfg.embedding_dim,
        num_layers=cfg.num_layers,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    full_steps = math.ceil(len(batches) / cfg.batch_size)
    steps = min(full_steps, cfg.steps_per_epoch) if cfg.steps_per_epoch > 0 else full_steps
    has_val = len(split.val_users) > 0
    history: list[dict[str, Any]] = []
    best_val, best_state, stale = -1.0, None, 0
    bar = tqdm(total=cfg.max_epochs * steps, desc="pinsage", disable=not progress, unit="step")
    perm, pos = batches.epoch(), 0
    out_of_time = False
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        total = 0.0
        for step in range(steps):
            if pos >= len(perm):
                perm, pos = batches.epoch(), 0
            idx = perm[pos : pos + cfg.batch_size]
            pos += cfg.batch_size
            loss = _step_loss(model, batches.batch(idx), cfg)
            if not torch.isfinite(loss):
                bar.close()
                raise NonFiniteError(
                    f"pinsage: loss is {float(loss)} at epoch {epoch} step {step}; "
                    "keeping the last good state, nothing saved",
                    epoch,
                    step,
                    best_state,
                )
            optimizer.zero_grad()
            loss.backward()
            bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
            if bad:
                bar.close()
                raise NonFiniteError(
                    f"pinsage: non-finite gradient of {bad[0]} at epoch {epoch} step {step}; "
                    "keeping the last good state, nothing saved",
                    epoch,
                    step,
                    best_state,
                )
            optimizer.step()
            total += float(loss.detach())
            bar.update(1)
            bar.set_postfix(
                epoch=epoch,
                loss=f"{float(loss.detach()):.4f}",
                val=f"{best_val:.4f}" if best_val >= 0 else "-",
            )
            if time.perf_counter() - start > cfg.time_budget_s:
                out_of_time = True
                break
        record: dict[str, Any] = {"epoch": epoch, "loss": total / max(step + 1, 1), "val": None}
        if has_val:
            users_v, goods_v = pinsage_vectors(model, g, cfg.recency_half_life_days)
            val = validation_metrics(users_v, goods_v, split)[f"recall@{VAL_K}"]
            record["val"] = val
            if val > best_val:
                best_val, stale = val, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        else:
            best_state = copy.deepcopy(model.state_dict())
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        log.info(
            "pinsage epoch %d loss %.4f val %s (%.0f s)",
            epoch,
            record["loss"],
            record["val"],
            record["seconds"],
        )
        if out_of_time:
            log.info("pinsage: time budget of %.0f s reached at epoch %d", cfg.time_budget_s, epoch)
            break
        if has_val and stale >= cfg.patience:
            log.info("pinsage: no validation gain for %d epochs, stopping at epoch %d", stale, epoch)
            break
    bar.close()
    assert best_state is not None
    model.load_state_dict(best_state)
    users_v, goods_v = pinsage_vectors(model, g, cfg.recency_half_life_days)
    figures = validation_metrics(users_v, goods_v, split)
    args = model.args()
    args["recency_half_life_days"] = cfg.recency_half_life_days
    return best_state, args, history, figures


# --- checkpoints ----------------------------------------------------------------------------------------


def save_trained(trained: Trained, models_dir: Path) -> Path:
    """Write models/<version>/ atomically (weights, checkpoint.json, id maps); never touches CURRENT."""
    meta = dict(trained.meta, kind=trained.kind, version=trained.version)
    return save_checkpoint(Path(models_dir), trained.version, trained.state_dict, meta, trained.id_maps)


def load_trained(checkpoint_dir: Path) -> Trained:
    state, meta, id_maps = load_checkpoint(Path(checkpoint_dir))
    return Trained(kind=meta["kind"], version=meta["version"], state_dict=state, meta=meta, id_maps=id_maps)


def build_pinsage(trained: Trained) -> PinSageLite:
    """The PinSageLite of a checkpoint, weights loaded, in eval mode."""
    a = trained.meta["model_args"]
    model = PinSageLite(
        node_types=tuple(a["node_types"]),
        edge_types=tuple(tuple(e) for e in a["edge_types"]),
        feature_dim=a["feature_dim"],
        embedding_dim=a["embedding_dim"],
        num_layers=a["num_layers"],
        dropout=a.get("dropout", 0.0),
    )
    model.load_state_dict(trained.state_dict)
    model.eval()
    return model


@dataclass(frozen=True)
class TrainRun:
    """What `train_graph` did: the checkpoint written and whether it became CURRENT."""

    trained: Trained
    checkpoint: Path
    promoted: bool


def train_graph(graph_dir: Path, models: Path, cfg: TrainConfig, *, promote: bool | None, progress: bool) -> TrainRun:
    """Train on a graph artifact, write the checkpoint, and point models/CURRENT at it when asked.

    promote None: only when no CURRENT exists yet. CURRENT moves only after the checkpoint is complete on
    disk, so a failed run leaves the model in use untouched.
    """
    data, id_maps, manifest = load_graph(Path(graph_dir))
    manifest = dict(manifest, path=str(graph_dir))
    trained = fit(data, id_maps, manifest, cfg, progress=progress)
    checkpoint = save_trained(trained, models)
    if promote is None:
        promote = current_model(models) is None
    if promote:
        set_current_model(models, trained.version)
    return TrainRun(trained=trained, checkpoint=checkpoint, promoted=promote)
