"""Tiny planted graphs for the training tests: two disjoint communities with their own style of goods."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from graphrec.core.artifacts import FORWARD_EDGE_TYPES, IdMaps, reverse

DAY = 86_400


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    # Tiny tensors on a shared 2-core machine: threads only add contention here.
    torch.set_num_threads(1)


def planted_graph(
    n_users: int = 40,
    n_goods: int = 160,
    saves_per_user: int = 20,
    dim: int = 32,
    noise: float = 1.0,
    seed: int = 0,
    drop_goods: tuple[int, ...] = (),
) -> tuple[HeteroData, IdMaps, np.ndarray, np.ndarray]:
    """(data, id_maps, user_style [U], good_style [G]): user u (style u % 2) saves only goods of its style,
    keeps them in two collections, follows users of its style; each of 4 domains sells one style.

    `drop_goods` builds the same world as seen before those goods existed: they and their edges are
    absent and the remaining goods are renumbered (database ids stay those of the full world).
    """
    rng = np.random.default_rng(seed)
    good_style = np.arange(n_goods) % 2
    centers = rng.normal(size=(2, dim))
    x = centers[good_style] + noise * rng.normal(size=(n_goods, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    user_style = np.arange(n_users) % 2
    domain = np.arange(n_goods) % 4  # domains 0, 2 sell style 0; 1, 3 style 1
    t0 = 1_700_000_000
    su, sg, st, cu, cg, ct = [], [], [], [], [], []
    for u in range(n_users):
        pool = np.nonzero(good_style == user_style[u])[0]
        goods = rng.choice(pool, saves_per_user, replace=False)
        times = t0 + np.sort(rng.integers(0, 300 * DAY, saves_per_user))
        su += [u] * saves_per_user
        sg += goods.tolist()
        st += times.tolist()
        for i, (g, t) in enumerate(zip(goods, times, strict=True)):
            cu.append(2 * u + i % 2)
            cg.append(int(g))
            ct.append(int(t))
    follower = np.arange(n_users).repeat(3)
    followee = (follower + 2 * rng.integers(1, n_users // 2, len(follower))) % n_users
    follows = np.unique(np.stack([follower, followee])[:, follower != followee], axis=1)

    keep_good = np.ones(n_goods, dtype=bool)
    keep_good[list(drop_goods)] = False
    new_idx = np.cumsum(keep_good) - 1

    def goods_ok(g: np.ndarray) -> np.ndarray:
        return keep_good[g]

    data = HeteroData()
    data["user"].num_nodes = n_users
    data["user"].eligible = torch.ones(n_users, dtype=torch.bool)
    data["good"].x = torch.tensor(x[keep_good], dtype=torch.float32)
    data["good"].created_at = torch.full((int(keep_good.sum()),), t0, dtype=torch.long)
    data["good"].domain = torch.tensor(domain[keep_good])
    data["collection"].num_nodes = 2 * n_users
    data["collection"].owner = torch.arange(2 * n_users) // 2
    data["domain"].num_nodes = 4
    su_, sg_, st_ = np.array(su), np.array(sg), np.array(st)
    m = goods_ok(sg_)
    cu_, cg_, ct_ = np.array(cu), np.array(cg), np.array(ct)
    mc = goods_ok(cg_)
    edges = {
        ("user", "saves", "good"): (su_[m], new_idx[sg_[m]], st_[m]),
        ("collection", "contains", "good"): (cu_[mc], new_idx[cg_[mc]], ct_[mc]),
        ("user", "owns", "collection"): (np.arange(2 * n_users) // 2, np.arange(2 * n_users), None),
        ("good", "in_domain", "domain"): (np.arange(int(keep_good.sum())), domain[keep_good], None),
        ("user", "follows", "user"): (follows[0], follows[1], None),
    }
    assert set(edges) == set(FORWARD_EDGE_TYPES)
    for edge_type, (src, dst, t) in edges.items():
        ei = torch.tensor(np.stack([src, dst]), dtype=torch.long)
        data[edge_type].edge_index = ei
        data[reverse(edge_type)].edge_index = ei.flip(0)
        if t is not None:
            data[edge_type].time = torch.tensor(t, dtype=torch.long)
            data[reverse(edge_type)].time = torch.tensor(t, dtype=torch.long)
    id_maps = IdMaps(
        user_ids=np.arange(n_users, dtype=np.int64) + 1000,
        good_ids=(np.arange(n_goods, dtype=np.int64) + 5000)[keep_good],
        collection_ids=np.arange(2 * n_users, dtype=np.int64) + 9000,
        domain_names=np.array([f"shop{i}.example" for i in range(4)]),
    )
    return data, id_maps, user_style, good_style[keep_good]


@pytest.fixture
def planted() -> Callable[..., tuple[HeteroData, IdMaps, np.ndarray, np.ndarray]]:
    return planted_graph
