"""The registry of models: `MODELS` maps each kind to its class, `get_model(kind)` gives one to use.

A new model is a new module in this package implementing `training.models.base.Model`, plus one entry here;
the training loop, the checkpoint, `graphrec train`, the daily embed step and the evaluation pick it up.
"""

from __future__ import annotations

from training.models.base import Fitted, Model
from training.models.lightgcn import LightGCNModel
from training.models.pinsage import PinSageModel
from training.models.sasrec import SASRecModel

MODELS: dict[str, type[Model]] = {m.kind: m for m in (PinSageModel, LightGCNModel, SASRecModel)}


def get_model(kind: str) -> Model:
    """The model registered as `kind`; ValueError naming the known kinds otherwise."""
    try:
        cls = MODELS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(MODELS)}") from None
    return cls()


__all__ = ["MODELS", "Fitted", "Model", "get_model"]
