"""PinSage-lite's spectral input: a rank-k SVD of the degree-normalised save matrix (the one GF-CF filters),
kept as the users' side and folded in per good through its savers, so new goods with saves get it too.

The known answer: folding the training goods back in gives their right singular vectors. The model test is a
world whose CLIP vectors say nothing (random) while the saves fall in two blocks: with the spectral input a
content-only encoder (no message passing, no degree) ranks a user's own block first; without it, it cannot."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import torch

from graphrec.core.config import TrainConfig
from tests.training.worlds import DAY, T0, graph_of, tables_of
from training.embed import embed
from training.features import inv_sqrt_degrees, save_matrix, spectral_good_features, spectral_user_basis
from training.train import fit


def test_folding_the_training_goods_in_gives_their_right_singular_vectors() -> None:
    rng = np.random.default_rng(0)
    n_users, n_goods, k = 60, 90, 6
    users, goods = rng.integers(0, n_users, 500), rng.integers(0, n_goods, 500)
    basis = spectral_user_basis(users, goods, n_users, n_goods, k, seed=0)
    folded = spectral_good_features(users, goods, n_users, n_goods, torch.from_numpy(basis), torch.arange(n_users))
    r = save_matrix(users, goods, n_users, n_goods)
    du, dg = inv_sqrt_degrees(r)
    _, sigma, vt = sp.linalg.svds(sp.diags(du) @ r @ sp.diags(dg), k=k)
    vt = vt[np.argsort(sigma)[::-1]]
    c = np.sqrt((dg > 0).sum() / k)
    np.testing.assert_allclose(np.abs(folded.numpy()) / c, np.abs(vt.T), atol=1e-5)
    # A user the basis does not know adds nothing: only goods saved by known users get a vector.
    unknown = torch.where(torch.arange(n_users) < 30, torch.arange(n_users), torch.tensor(-1))
    part = spectral_good_features(users, goods, n_users, n_goods, torch.from_numpy(basis), unknown).numpy()
    only_new = np.setdiff1d(goods[users >= 30], goods[users < 30])
    assert np.abs(part[only_new]).max() == 0 and np.abs(part).max() > 0
    # The same seed gives the same basis.
    np.testing.assert_array_equal(basis, spectral_user_basis(users, goods, n_users, n_goods, k, seed=0))


N_USERS, N_GOODS, DIM = 40, 120, 16
SMALL = TrainConfig(
    model="pinsage",
    embedding_dim=16,
    num_layers=0,
    fanouts=(),
    batch_size=64,
    negatives=64,
    max_epochs=15,
    steps_per_epoch=8,
    patience=15,
    lr=0.02,
    val_share=0.0,
    degree_features=False,
    time_budget_s=120.0,
)


def block_world(seed: int = 0):
    """(data, id_maps, block of each good): user u and good g belong to block u % 2 and g % 2; every user
    saves 12 goods of its block; CLIP vectors are random, unrelated to the blocks."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_GOODS, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    block = np.arange(N_GOODS) % 2
    su, sg, st = [], [], []
    for u in range(N_USERS):
        goods = rng.choice(np.nonzero(block == u % 2)[0], 12, replace=False)
        su += [u] * 12
        sg += goods.tolist()
        st += (T0 + np.sort(rng.integers(0, 100 * DAY, 12))).tolist()
    tables = tables_of(x, np.arange(N_GOODS) % 3, (np.array(su), np.array(sg), np.array(st)), N_USERS)
    data, id_maps = graph_of(tables, min_goods=1)
    return data, id_maps, block


def own_block_share(cfg: TrainConfig) -> float:
    """Share of (user, unsaved own-block good, other-block good) pairs ranked right: 0.5 is chance."""
    data, id_maps, block = block_world()
    emb = embed(fit(data, id_maps, {}, cfg, progress=False), data, id_maps)
    scores = emb.user_vecs @ emb.good_vecs.T
    users, goods = data["user", "saves", "good"].edge_index.numpy()
    saved = np.zeros_like(scores, dtype=bool)
    saved[users, goods] = True
    right = []
    for u in range(N_USERS):
        own = scores[u, (block == u % 2) & ~saved[u]]
        other = scores[u, block != u % 2]
        right.append((own[:, None] > other[None, :]).mean())
    return float(np.mean(right))


def test_the_spectral_input_finds_the_save_blocks_that_content_cannot() -> None:
    with_spectral = own_block_share(dataclasses.replace(SMALL, spectral_dim=4))
    content_only = own_block_share(SMALL)
    assert with_spectral > 0.9, with_spectral
    assert content_only < 0.7, content_only
