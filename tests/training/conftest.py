"""Fixtures of the training tests: one torch thread, and the planted two-community world (see worlds.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from graphrec.core.artifacts import IdMaps
from tests.training.worlds import planted_graph


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    # Tiny tensors on a shared 2-core machine: threads only add contention here.
    torch.set_num_threads(1)


@pytest.fixture
def planted() -> Callable[..., tuple[HeteroData, IdMaps, np.ndarray, np.ndarray]]:
    return planted_graph
