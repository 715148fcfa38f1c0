"""The one interface every model implements (`Model`), what its fit returns (`Fitted`), and shared helpers.

A model is a small stateless class registered in `training.models.MODELS` under its `kind`:

- `fit(split, cfg, progress=...) -> Fitted` trains on `split.graph` (the graph before the validation cut;
  `split` also has the training saves as arrays and the held-out window, see `training.split.TimeSplit`),
  early-stopping on `validation_metrics(...)[VAL_METRIC]` through `training.loop.train_loop`, and returns
  the kept state, its constructor arguments, history and validation figures. Seeding, input checks,
  the checkpoint meta and saving are done once for every model by `training.train.fit`.
- `embed(trained, data, id_maps) -> Embeddings` scores with a checkpoint on a graph that may be newer
  than its training graph (`id_maps` are `data`'s): one vector per user and per good of `data`, in its
  graph-index order, keyed by database id (`embeddings(...)` below builds the result).

`inductive` says whether goods new since training get real vectors (from their features and edges) or
stay zero rows that serving can only reach through fallbacks until the next retrain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from torch import Tensor
from torch_geometric.data import HeteroData

from graphrec.core.artifacts import Embeddings, IdMaps
from graphrec.core.config import TrainConfig

if TYPE_CHECKING:
    from training.checkpoint import Trained
    from training.split import TimeSplit


@dataclass
class Fitted:
    """What `Model.fit` returns. state_dict: the kept (best validated) weights; model_args: JSON-able
    constructor arguments, enough with state_dict to rebuild the module (no training settings: those are
    read from the checkpoint's config); history: one dict per epoch (training.loop.LoopResult.history);
    val: validation_metrics of the kept state (empty without a validation window)."""

    state_dict: dict[str, Tensor]
    model_args: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    val: dict[str, float] = field(default_factory=dict)


class Model(Protocol):
    """A recommender trained on a graph artifact. See the module docstring for the contract."""

    kind: ClassVar[str]  # its key in training.models.MODELS and in checkpoints ("pinsage", ...)
    inductive: ClassVar[bool]  # goods unseen in training get real vectors
    what: ClassVar[str]  # one line for reports

    def fit(self, split: TimeSplit, cfg: TrainConfig, *, progress: bool = False) -> Fitted: ...

    def embed(self, trained: Trained, data: HeteroData, id_maps: IdMaps) -> Embeddings: ...


def training_index(trained: Trained, id_maps: IdMaps, node_type: str) -> np.ndarray:
    """For each `node_type` node of a (newer) graph with `id_maps`, its index in the training graph, -1 if new."""
    return trained.id_maps.to_idx(node_type, id_maps.ids(node_type))


def embeddings(trained: Trained, id_maps: IdMaps, user_vecs: np.ndarray, good_vecs: np.ndarray) -> Embeddings:
    """Embeddings from vectors in the graph-index order of `id_maps` (user_vecs [U, d], good_vecs [G, d]);
    `good_known` marks the goods the model saw in training."""
    return Embeddings(
        model_kind=trained.kind,
        model_version=trained.version,
        user_ids=np.asarray(id_maps.user_ids, dtype=np.int64),
        user_vecs=np.ascontiguousarray(user_vecs, dtype=np.float32),
        good_ids=np.asarray(id_maps.good_ids, dtype=np.int64),
        good_vecs=np.ascontiguousarray(good_vecs, dtype=np.float32),
        good_known=training_index(trained, id_maps, "good") >= 0,
    )
