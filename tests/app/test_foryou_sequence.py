"""The For You sequence source wired by the app (graphrec.app.foryou): the SASRec-style model fitted before the
ranker's cut, its next goods as candidates, saved with the ranker and refused when damaged.

The world is the sequence model's known-answer world (tests/training/test_sasrec.planted_world: after A comes B,
never C; C comes before A more often, so an order-blind source prefers C), built into a graph, plus query users
who saved three fillers and then A: the source must give them B first, naming A, and co-saves must not.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from etl.arrays import graph_arrays
from graphrec.app.foryou import (
    SEQUENCE_DIR,
    fit_sequence,
    load_sequence,
    sequence_scorer,
    train_checkpoint_ranker,
)
from graphrec.core.artifacts import CorruptArtifact
from graphrec.core.config import Config, ForYouConfig, TrainConfig
from serving.foryou.context import ForYouContext
from serving.foryou.pipeline import PICK_SOURCES, for_you
from serving.foryou.ranker import Ranker
from serving.foryou.sources import SOURCE_NAMES, make_source
from tests.training.test_sasrec import FILLERS, N_GOODS, A, B, C, planted_world
from tests.training.worlds import DAY, GOOD_ID, T0, graph_of, tables_of

N_QUERY = 40
N_WORLD = 600  # planted_world's users; the query users come after them
CFG = Config(
    train=TrainConfig(
        embedding_dim=32,
        negatives=N_GOODS,  # the full softmax at this size
        sasrec_max_len=8,
        sasrec_blocks=1,
        sasrec_dropout=0.1,
        sasrec_lr=5e-3,
        sasrec_batch_size=64,
        threads=1,
    ),
    foryou=ForYouConfig(
        sources=("cosave", "sequence"),
        per_source=10,
        clusters=2,
        sequence_epochs=40,
        ranker_rounds=10,
        ranker_min_leaf=5,
        ranker_min_user_saves=2,
        calibration=0.0,
        max_per_domain=100,
    ),
)


def _world(seed: int = 0, late: tuple[tuple[int, int, int], ...] = ()):
    """(data, id_maps, arrays, query users (graph user_idx), graph index of A, B, C). Each user's i-th save is
    on day i (plus a random offset under an hour, the user's), so the ranker's label window is the world's last
    saves; `late`: extra (user, good, time) saves, users numbered as the world's rows."""
    seqs = planted_world(seed)
    rng = np.random.default_rng(seed + 7)
    # A good saved twice by a user (planted_world draws its two runs of fillers apart) keeps its first save.
    rows = [first_saves(seqs.of(u)) for u in range(seqs.n_users)]
    rows += [np.r_[rng.choice(FILLERS, 3, replace=False), A] for _ in range(N_QUERY)]
    su, sg, st = [], [], []
    for u, goods in enumerate(rows):
        start = T0 + int(rng.integers(0, 3600))
        su += [u] * len(goods)
        sg += list(goods)
        st += [start + DAY * i for i in range(len(goods))]
    for u, g, t in late:
        su, sg, st = [*su, u], [*sg, g], [*st, t]
    x = rng.standard_normal((N_GOODS, 8)).astype(np.float32)
    tables = tables_of(x, np.arange(N_GOODS) % 5, (np.array(su), np.array(sg), np.array(st)), len(rows))
    data, id_maps = graph_of(tables, min_goods=2)
    as_of = int(data["user", "saves", "good"].time.max())
    arrays = graph_arrays(data, as_of, 2)
    query = id_maps.to_idx("user", 1000 + np.arange(N_WORLD, len(rows)))
    a, b, c = id_maps.to_idx("good", GOOD_ID + np.array([A, B, C]))
    return data, id_maps, arrays, query, int(a), int(b), int(c)


def first_saves(goods: np.ndarray) -> np.ndarray:
    _, first = np.unique(goods, return_index=True)
    return goods[np.sort(first)]


@pytest.fixture(scope="module")
def world():
    data, id_maps, arrays, query, a, b, c = _world()
    seq = fit_sequence(CFG, data, id_maps, arrays.as_of)
    return data, id_maps, arrays, query, a, b, c, seq


@pytest.fixture(scope="module")
def ranker(world) -> Ranker:
    data, id_maps, arrays, *_ = world
    return train_checkpoint_ranker(CFG, data, id_maps, {"as_of": arrays.as_of}, None)


def test_the_sequence_source_is_appended_after_the_stored_codes() -> None:
    # A pick's source is stored as its position: the sources before it keep theirs.
    assert SOURCE_NAMES[:7] == ("graph_filter", "cosave", "followees", "trending", "fresh", "model", "interest")
    assert SOURCE_NAMES[-1] == "sequence" and PICK_SOURCES[-1] == "popular"


def test_the_source_gives_the_models_next_good_and_co_saves_do_not(world) -> None:
    data, id_maps, arrays, query, a, b, c, seq = world
    ctx = ForYouContext.build(arrays, CFG.foryou, sequence=sequence_scorer(seq, data, id_maps, arrays))
    got = make_source("sequence").candidates(ctx, query, 5)
    assert (got.goods[:, 0] == b).mean() >= 0.9
    assert (got.via[:, 0] == a).all()  # the reason: their newest save
    # The test can fail: an order-blind source over the same saves puts C (saved with A more often) first.
    co = make_source("cosave").candidates(ctx, query, 5)
    assert (co.goods[:, 0] == c).mean() >= 0.9


def test_the_pipeline_with_the_source_serves_its_picks_naming_the_save_before(world) -> None:
    data, id_maps, arrays, query, a, b, c, seq = world
    ctx = ForYouContext.build(arrays, CFG.foryou, sequence=sequence_scorer(seq, data, id_maps, arrays))
    lists = for_you(ctx, query, 5)  # reciprocal-rank fusion: B is the sequence source's first, not cosave's
    first = lists.goods[:, :2]
    code = PICK_SOURCES.index("sequence")
    is_b = lists.goods == b
    assert (first == b).any(axis=1).mean() >= 0.9
    assert (lists.source[is_b] == code).all() and (lists.via[is_b] == a).all()
    # Without the sequence model the source is left out, and a ranker that learned from it is refused.
    bare = ForYouContext.build(arrays, CFG.foryou)
    assert not (for_you(bare, query, 5).source == code).any()


def test_the_ranker_learns_from_a_model_fitted_before_its_cut_and_carries_it(
    world, ranker: Ranker, tmp_path: Path
) -> None:
    data, id_maps, arrays, query, a, b, c, _ = world
    assert "sequence" in ranker.sources and "sequence_score" in ranker.features
    seq = ranker.attachments[SEQUENCE_DIR].trained  # type: ignore[attr-defined]
    assert seq.meta.graph_manifest["sequence_cut"] == ranker.meta["cut"] < arrays.as_of
    assert ranker.meta["sequence"] == seq.version and ranker.meta["windows"] == 1
    # Round trip: the checkpoint beside the ranker (with its checksum) gives the same weights and scores.
    ranker.save(tmp_path)
    assert (tmp_path / SEQUENCE_DIR / "weights.pt").exists() and (tmp_path / "ranker.txt").exists()
    loaded = Ranker.load(tmp_path)
    assert loaded is not None
    back = load_sequence(tmp_path, loaded)
    assert back.version == seq.version
    for k, v in seq.state_dict.items():
        assert torch.equal(v, back.state_dict[k])
    np.testing.assert_array_equal(
        sequence_scorer(back, data, id_maps, arrays)(query), sequence_scorer(seq, data, id_maps, arrays)(query)
    )
    ctx = ForYouContext.build(arrays, CFG.foryou, sequence=sequence_scorer(back, data, id_maps, arrays))
    lists = for_you(ctx, query, 5, loaded)
    assert (lists.goods[:, :5] >= 0).all()
    with pytest.raises(ValueError, match="sequence"):
        for_you(ForYouContext.build(arrays, CFG.foryou), query, 5, loaded)


def test_with_refit_the_ranker_carries_a_model_fitted_on_every_save(world) -> None:
    data, id_maps, arrays, *_ = world
    cfg = dataclasses.replace(CFG, foryou=dataclasses.replace(CFG.foryou, sequence_refit=True, sequence_epochs=3))
    ranker = train_checkpoint_ranker(cfg, data, id_maps, {"as_of": arrays.as_of}, None)
    seq = ranker.attachments[SEQUENCE_DIR].trained  # type: ignore[attr-defined]
    # Served: the second fit, on the saves after the cut too; learned from: the fit up to the cut.
    assert seq.meta.graph_manifest["sequence_cut"] == arrays.as_of > ranker.meta["cut"]
    assert ranker.meta["sequence"] == seq.version


def test_a_damaged_or_foreign_sequence_checkpoint_is_refused(world, ranker: Ranker, tmp_path: Path) -> None:
    seq = world[-1]
    ranker.save(tmp_path)
    loaded = Ranker.load(tmp_path)
    assert loaded is not None
    weights = tmp_path / SEQUENCE_DIR / "weights.pt"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(CorruptArtifact, match=f"{SEQUENCE_DIR}/weights.pt: SHA-256 does not match"):
        load_sequence(tmp_path, loaded)
    # Another sequence model than the one the ranker learned from (here: the module's, fitted on all saves).
    from graphrec.app.foryou import SequenceCheckpoint

    SequenceCheckpoint(seq).save(tmp_path / SEQUENCE_DIR)
    with pytest.raises(ValueError, match="the ranker learned from"):
        load_sequence(tmp_path, loaded)
    for p in (tmp_path / SEQUENCE_DIR).iterdir():
        p.unlink()
    (tmp_path / SEQUENCE_DIR).rmdir()
    with pytest.raises(ValueError, match="missing"):
        load_sequence(tmp_path, loaded)


def test_saves_after_the_cut_reach_neither_the_weights_nor_the_features(world) -> None:
    data, id_maps, arrays, query, a, b, c, _ = world
    cut = int(np.quantile(arrays.save_time.data, 0.9))
    cfg = dataclasses.replace(CFG, foryou=dataclasses.replace(CFG.foryou, sequence_epochs=3))
    first = fit_sequence(cfg, data, id_maps, cut)
    past = arrays.as_of_time(cut)
    # The same world with 200 more saves after the cut, of C right after A by the query users.
    late = tuple((u, C, cut + DAY + u) for u in range(N_WORLD, N_WORLD + N_QUERY))
    data2, id_maps2, arrays2, *_ = _world(late=late)
    assert arrays2.save_time.nnz > arrays.save_time.nnz
    second = fit_sequence(cfg, data2, id_maps2, cut)
    for k, v in first.state_dict.items():
        assert torch.equal(v, second.state_dict[k]), k
    s1 = sequence_scorer(first, data, id_maps, past)(query)
    s2 = sequence_scorer(second, data2, id_maps2, arrays2.as_of_time(cut))(query)
    np.testing.assert_array_equal(s1, s2)
    # The test can fail: the same saves before the cut do change the weights.
    early = tuple((u, C, T0 - 3600) for u in range(N_WORLD, N_WORLD + N_QUERY))
    data3, id_maps3, *_ = _world(late=early)
    third = fit_sequence(cfg, data3, id_maps3, cut)
    assert any(not torch.equal(v, third.state_dict[k]) for k, v in first.state_dict.items())
