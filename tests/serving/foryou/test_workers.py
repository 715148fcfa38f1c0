"""For You's batches split over forked workers give the lists one process gives, with and without a ranker;
the first batch's sources on threads give the candidates and features of one thread; a memoised view is built
once however many threads ask for it."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import numpy as np
import pytest

from graphrec.core.config import ForYouConfig
from serving.foryou import pipeline
from serving.foryou.context import ForYouContext, ModelVectors
from serving.foryou.features import candidate_batch
from serving.foryou.pipeline import for_you
from serving.foryou.ranker import fit_ranker
from serving.foryou.sources import make_source
from tests.serving.foryou.world import DAY, planted
from training.graph_filter import gf_cf

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


def test_sources_on_threads_give_the_candidates_and_features_of_one_thread() -> None:
    a = planted(seed=4).as_of_time(planted(seed=4).as_of - 10 * DAY)
    names = ("graph_filter", "cosave", "followees", "trending", "fresh", "model", "interest")
    # The graph filter through its IVF index: one of the views the threads build side by side.
    cfg = dataclasses.replace(CFG, sources=names, graph_filter_search="ivf")
    gf = gf_cf(a.saves, k=24, alpha=0.3, svd="arpack")
    model = ModelVectors(np.asarray(a.saves @ a.content, np.float32), a.content.copy(), kind="test", version="v0")
    users = np.flatnonzero(a.eligible())[:40]
    sources = [make_source(s) for s in names]
    made = []
    for parallel in (False, True):
        ctx = ForYouContext.build(a, cfg, graph_filter=gf, model=model)
        made.append((candidate_batch(ctx, users, sources, 30, parallel=parallel), sorted(ctx.cache)))
    ((one, x_one), views_one), ((many, x_many), views_many) = made
    assert views_many == views_one and "interests" in views_one and "graph_filter_index" in views_one
    assert len(one) > 40 * 30 and (one.interest >= 0).any()
    for name in ("row", "good", "source_rank", "via", "interest"):
        np.testing.assert_array_equal(getattr(many, name), getattr(one, name), err_msg=name)
    np.testing.assert_array_equal(x_many, x_one)


def test_a_view_asked_for_by_many_threads_is_built_once() -> None:
    ctx = ForYouContext.build(planted(), CFG)
    calls = []

    def make() -> list[int]:
        calls.append(threading.get_ident())
        time.sleep(0.05)  # long enough for every thread to ask while the first builds
        return [len(calls)]

    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(ctx.memo("slow", make))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 8 and all(g is got[0] for g in got)
