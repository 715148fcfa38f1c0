"""PinSage-lite's pieces: recency weights, leak-free user features, the encoder's shapes."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.features import SECONDS_PER_DAY, as_mean, recency_weights, weighted_mean_features
from training.models.pinsage import PinSageLite


@given(
    ages=st.lists(st.integers(0, 400), min_size=1, max_size=30),
    half_life=st.floats(1.0, 365.0),
)
@settings(max_examples=50, deadline=None)
def test_recency_weight_halves_every_half_life(ages: list[int], half_life: float) -> None:
    ages_s = np.array(ages, dtype=np.int64) * int(SECONDS_PER_DAY)
    time = 1_700_000_000 - ages_s
    w = recency_weights(np.zeros(len(ages), dtype=np.int64), time, 1, half_life)
    newest = min(ages)
    np.testing.assert_allclose(w, 0.5 ** ((np.array(ages) - newest) / half_life), rtol=1e-9)
    assert w.max() == 1.0
    assert np.all(recency_weights(np.zeros(len(ages), dtype=np.int64), time, 1, 0.0) == 1.0)


def test_weighted_mean_and_empty_owners() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    sums, totals = weighted_mean_features(np.array([0, 0, 2]), np.array([0, 1, 2]), np.array([3.0, 1.0, 2.0]), 3, x)
    mean = as_mean(sums, totals)
    torch.testing.assert_close(mean, torch.tensor([[0.75, 0.25], [0.0, 0.0], [1.0, 1.0]]))


def test_encoder_outputs_unit_vectors_for_users_and_goods(planted) -> None:
    data, *_ = planted()
    model = PinSageLite(tuple(data.node_types), tuple(data.edge_types), 32, 8, 2)
    x = {"good": data["good"].x, "user": torch.randn(data["user"].num_nodes, 32)}
    nodes = {t: data[t].num_nodes for t in data.node_types}
    out = model(x, {e: data[e].edge_index for e in data.edge_types}, nodes)
    assert out["user"].shape == (nodes["user"], 8) and out["good"].shape == (nodes["good"], 8)
    torch.testing.assert_close(out["good"].norm(dim=1), torch.ones(nodes["good"]))
    before = out["good"].detach().clone()
    model.reset_parameters()
    after = model(x, {e: data[e].edge_index for e in data.edge_types}, nodes)["good"]
    assert not torch.allclose(before, after)
