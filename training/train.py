"""Train one registered model on a graph artifact: `fit` -> `Trained`, and `train_graph` (the `graphrec train` job).

`fit` is the same for every model: check the inputs, seed, hold out the validation window
(`training.split.time_split`: the newest `cfg.val_share` of the saves), let the model of kind `cfg.model`
fit on the graph before the cut, and wrap the result in a typed checkpoint meta. The caller hands in a graph
built as of its own split time, so training never sees an evaluation window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import HeteroData

from graphrec.core.artifacts import SAVES, IdMaps, current_model, load_graph, set_current_model
from graphrec.core.config import TrainConfig
from training.checkpoint import CheckpointMeta, Trained, new_version, save_trained
from training.models import get_model
from training.split import sample_validation, time_split

log = logging.getLogger(__name__)


def check_inputs(data: HeteroData, cfg: TrainConfig) -> None:
    """Fail early, naming the setting or the row, on inputs that would poison training."""
    if cfg.loss not in ("bpr", "softmax"):
        raise ValueError(f"train.loss must be 'bpr' or 'softmax', got {cfg.loss!r}")
    if not 0 <= cfg.val_share < 1:
        raise ValueError(f"train.val_share must be in [0, 1), got {cfg.val_share}")
    x = data["good"].x
    bad = (~torch.isfinite(x).all(dim=1)).nonzero().view(-1)
    if bad.numel():
        raise ValueError(f"good_idx {int(bad[0])} (and {bad.numel() - 1} more) has non-finite CLIP features")
    if SAVES not in data.edge_types or "time" not in data[SAVES]:
        raise ValueError("the graph has no ('user', 'saves', 'good') edges with times")


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def deterministic_ops() -> Iterator[None]:
    """torch's deterministic kernels for the block, the previous setting restored after.

    The backward of indexing with repeated indices (`emb[u_loc]`, a user with several saves in a batch) is an
    index_put_ with accumulate, which on CPU adds from several threads in whatever order they run: two fits
    with one seed then differed by ~1e-7 and a few near-tied picks swapped. The deterministic kernel sorts
    the indices first.
    """
    before, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def fit(
    data: HeteroData, id_maps: IdMaps, manifest: dict[str, Any], cfg: TrainConfig, *, progress: bool = True
) -> Trained:
    """Train `cfg.model` on `data` with early stopping on the time-based validation window.

    data: a graph artifact's HeteroData; id_maps and manifest: the same artifact's. Raises ValueError for
    an unknown model kind or bad input, training.loop.NonFiniteError when the loss or a gradient stops being
    finite. Deterministic for `cfg.seed`.
    """
    model = get_model(cfg.model)
    check_inputs(data, cfg)
    start = time.perf_counter()
    seed_everything(cfg.seed)
    split = sample_validation(time_split(data, cfg.val_share), cfg.val_max_users, cfg.seed)
    log.info(
        "training %s on %d saves; validating on %d users' %d newest saves",
        cfg.model,
        len(split.train_users),
        len(split.val_users),
        split.val_truth.nnz,
    )
    with deterministic_ops():
        fitted = model.fit(split, cfg, progress=progress)
    meta = CheckpointMeta(
        kind=model.kind,
        version=new_version(model.kind),
        config=cfg,
        model_args=fitted.model_args,
        graph_manifest=manifest,
        val=fitted.val,
        val_cutoff=split.cutoff,
        history=fitted.history,
        train_s=time.perf_counter() - start,
    )
    return Trained(state_dict=fitted.state_dict, meta=meta, id_maps=id_maps)


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
