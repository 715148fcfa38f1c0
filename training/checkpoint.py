"""A trained model as it is kept on disk: `Trained` (weights, typed `CheckpointMeta`, id maps), saved and loaded.

The meta carries everything needed to rebuild and use the model (nanoGPT's checkpoint carries its own
config): the model kind, the resolved `TrainConfig`, the constructor arguments, the graph it was trained on,
its validation figures and history. Each setting is read from one place: training settings from `config`,
constructor arguments from `model_args`. The directory layout is `graphrec.core.artifacts`' checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torch import Tensor

from graphrec.core.artifacts import IdMaps, load_checkpoint, save_checkpoint
from graphrec.core.config import TrainConfig

log = logging.getLogger(__name__)

# 1: the meta before it was typed (no format_version key); 2: typed, settings only under "config".
CHECKPOINT_FORMAT = 2
ID_MAPS_FILE = "id_maps.npz"  # written next to checkpoint.json by graphrec.core.artifacts.save_checkpoint


def new_version(kind: str) -> str:
    """A unique, time-ordered checkpoint name, e.g. 20261201T184700123456Z-pinsage."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{kind}"


def config_from_json(raw: dict[str, Any], where: str) -> TrainConfig:
    """The TrainConfig of a checkpoint's JSON (lists back to tuples). Keys this version no longer knows are
    dropped with a warning, so an old checkpoint stays loadable; missing keys take their defaults."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        log.warning("%s: ignoring train config keys this version does not know: %s", where, ", ".join(unknown))
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in fields:
            values[name] = tuple(value) if isinstance(value, list) else value
    return TrainConfig(**values)


@dataclass(frozen=True)
class CheckpointMeta:
    """What checkpoint.json holds.

    kind: a key of training.models.MODELS; version: the checkpoint's directory name; config: the resolved
    TrainConfig it was trained with; model_args: the model's constructor arguments (nothing else);
    graph_manifest: the training graph's manifest; id_maps: the file of the training graph's id maps inside
    the checkpoint; val: validation figures of the kept state (empty without a validation window);
    val_cutoff: unix seconds, saves from then on were held out; history: one dict per epoch (epoch, loss,
    val, seconds); train_s: wall time of the fit.
    """

    kind: str
    version: str
    config: TrainConfig
    model_args: dict[str, Any]
    graph_manifest: dict[str, Any] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    val_cutoff: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    train_s: float = 0.0
    id_maps: str = ID_MAPS_FILE
    format_version: int = CHECKPOINT_FORMAT

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any], where: str = "checkpoint") -> CheckpointMeta:
        version = int(raw.get("format_version", 1))
        if version > CHECKPOINT_FORMAT:
            raise ValueError(f"{where}: checkpoint format {version} is newer than this code ({CHECKPOINT_FORMAT})")
        for key in ("kind", "version", "config", "model_args"):
            if key not in raw:
                raise ValueError(f"{where}: checkpoint.json has no {key!r}")
        return cls(
            kind=str(raw["kind"]),
            version=str(raw["version"]),
            config=config_from_json(raw["config"], where),
            model_args=dict(raw["model_args"]),
            graph_manifest=dict(raw.get("graph_manifest") or {}),
            val=dict(raw.get("val") or {}),
            val_cutoff=raw.get("val_cutoff"),
            history=list(raw.get("history") or []),
            train_s=float(raw.get("train_s", 0.0)),
            id_maps=str(raw.get("id_maps", ID_MAPS_FILE)),
            format_version=CHECKPOINT_FORMAT,
        )


@dataclass
class Trained:
    """A trained model and everything needed to score with it: weights, meta, the training graph's id maps."""

    state_dict: dict[str, Tensor]
    meta: CheckpointMeta
    id_maps: IdMaps

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def version(self) -> str:
        return self.meta.version


def save_trained(trained: Trained, models_dir: Path) -> Path:
    """Write models/<version>/ atomically (weights, checkpoint.json, id maps); never touches CURRENT."""
    return save_checkpoint(
        Path(models_dir), trained.version, trained.state_dict, trained.meta.to_json(), trained.id_maps
    )


def load_trained(checkpoint_dir: Path) -> Trained:
    """The Trained of a checkpoint directory (models/<version>/)."""
    state, raw, id_maps = load_checkpoint(Path(checkpoint_dir))
    return Trained(state_dict=state, meta=CheckpointMeta.from_json(raw, str(checkpoint_dir)), id_maps=id_maps)
