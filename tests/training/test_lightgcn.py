"""training.models.lightgcn on tiny planted bipartite graphs: two disjoint communities of users and goods."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec.core.metrics import topk_from_vectors
from training.models.lightgcn import LightGCNParams, normalized_adjacency, propagate, train_lightgcn

N_USERS, N_GOODS = 40, 30  # users 0-19 and goods 0-14 form community 0, the rest community 1
RING, WINDOW = N_GOODS // 2, 4  # a community's goods sit on a ring; a user likes 2 * WINDOW + 1 neighbours
SAVED = 2 * WINDOW  # each user saves all but one of them


def planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user likes the 9 goods around a random point of their community's ring and saves 8 of them; the
    ninth, drawn at random, is held out. Goods are only ever saved with their ring neighbours, so the graph
    says which unsaved good of the community is the user's (a community alone does not: any of its 7 unsaved
    goods could be). Returns (users, goods, held_out[N_USERS])."""
    rng = np.random.default_rng(seed)
    users, goods, held = [], [], []
    for u in range(N_USERS):
        base = 0 if u < N_USERS // 2 else RING
        window = base + (rng.integers(RING) + np.arange(-WINDOW, WINDOW + 1)) % RING
        h = rng.choice(window)
        users += [u] * SAVED
        goods += [g for g in window if g != h]
        held.append(h)
    return np.array(users), np.array(goods), np.array(held)


def community_of_good(g: np.ndarray) -> np.ndarray:
    return (g >= N_GOODS // 2).astype(int)


def train_matrix(users: np.ndarray, goods: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(users)), (users, goods)), shape=(N_USERS, N_GOODS))


PARAMS = {
    "softmax": LightGCNParams(
        embedding_dim=16, num_layers=2, lr=0.05, batch_size=64, negatives=16, in_batch_negatives=16, max_epochs=40
    ),
    "bpr": LightGCNParams(
        embedding_dim=16, num_layers=2, loss="bpr", lr=0.05, batch_size=64, negatives=1, max_epochs=60
    ),
    "spectral": LightGCNParams(
        embedding_dim=8, num_layers=2, init="spectral", lr=0.01, batch_size=64, negatives=16, max_epochs=10
    ),
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_top_picks_stay_in_the_users_community_and_find_the_held_out_good(name: str) -> None:
    users, goods, held = planted()
    result = train_lightgcn(users, goods, N_USERS, N_GOODS, PARAMS[name])
    assert result.user_vecs.shape == (N_USERS, PARAMS[name].embedding_dim)
    assert result.good_vecs.shape == (N_GOODS, PARAMS[name].embedding_dim)
    picks = topk_from_vectors(
        result.user_vecs, result.good_vecs, np.arange(N_USERS), 5, exclude=train_matrix(users, goods)
    )
    user_community = (np.arange(N_USERS) >= N_USERS // 2).astype(int)
    inside = community_of_good(picks) == user_community[:, None]
    # 7 unsaved goods are left in each community, so the top 5 fit inside it; a random ranking would put
    # only 7/22 of the picks there.
    assert inside[:, 0].all()
    assert inside.mean() >= 0.95
    # Ranking the community's unsaved goods in any order finds the held-out good in the top k with chance
    # k / 7 (0.71 for k = 5): the model must do clearly better, from the ring the saves trace.
    unsaved_in_community = RING - SAVED
    hit = {k: float((picks[:, :k] == held[:, None]).any(axis=1).mean()) for k in (1, 5)}
    chance = {k: k / unsaved_in_community for k in (1, 5)}
    assert hit[1] >= 4 * chance[1], f"{name}: held-out good first for {hit[1]:.0%} (chance {chance[1]:.0%})"
    halfway = chance[5] + (1 - chance[5]) / 2
    assert hit[5] >= halfway, f"{name}: held-out good in the top 5 for {hit[5]:.0%} (chance {chance[5]:.0%})"


def test_same_seed_same_model_and_other_seed_differs() -> None:
    users, goods, _ = planted()
    params = PARAMS["softmax"]
    a = train_lightgcn(users, goods, N_USERS, N_GOODS, params)
    b = train_lightgcn(users, goods, N_USERS, N_GOODS, params)
    c = train_lightgcn(users, goods, N_USERS, N_GOODS, LightGCNParams(**{**params.__dict__, "seed": 1}))
    np.testing.assert_array_equal(a.user_vecs, b.user_vecs)
    np.testing.assert_array_equal(a.good_vecs, b.good_vecs)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert not np.allclose(a.user_vecs, c.user_vecs)


def test_validate_drives_early_stopping_and_the_best_state_is_returned() -> None:
    users, goods, _ = planted()
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])

    def validate(user_vecs: np.ndarray, good_vecs: np.ndarray) -> float:
        seen.append((user_vecs.copy(), good_vecs.copy()))
        return next(scores)

    params = LightGCNParams(**{**PARAMS["softmax"].__dict__, "max_epochs": 7, "patience": 2})
    result = train_lightgcn(users, goods, N_USERS, N_GOODS, params, validate=validate)
    assert len(result.history) == 4  # best at epoch 2, then two epochs without gain
    assert [h["val"] for h in result.history] == [0.1, 0.5, 0.4, 0.3]
    assert result.best_val == 0.5 and result.best_epoch == 2
    np.testing.assert_allclose(result.user_vecs, seen[1][0], atol=1e-6)
    np.testing.assert_allclose(result.good_vecs, seen[1][1], atol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
def test_fast_propagation_equals_pyg_get_embedding(weighted: bool) -> None:
    users, goods, _ = planted()
    weight = np.random.default_rng(0).uniform(0.1, 2.0, len(users)) if weighted else None
    result = train_lightgcn(
        users,
        goods,
        N_USERS,
        N_GOODS,
        LightGCNParams(**{**PARAMS["softmax"].__dict__, "max_epochs": 2}),
        edge_weight=weight,
    )
    u = torch.from_numpy(users)
    g = torch.from_numpy(goods) + N_USERS
    edge_index = torch.stack([torch.cat([u, g]), torch.cat([g, u])])
    edge_weight = None if weight is None else torch.from_numpy(np.concatenate([weight, weight])).float()
    with torch.no_grad():
        reference = result.model.get_embedding(edge_index, edge_weight)
        fast = propagate(result.model, normalized_adjacency(users, goods, N_USERS, N_GOODS, weight))
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)
    normed = torch.nn.functional.normalize(reference, dim=1).numpy()
    np.testing.assert_allclose(result.user_vecs, normed[:N_USERS], atol=1e-5)


def test_bad_input_is_rejected_with_a_clear_error() -> None:
    users, goods, _ = planted()
    with pytest.raises(ValueError, match="good_idx out of range"):
        train_lightgcn(users, goods, N_USERS, 5, PARAMS["softmax"])
    with pytest.raises(ValueError, match="edge_weight"):
        train_lightgcn(users, goods, N_USERS, N_GOODS, PARAMS["softmax"], edge_weight=-np.ones(len(users)))
    with pytest.raises(ValueError, match="loss"):
        LightGCNParams(loss="hinge")


def test_spectral_init_scales_goods_by_degree_power_and_is_an_eigenbasis_of_the_propagation() -> None:
    from training.models.lightgcn import spectral_embedding

    users, goods, _ = planted()
    adj = normalized_adjacency(users, goods, N_USERS, N_GOODS)
    plain = spectral_embedding(adj, N_USERS, 6, power=1.0).double()
    scaled = spectral_embedding(adj, N_USERS, 6, power=1.0, degree_power=0.5).double()
    degree = torch.from_numpy(np.bincount(goods, minlength=N_GOODS)).double().clamp(min=1)
    # Good rows differ by degree^0.5 and user rows not at all, up to the one unit-mean-norm scale of each.
    ratio = scaled[N_USERS:] / plain[N_USERS:]
    user_ratio = scaled[:N_USERS] / plain[:N_USERS]
    c = float(user_ratio[plain[:N_USERS].abs() > 1e-6].median())
    mask = plain[N_USERS:].abs() > 1e-6
    np.testing.assert_allclose(
        ratio[mask].numpy(), (c * degree.sqrt()[:, None].expand_as(ratio))[mask].numpy(), rtol=1e-4
    )
    np.testing.assert_allclose(user_ratio[plain[:N_USERS].abs() > 1e-6].numpy(), c, rtol=1e-4)
    # Without the degree scaling each column [u s^1/2; v s^1/2] is an eigenvector of adj (eigenvalue s).
    moved = (adj.to_dense().double() @ plain).numpy()
    s = np.linalg.norm(moved, axis=0) / np.linalg.norm(plain.numpy(), axis=0)
    np.testing.assert_allclose(moved, plain.numpy() * s, atol=1e-5)
    assert (np.diff(s) <= 1e-9).all() and s[0] > s[-1]


def test_cosine_decay_follows_the_half_cosine_and_stops_after_its_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    users, goods, _ = planted()
    lrs: list[float] = []
    step = torch.optim.Adam.step

    def recording(self: torch.optim.Adam, *args: object, **kwargs: object) -> object:
        lrs.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    params = LightGCNParams(**{**PARAMS["softmax"].__dict__, "batch_size": 100, "lr_decay_steps": 5})
    result = train_lightgcn(users, goods, N_USERS, N_GOODS, params)  # 320 edges: 4 steps per epoch
    expected = [0.05 * 0.5 * (1 + np.cos(np.pi * i / 5)) for i in range(5)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert [h["epoch"] for h in result.history] == [1, 2]
    with pytest.raises(ValueError, match="lr_decay_steps"):
        LightGCNParams(lr_decay_steps=-1)
