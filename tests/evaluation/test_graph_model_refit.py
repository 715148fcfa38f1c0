"""The evaluation's graph-model rows refit on every save before T for the epoch count validation chose."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from evaluation.models import best_epoch, fit_as_of, fit_details
from graphrec.core.artifacts import SAVES
from graphrec.core.config import TrainConfig
from tests.training.worlds import planted_graph
from training.split import time_split

SMALL = TrainConfig(
    embedding_dim=16,
    fanouts=(5, 5),
    batch_size=64,
    negatives=64,
    lightgcn_batch_size=256,
    max_epochs=5,
    steps_per_epoch=4,
    patience=5,
    lr=0.01,
    time_budget_s=120.0,
    threads=1,
)


def with_other_window(data):
    """`data` with each save of training's validation window moved to another good of the same style (style
    = good_idx % 2 in the planted world): the same world before the window, a different one inside it."""
    out = data.clone()
    cutoff = time_split(data, SMALL.val_share).cutoff
    ei = out[SAVES].edge_index.clone()
    window = out[SAVES].time >= cutoff
    ei[1, window] = (ei[1, window] + 2) % data["good"].num_nodes
    out[SAVES].edge_index = ei
    return out


def test_best_epoch_is_the_first_best_validated_one() -> None:
    history = [{"epoch": 1, "val": 0.1}, {"epoch": 2, "val": None}, {"epoch": 3, "val": 0.3}, {"epoch": 4, "val": 0.3}]
    assert best_epoch(history) == 3
    assert best_epoch([{"epoch": 1, "val": None}]) is None


@pytest.mark.parametrize("model", ["pinsage", "lightgcn"])
def test_the_refit_learns_from_the_validation_window(model: str) -> None:
    torch.set_num_threads(1)
    data, id_maps, _, _ = planted_graph()
    other = with_other_window(data)
    cfg = dataclasses.replace(SMALL, model=model)
    trained, selection = fit_as_of(data, id_maps, {}, cfg)
    trained2, selection2 = fit_as_of(other, id_maps, {}, cfg)
    # The refit: no validation window, exactly the selection run's best epoch count.
    assert trained is not selection and trained.meta.config.val_share == 0.0
    assert len(trained.meta.history) == best_epoch(selection.meta.history)
    assert all(h["val"] is None for h in trained.meta.history)
    # The selection run trains on the saves before the window only: moving the window's saves leaves its
    # training losses as they were; the refit trains on them, so its first epoch already differs.
    first = len(selection.meta.history), len(selection2.meta.history)
    assert [h["loss"] for h in selection.meta.history[: min(first)]] == [
        h["loss"] for h in selection2.meta.history[: min(first)]
    ]
    assert trained.meta.history[0]["loss"] != trained2.meta.history[0]["loss"]
    weights = zip(trained.state_dict.values(), trained2.state_dict.values(), strict=True)
    assert any(not torch.equal(a, b) for a, b in weights)


def test_no_refit_without_a_validation_window() -> None:
    data, id_maps, _, _ = planted_graph()
    cfg = dataclasses.replace(SMALL, model="lightgcn", val_share=0.0, max_epochs=2)
    trained, selection = fit_as_of(data, id_maps, {}, cfg)
    assert trained is selection and len(trained.meta.history) == 2
    assert np.isfinite([h["loss"] for h in trained.meta.history]).all()


def test_fit_details_say_whether_the_time_budget_cut_training() -> None:
    torch.set_num_threads(1)
    data, id_maps, _, _ = planted_graph()
    cfg = dataclasses.replace(SMALL, model="lightgcn")
    trained, selection = fit_as_of(data, id_maps, {}, cfg)
    d = fit_details(trained, selection, cfg.time_budget_s)
    assert d["refit"] and d["epochs"] == d["best_epoch"] == best_epoch(selection.meta.history)
    assert d["selection_epochs"] == len(selection.meta.history) and d["torch_threads"] == 1
    assert d["selection_s"] > 0 and d["refit_s"] > 0 and not d["time_budget_cut"]
    # A budget below the seconds the runs took is reported as having cut them.
    assert fit_details(trained, selection, 0.0)["time_budget_cut"]
