"""Two fits with one seed give the same weights bit for bit, with torch on several threads (CI's flaky
PinSage picks came from a multi-threaded CPU kernel adding gradients in run-dependent order)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from etl.build import build_graph
from etl.demo_data import DemoParams, generate
from etl.validate import clean_tables
from graphrec.core.config import TrainConfig
from training.train import fit

PARAMS = DemoParams(users=300, goods=3000, styles=12, domains=60, seed=0)
TINY = TrainConfig(max_epochs=1, steps_per_epoch=3, time_budget_s=600.0, seed=0)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["pinsage", "lightgcn"])
def test_same_seed_same_weights(kind: str, two_threads: None) -> None:
    tables, _ = generate(PARAMS)
    cleaned, _ = clean_tables(tables, PARAMS.dim, now=PARAMS.end)
    data, id_maps, report = build_graph(cleaned, min_goods=10)
    cfg = dataclasses.replace(TINY, model=kind)
    runs = [fit(data, id_maps, {"as_of": report.as_of}, cfg, progress=False) for _ in range(4)]
    first = runs[0].state_dict
    for other in runs[1:]:
        assert other.state_dict.keys() == first.keys()
        for name, value in other.state_dict.items():
            assert torch.equal(value, first[name]), f"{kind}: {name} differs between two fits with one seed"
    assert not torch.are_deterministic_algorithms_enabled()  # fit restores the global setting


def test_fit_ignores_what_ran_before_it(two_threads: None) -> None:
    """evaluate fits its rows one after another in one process: the global random state the rows before
    PinSage-lite leave behind (numpy's, torch's, Python's) does not reach its weights."""
    import random

    import numpy as np

    tables, _ = generate(PARAMS)
    cleaned, _ = clean_tables(tables, PARAMS.dim, now=PARAMS.end)
    data, id_maps, report = build_graph(cleaned, min_goods=10)
    cfg = dataclasses.replace(TINY, model="pinsage")
    first = fit(data, id_maps, {"as_of": report.as_of}, cfg, progress=False).state_dict
    np.random.seed(12345)
    np.random.rand(1000)
    torch.manual_seed(54321)
    torch.rand(1000)
    random.seed(7)
    after = fit(data, id_maps, {"as_of": report.as_of}, cfg, progress=False).state_dict
    for name, value in after.items():
        assert torch.equal(value, first[name]), f"{name} depends on the global random state before the fit"
