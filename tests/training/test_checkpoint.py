"""The typed checkpoint meta: a round trip through checkpoint.json, old checkpoints, one place per setting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from graphrec.core.config import TrainConfig
from training.checkpoint import CHECKPOINT_FORMAT, CheckpointMeta, Trained, load_trained, save_trained
from training.embed import embed
from training.models import MODELS, get_model
from training.train import fit

TINY = TrainConfig(
    embedding_dim=8,
    fanouts=(4, 4),
    batch_size=64,
    negatives=32,
    lightgcn_batch_size=256,
    max_epochs=1,
    steps_per_epoch=2,
)


@pytest.mark.parametrize("kind", list(MODELS))
def test_meta_round_trips_through_checkpoint_json(planted, tmp_path: Path, kind: str) -> None:
    data, id_maps, _, _ = planted()
    trained = fit(data, id_maps, {"name": "g1"}, dataclasses.replace(TINY, model=kind), progress=False)
    path = save_trained(trained, tmp_path)
    raw = json.loads((path / "checkpoint.json").read_text())
    assert raw["format_version"] == CHECKPOINT_FORMAT and raw["kind"] == kind and raw["id_maps"] == "id_maps.npz"
    assert (path / raw["id_maps"]).exists()
    loaded = load_trained(path)
    assert loaded.meta == trained.meta  # the config comes back as the same TrainConfig, tuples included
    assert isinstance(loaded.meta.config.fanouts, tuple)
    # Training settings live in the config only, never copied into the constructor arguments.
    assert not set(loaded.meta.model_args) & {f.name for f in dataclasses.fields(TrainConfig)} - {
        "embedding_dim",
        "num_layers",
    }


def test_a_checkpoint_written_before_the_typed_meta_still_loads(planted, tmp_path: Path) -> None:
    data, id_maps, _, _ = planted()
    trained = fit(data, id_maps, {}, dataclasses.replace(TINY, model="pinsage"), progress=False)
    path = save_trained(trained, tmp_path)
    raw = json.loads((path / "checkpoint.json").read_text())
    # The old layout: no format or id-map keys, PinSage's half-life copied into model_args.
    del raw["format_version"], raw["id_maps"]
    raw["model_args"]["recency_half_life_days"] = raw["config"]["recency_half_life_days"]
    (path / "checkpoint.json").write_text(json.dumps(raw))
    loaded = load_trained(path)
    assert loaded.meta.config == trained.meta.config and loaded.kind == "pinsage"
    np.testing.assert_array_equal(embed(loaded, data, id_maps).user_vecs, embed(trained, data, id_maps).user_vecs)


def test_the_half_life_is_read_from_the_config(planted) -> None:
    data, id_maps, _, _ = planted()
    trained = fit(data, id_maps, {}, dataclasses.replace(TINY, model="pinsage"), progress=False)
    other = dataclasses.replace(
        trained.meta, config=dataclasses.replace(trained.meta.config, recency_half_life_days=1.0)
    )
    shifted = Trained(state_dict=trained.state_dict, meta=other, id_maps=trained.id_maps)
    assert not np.allclose(embed(trained, data, id_maps).user_vecs, embed(shifted, data, id_maps).user_vecs)


def test_newer_formats_and_missing_keys_are_named() -> None:
    meta = CheckpointMeta(kind="pinsage", version="v1", config=TINY, model_args={}).to_json()
    with pytest.raises(ValueError, match="format 99 is newer"):
        CheckpointMeta.from_json({**meta, "format_version": 99}, "models/v1")
    with pytest.raises(ValueError, match="models/v1: checkpoint.json has no 'kind'"):
        CheckpointMeta.from_json({k: v for k, v in meta.items() if k != "kind"}, "models/v1")


def test_unknown_kinds_name_the_known_ones(planted) -> None:
    data, id_maps, _, _ = planted()
    with pytest.raises(ValueError, match="unknown model kind 'gcn'; known kinds: pinsage, lightgcn"):
        get_model("gcn")
    with pytest.raises(ValueError, match="known kinds"):
        fit(data, id_maps, {}, dataclasses.replace(TINY, model="gcn"), progress=False)


def test_registry_keys_are_the_models_own_kinds() -> None:
    for kind, cls in MODELS.items():
        assert cls.kind == kind and isinstance(cls.inductive, bool) and cls.what
