"""CLIP-space node features for the models: recency weights of saves and (weighted) mean features per node.

A save's weight in a user's representation decays with its age relative to the user's newest save
(`TrainConfig.recency_half_life_days`): it shapes PinSage-lite's user features and LightGCN's edge weights.
Everything is in graph indices of the HeteroData handed in.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
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
    owner_t = torch.as_tensor(owner, dtype=torch.long)
    totals = torch.zeros(num_owners).index_add_(0, owner_t, w)
    # A sparse [owners, goods] weight matrix times the features: gathering good_x per edge first would hold
    # an [E, F] copy (3 GB per call for 1.5M saves of 512-wide CLIP vectors).
    mat = sp.csr_matrix(
        (w.numpy(), (np.asarray(owner, dtype=np.int64), np.asarray(good, dtype=np.int64))),
        shape=(num_owners, good_x.size(0)),
    )
    sums = mat @ np.ascontiguousarray(good_x.numpy(), dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(sums, dtype=np.float32)), totals


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


def user_feature_sums(data: HeteroData, half_life_days: float, good_x: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Recency-weighted sums of each user's saved goods' CLIP vectors (or of `good_x`, float32 [G, F'])
    and the weight totals."""
    x = data["good"].x.float() if good_x is None else good_x
    num_users = data["user"].num_nodes
    if SAVES not in data.edge_types:
        return torch.zeros(num_users, x.size(1)), torch.zeros(num_users)
    ei = data[SAVES].edge_index.numpy()
    t = data[SAVES].time.numpy() if "time" in data[SAVES] else np.zeros(ei.shape[1], dtype=np.int64)
    w = recency_weights(ei[0], t, num_users, half_life_days)
    return weighted_mean_features(ei[0], ei[1], w, num_users, x)


def save_matrix(users: np.ndarray, goods: np.ndarray, num_users: int, num_goods: int) -> sp.csr_matrix:
    """Binary user x good save matrix (a re-save counts once), float64 [U, G]."""
    r = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float64), (np.asarray(users, np.int64), np.asarray(goods, np.int64))),
        shape=(num_users, num_goods),
    )
    r.sum_duplicates()
    r.data[:] = 1.0
    return r


def inv_sqrt_degrees(r: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """D^-1/2 of the users and of the goods of a save matrix, float64 [U] and [G] (0 without saves)."""
    du, dg = np.asarray(r.sum(axis=1)).ravel(), np.asarray(r.sum(axis=0)).ravel()
    with np.errstate(divide="ignore"):
        return np.where(du > 0, du**-0.5, 0.0), np.where(dg > 0, dg**-0.5, 0.0)


def spectral_user_basis(
    users: np.ndarray, goods: np.ndarray, num_users: int, num_goods: int, k: int, seed: int
) -> np.ndarray:
    """The users' side of a rank-k SVD of the degree-normalised save matrix R~ = D_U^-1/2 R D_G^-1/2 (the
    matrix GF-CF filters): float32 [U, k], row u = c * U_u / sigma, so that folding a good in through its
    savers (`spectral_good_features`) gives back c times its right singular vector row. c makes the rows of
    the goods with saves unit-norm on average. users/goods: int64 [E] saves in graph indices.
    Deterministic for `seed` (ARPACK's start vector)."""
    r = save_matrix(users, goods, num_users, num_goods)
    du, dg = inv_sqrt_degrees(r)
    norm = sp.diags(du) @ r @ sp.diags(dg)
    k = min(k, min(norm.shape) - 1)
    if k <= 0 or norm.nnz == 0:
        return np.zeros((num_users, max(k, 0)), dtype=np.float32)
    v0 = np.random.default_rng(seed).random(min(norm.shape))
    u, sigma, _ = sp.linalg.svds(norm, k=k, v0=v0)
    order = np.argsort(sigma)[::-1]
    u, sigma = u[:, order], sigma[order]
    ok = sigma > 1e-8
    u[:, ~ok], sigma[~ok] = 0.0, 1.0
    c = np.sqrt(max(int((dg > 0).sum()), 1) / k)
    return (u * (c / sigma)).astype(np.float32)


def spectral_good_features(
    users: np.ndarray, goods: np.ndarray, num_users: int, num_goods: int, user_basis: Tensor, user_row: Tensor
) -> Tensor:
    """Each good's spectral feature, folded in through the users who saved it: D_g^-1/2 sum over its savers
    u of D_u^-1/2 user_basis[user_row[u]] (degrees of the graph given; user_row -1: a user the basis does
    not know, who adds nothing). float32 [G, k]; zero rows for goods without known savers."""
    r = save_matrix(users, goods, num_users, num_goods)
    du, dg = inv_sqrt_degrees(r)
    rows = user_row.numpy()
    known = rows >= 0
    per_user = np.zeros((num_users, user_basis.size(1)), dtype=np.float32)
    per_user[known] = user_basis.numpy()[rows[known]] * du[known, None].astype(np.float32)
    out = (r.T.tocsr().astype(np.float32) @ per_user) * dg[:, None].astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
