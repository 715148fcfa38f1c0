"""Both models on planted graphs: known answers, inductive goods, determinism, NaN guard, checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from graphrec.core.artifacts import current_model, set_current_model
from graphrec.core.config import TrainConfig
from training import losses
from training.checkpoint import load_trained, save_trained
from training.embed import embed
from training.loop import NonFiniteError
from training.split import time_split
from training.train import fit

SMALL = TrainConfig(
    embedding_dim=16,
    fanouts=(5, 5),
    batch_size=64,
    negatives=64,
    lightgcn_batch_size=256,
    max_epochs=6,
    steps_per_epoch=8,
    patience=6,
    lr=0.01,
    time_budget_s=120.0,
)


# CLIP features this noisy leave the styles hard to tell apart by content (see content_only_share).
NOISE = 5.0


def top_picks(emb, saved: set[tuple[int, int]], k: int) -> np.ndarray:
    scores = emb.user_vecs @ emb.good_vecs.T
    for u, g in saved:
        scores[u, g] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def saved_pairs(data) -> set[tuple[int, int]]:
    return set(map(tuple, data["user", "saves", "good"].edge_index.t().tolist()))


def community_share(picks: np.ndarray, user_style: np.ndarray, good_style: np.ndarray) -> float:
    return float((good_style[picks] == user_style[:, None]).mean())


def content_only_share(data, user_style: np.ndarray, good_style: np.ndarray, k: int = 10) -> float:
    """Share of in-community top-k picks when ranking by content alone: the user's mean CLIP vector."""
    x = data["good"].x.numpy()
    users, goods = data["user", "saves", "good"].edge_index.numpy()
    mean = np.zeros((data["user"].num_nodes, x.shape[1]))
    np.add.at(mean, users, x[goods])
    scores = mean @ x.T
    scores[users, goods] = -np.inf
    return community_share(np.argsort(-scores, axis=1, kind="stable")[:, :k], user_style, good_style)


def test_content_alone_does_not_pass_the_community_tests(planted) -> None:
    # Otherwise a PinSage-lite with broken message passing would pass them on its input features.
    data, _, user_style, good_style = planted(noise=NOISE)
    assert content_only_share(data, user_style, good_style) < 0.8


@pytest.mark.parametrize(("model", "loss"), [("pinsage", "softmax"), ("pinsage", "bpr"), ("lightgcn", "softmax")])
def test_top_picks_stay_inside_the_users_community(planted, model: str, loss: str) -> None:
    # Two disjoint communities whose goods overlap in feature space (noise 5: content alone puts about 60%
    # of the top 10 inside the community): LightGCN has only the graph to go by, PinSage-lite both; either
    # way a user's picks must come from their own community.
    data, id_maps, user_style, good_style = planted(noise=NOISE)
    trained = fit(data, id_maps, {}, dataclasses.replace(SMALL, model=model, loss=loss), progress=False)
    inside = community_share(top_picks(embed(trained, data, id_maps), saved_pairs(data), 10), user_style, good_style)
    assert inside >= 0.95, f"{model}/{loss}: only {inside:.0%} of picks inside the community"
    assert trained.meta.val["recall@20"] > 0


def test_pinsage_without_message_passing_fails_the_community_test(planted) -> None:
    # The same PinSage-lite with zero message-passing layers sees only the input features.
    data, id_maps, user_style, good_style = planted(noise=NOISE)
    cfg = dataclasses.replace(SMALL, model="pinsage", num_layers=0, fanouts=())
    emb = embed(fit(data, id_maps, {}, cfg, progress=False), data, id_maps)
    assert community_share(top_picks(emb, saved_pairs(data), 10), user_style, good_style) < 0.95


def test_goods_added_after_training_land_among_goods_of_their_style(planted) -> None:
    held_out = (7, 8, 21, 30, 45, 66)  # both styles
    full, full_ids, _, good_style = planted(noise=NOISE)
    before, before_ids, _, _ = planted(noise=NOISE, drop_goods=held_out)
    trained = fit(before, before_ids, {}, dataclasses.replace(SMALL, model="pinsage"), progress=False)

    emb = embed(trained, full, full_ids)  # the newer graph: the goods, their CLIP features and their saves
    assert not emb.good_known[list(held_out)].any() and emb.good_known.sum() == len(good_style) - len(held_out)

    def same_style_neighbours(vecs: np.ndarray, good: int) -> float:
        sims = vecs @ vecs[good]
        sims[good] = -np.inf
        return float((good_style[np.argsort(-sims)[:10]] == good_style[good]).mean())

    for good in held_out:
        assert np.abs(emb.good_vecs[good]).sum() > 0
        assert same_style_neighbours(emb.good_vecs, good) >= 0.9, f"good_idx {good}"
    # Their CLIP vectors alone would not place them: the saves they got since do.
    content = full["good"].x.numpy()
    assert np.mean([same_style_neighbours(content, good) for good in held_out]) < 0.8


def test_lightgcn_leaves_goods_it_never_saw_as_zero_rows(planted) -> None:
    full, full_ids, _, _ = planted()
    before, before_ids, _, _ = planted(drop_goods=(3, 4))
    trained = fit(before, before_ids, {}, dataclasses.replace(SMALL, model="lightgcn"), progress=False)
    emb = embed(trained, full, full_ids)
    assert emb.good_known.tolist() == [i not in (3, 4) for i in range(len(full_ids.good_ids))]
    assert not emb.good_vecs[[3, 4]].any()
    assert np.abs(emb.good_vecs[emb.good_known]).sum(axis=1).min() > 0


@pytest.mark.parametrize("model", ["pinsage", "lightgcn"])
def test_the_same_seed_gives_the_same_model(planted, model: str) -> None:
    data, id_maps, _, _ = planted()
    cfg = dataclasses.replace(SMALL, model=model, max_epochs=2)
    a = fit(data, id_maps, {}, cfg, progress=False).state_dict
    b = fit(data, id_maps, {}, cfg, progress=False).state_dict
    c = fit(data, id_maps, {}, dataclasses.replace(cfg, seed=1), progress=False).state_dict
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_validation_window_is_the_newest_saves_and_hidden_from_training(planted) -> None:
    data, *_ = planted()
    split = time_split(data, 0.2)
    t = data["user", "saves", "good"].time
    assert split.train_time.max() < split.cutoff <= int(t.max())
    assert abs((t >= split.cutoff).float().mean().item() - 0.2) < 0.02
    for edge_type in split.graph.edge_types:
        if "time" in split.graph[edge_type]:
            assert int(split.graph[edge_type].time.max()) < split.cutoff
    # No held-out save is also a training save, and training saves are never ranked.
    assert split.seen[split.val_users].multiply(split.val_truth).nnz == 0


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_state(planted, monkeypatch) -> None:
    data, id_maps, _, _ = planted()
    real = losses.sampled_softmax_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 11 else loss

    monkeypatch.setattr(losses, "sampled_softmax_loss", poisoned)
    cfg = dataclasses.replace(SMALL, model="pinsage", steps_per_epoch=4)
    with pytest.raises(NonFiniteError, match=r"loss is nan at epoch 3 step 2") as info:
        fit(data, id_maps, {}, cfg, progress=False)
    assert (info.value.epoch, info.value.step) == (3, 2)
    assert info.value.last_good_state is not None and "proj.weight" in info.value.last_good_state


def test_nan_gradient_is_caught_too(planted, monkeypatch) -> None:
    data, id_maps, _, _ = planted()
    real = losses.bpr_loss

    def poisoned(user_vecs, *args, **kwargs):
        # Finite value, NaN gradient: d sqrt(|y|)/dy at 0 is infinite, times 0.
        return real(user_vecs, *args, **kwargs) + (user_vecs.sum() * 0).abs().sqrt()

    monkeypatch.setattr(losses, "bpr_loss", poisoned)
    with pytest.raises(NonFiniteError, match=r"non-finite gradient of .* at epoch 1 step 0"):
        fit(data, id_maps, {}, dataclasses.replace(SMALL, model="pinsage", loss="bpr"), progress=False)


def test_bad_features_are_named_before_training(planted) -> None:
    data, id_maps, _, _ = planted()
    data["good"].x[5, 0] = float("inf")
    with pytest.raises(ValueError, match="good_idx 5"):
        fit(data, id_maps, {}, SMALL, progress=False)


def test_checkpoint_round_trip_scores_the_same_and_leaves_current_alone(planted, tmp_path: Path) -> None:
    data, id_maps, _, _ = planted()
    models = tmp_path / "models"
    first = fit(data, id_maps, {"name": "g1"}, dataclasses.replace(SMALL, max_epochs=1), progress=False)
    save_trained(first, models)
    set_current_model(models, first.version)
    for model in ("pinsage", "lightgcn"):
        trained = fit(data, id_maps, {"name": "g1"}, dataclasses.replace(SMALL, model=model), progress=False)
        path = save_trained(trained, models)
        loaded = load_trained(path)
        assert loaded.kind == model and loaded.version == trained.version
        assert loaded.meta.graph_manifest == {"name": "g1"}
        assert loaded.meta.config.model == model and "recall@20" in loaded.meta.val
        assert np.array_equal(loaded.id_maps.good_ids, id_maps.good_ids)
        a, b = embed(trained, data, id_maps), embed(loaded, data, id_maps)
        np.testing.assert_allclose(a.user_vecs, b.user_vecs, atol=1e-6)
        np.testing.assert_allclose(a.good_vecs, b.good_vecs, atol=1e-6)
        assert a.model_version == trained.version
    assert current_model(models) == models / first.version


def test_hard_negatives_come_from_the_positive_goods_domain(planted) -> None:
    from training.models.pinsage import _domain_index, _same_domain

    data, *_ = planted()
    index = _domain_index(data)
    goods = torch.arange(data["good"].num_nodes).repeat(5)
    hard = _same_domain(index, goods, torch.Generator().manual_seed(0))
    domain = data["good"].domain
    assert torch.equal(domain[hard], domain[goods])
    assert (hard != goods).float().mean() > 0.9  # not just the positive itself


def test_hard_negative_training_still_separates_the_communities(planted) -> None:
    data, id_maps, user_style, good_style = planted(noise=NOISE)
    cfg = dataclasses.replace(SMALL, model="pinsage", hard_negatives=True)
    emb = embed(fit(data, id_maps, {}, cfg, progress=False), data, id_maps)
    assert community_share(top_picks(emb, saved_pairs(data), 10), user_style, good_style) >= 0.95
