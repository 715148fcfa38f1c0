"""For You's batches split over forked workers give the lists one process gives, with and without a ranker."""

from __future__ import annotations

import os

import numpy as np
import pytest

from graphrec.core.config import ForYouConfig
from serving.foryou import pipeline
from serving.foryou.context import ForYouContext
from serving.foryou.pipeline import for_you
from serving.foryou.ranker import fit_ranker
from tests.serving.foryou.world import DAY, planted

CFG = ForYouConfig(sources=("cosave", "followees", "trending", "fresh"), per_source=50, clusters=8, ranker_min_leaf=5)


@pytest.mark.parametrize("with_ranker", [False, True])
def test_workers_give_the_lists_of_one_process(with_ranker: bool, tmp_path, monkeypatch) -> None:
    full = planted(seed=3)
    a = full.as_of_time(full.as_of - 10 * DAY)
    ranker = fit_ranker(a, CFG) if with_ranker else None
    users = np.flatnonzero(a.eligible())
    assert len(users) > 3 * 16  # several batches per worker
    one = for_you(ForYouContext.build(a, CFG), users, 20, ranker, workers=1, batch=16)
    # Each batch notes the process that made it (the workers inherit the patched function when forked).
    made = pipeline._batch_lists

    def noting(*args, **kwargs):
        with open(tmp_path / "pids", "a") as f:
            f.write(f"{os.getpid()}\n")
        return made(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_batch_lists", noting)
    two = for_you(ForYouContext.build(a, CFG), users, 20, ranker, workers=2, batch=16)
    pids = (tmp_path / "pids").read_text().split()
    # The first batch here, every other in a worker (which of the two takes which depends on timing).
    assert len(pids) == -(-len(users) // 16) and pids[0] == str(os.getpid())
    assert str(os.getpid()) not in pids[1:] and 1 <= len(set(pids[1:])) <= 2
    assert (one.goods >= 0).sum() > 0.9 * one.goods.size
    for name in ("goods", "scores", "source", "via", "interest"):
        np.testing.assert_array_equal(getattr(two, name), getattr(one, name), err_msg=name)


def test_workers_must_be_positive() -> None:
    a = planted()
    with pytest.raises(ValueError, match="foryou.workers"):
        for_you(ForYouContext.build(a, CFG), np.flatnonzero(a.eligible()), 20, workers=0)
