"""The contract every model and every baseline keeps (after implicit's shared recommender tests): on a small
world with one right answer, the withheld good comes back first for its user.

Parametrised over the registry (`training.models.MODELS`) and `evaluation.baselines.BASELINES` (plus the
evaluation's training-free rows gf_cf and EASE), so a newly added model or baseline is tested without
touching this file. The world (tests/training/worlds.ring_world)
is built through etl's `build_graph`; its answer is at once the nearest good in content, the most co-saved
and the next in sequence, so any working recommender finds it, while a non-personal ranking does not.
A trained model goes through its checkpoint (save, load) before it embeds, as in production.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from evaluation.baselines import BASELINES
from evaluation.ease import ease_row
from evaluation.models import graph_filter
from evaluation.protocol import TrainData, binary_csr
from graphrec.core.artifacts import SAVES
from graphrec.core.config import TrainConfig
from tests.training.worlds import graph_of, ring_world
from training.checkpoint import load_trained, save_trained
from training.embed import embed
from training.models import MODELS
from training.train import fit

# Rows that cannot pass by design, with the reason. (The oracle is no baseline: it is built from the demo
# generator's planted styles, which say a user's ring but not their place on it.)
EXCLUDED = {
    "random": "uniform random order, the floor of the table: right only by chance",
    "popularity": "one list for everyone, and every good of this world is equally popular",
}
SHARE = 0.95  # of the test users must get their withheld good first; chance is 1 in ~150 unsaved goods

# No validation window: Recall@20 on this world is 1.0 after an epoch or two, so early stopping would keep
# a barely trained state; every model trains its full schedule instead (early stopping is tested elsewhere).
TRAIN = TrainConfig(
    embedding_dim=32,
    fanouts=(10, 5),
    batch_size=256,
    negatives=128,
    lightgcn_batch_size=512,
    max_epochs=30,
    steps_per_epoch=10,
    patience=3,
    lr=0.01,
    val_share=0.0,
)
# Per-model settings, as implicit's tests give each model its own (a model's own keys of TrainConfig).
SETTINGS: dict[str, dict[str, object]] = {"sasrec": {"sasrec_lr": 0.005}}


@dataclasses.dataclass(frozen=True)
class World:
    data: object
    id_maps: object
    train: TrainData
    test_users: np.ndarray
    withheld: np.ndarray


@pytest.fixture(scope="module")
def world() -> World:
    tables, test_users, withheld = ring_world()
    data, id_maps = graph_of(tables)
    n_users, n_goods = int(data["user"].num_nodes), int(data["good"].num_nodes)
    users, goods = data[SAVES].edge_index.numpy()
    times = data[SAVES].time.numpy()
    train = TrainData(
        saves=binary_csr(users, goods, (n_users, n_goods)),
        save_time=binary_csr(users, goods, (n_users, n_goods), times),
        content=data["good"].x.numpy(),
        domain=data["good"].domain.numpy().astype(np.int64),
        split_time=float(times.max() + 1),
    )
    # Graph indices are database-id order, so they are the world's own indices.
    assert np.array_equal(id_maps.user_ids, 1000 + np.arange(n_users))
    assert np.array_equal(id_maps.good_ids, 5000 + np.arange(n_goods))
    return World(data, id_maps, train, test_users, withheld)


def first_picks(world: World, score_fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Each test user's top good, their own saves excluded (as the evaluator and serving do)."""
    scores = np.array(score_fn(world.test_users), dtype=np.float64)
    assert scores.shape == (len(world.test_users), world.train.n_goods)
    scores[world.train.saves[world.test_users].toarray() > 0] = -np.inf
    return scores.argmax(axis=1)


def share_first(world: World, score_fn: Callable[[np.ndarray], np.ndarray]) -> float:
    return float((first_picks(world, score_fn) == world.withheld).mean())


def test_the_world_has_one_unsaved_answer_per_test_user(world: World) -> None:
    saves = world.train.saves
    assert len(world.test_users) == 160 and saves[world.test_users].sum(axis=1).min() == 8
    assert not np.asarray(saves[world.test_users, world.withheld]).any()  # the answer is never a save


@pytest.mark.parametrize("name", [n for n in BASELINES if n not in EXCLUDED])
def test_every_baseline_puts_the_withheld_good_first(world: World, name: str) -> None:
    share = share_first(world, BASELINES[name].fit(world.train))
    assert share >= SHARE, f"{name}: the withheld good came first for {share:.0%} of the test users"


# Training-free rows the evaluation builds outside BASELINES.
OTHER_ROWS = {"gf_cf": graph_filter, "ease": ease_row}


@pytest.mark.parametrize("name", sorted(OTHER_ROWS))
def test_the_other_evaluation_rows_put_the_withheld_good_first(world: World, name: str) -> None:
    share = share_first(world, OTHER_ROWS[name]().fit(world.train))
    assert share >= SHARE, f"{name}: the withheld good came first for {share:.0%} of the test users"


@pytest.mark.parametrize("name", sorted(EXCLUDED))
def test_excluded_baselines_exist_and_really_cannot_pass(world: World, name: str) -> None:
    assert name in BASELINES, f"{name} is excluded from the contract but is no baseline any more"
    assert share_first(world, BASELINES[name].fit(world.train)) < 0.1


@pytest.mark.parametrize("kind", list(MODELS))
def test_every_registered_model_puts_the_withheld_good_first(world: World, kind: str, tmp_path: Path) -> None:
    cfg = dataclasses.replace(TRAIN, model=kind, **SETTINGS.get(kind, {}))  # type: ignore[arg-type]
    trained = fit(world.data, world.id_maps, {"name": "ring"}, cfg, progress=False)
    assert trained.kind == kind and trained.meta.config == cfg
    loaded = load_trained(save_trained(trained, tmp_path))
    emb = embed(loaded, world.data, world.id_maps)

    assert emb.model_kind == kind and emb.model_version == trained.version
    assert np.array_equal(emb.user_ids, world.id_maps.user_ids) and np.array_equal(emb.good_ids, world.id_maps.good_ids)
    assert emb.good_known.all()  # the same graph it was trained on
    assert np.isfinite(emb.user_vecs).all() and np.isfinite(emb.good_vecs).all()
    share = share_first(world, lambda users: emb.user_vecs[users] @ emb.good_vecs.T)
    assert share >= SHARE, f"{kind}: the withheld good came first for {share:.0%} of the test users"


def test_a_recommender_that_mixes_up_its_users_fails(world: World) -> None:
    # The bug implicit's users hit most: a row for the wrong user (e.g. graph index taken for database id).
    good = BASELINES["mean_clip"].fit(world.train)
    assert share_first(world, lambda users: good(np.roll(users, len(users) // 2))) < 0.1
