"""The For You pipeline on a planted world: every source keeps its contract, the ranker learns, the lists
exclude what they must and every eligible user gets a full list."""

from __future__ import annotations

import numpy as np
import pytest

from graphrec.core.config import ForYouConfig
from graphrec.core.metrics import recall_at_k
from serving.foryou.context import ForYouContext, ModelVectors
from serving.foryou.pipeline import PICK_SOURCES, for_you, lists_score_fn
from serving.foryou.ranker import Ranker, fit_ranker, label_matrix, training_cut
from serving.foryou.sources import make_source
from tests.serving.foryou.world import DAY, planted

SOURCES = ("cosave", "followees", "trending", "fresh", "model")
CFG = ForYouConfig(sources=SOURCES, per_source=50, clusters=8, ranker_rounds=60, ranker_min_leaf=5)


def _model(arrays) -> ModelVectors:
    # A "model": users as the mean CLIP vector of their saves.
    uv = np.asarray(arrays.saves @ arrays.content, dtype=np.float32)
    return ModelVectors(uv, arrays.content.copy(), kind="test", version="v0")


def _ctx(arrays) -> ForYouContext:
    return ForYouContext.build(arrays, CFG, model=_model(arrays))


@pytest.mark.parametrize("name", SOURCES)
def test_each_source_keeps_the_contract(name: str) -> None:
    a = planted().as_of_time(planted().as_of - 10 * DAY)
    ctx = _ctx(a)
    users = np.flatnonzero(a.eligible())[:40]
    c = make_source(name).candidates(ctx, users, 30)
    assert c.source == name and c.goods.shape == (40, 30) and c.scores.shape == (40, 30)
    ok = c.goods >= 0
    assert ok.any()
    # Never an excluded (saved) good, never one created after as_of; best first; no duplicates.
    rows = np.repeat(np.arange(40)[:, None], 30, axis=1)
    assert not np.asarray(ctx.exclude[users[rows[ok]], c.goods[ok]]).any()
    assert (a.created_at[c.goods[ok]] <= a.as_of).all()
    s = np.where(ok, c.scores, -1e30)
    assert (np.diff(s, axis=1) <= 1e-6).all()
    for r in range(40):
        g = c.goods[r][c.goods[r] >= 0]
        assert len(g) == len(np.unique(g))
    if name == "followees":
        via = c.via[ok]
        followed = np.asarray(a.follows[users[rows[ok]], via]).ravel()
        assert (via >= 0).all() and (followed > 0).all()
        assert np.asarray(a.saves[via, c.goods[ok]]).ravel().all()
    if name == "fresh":
        assert (a.created_at[c.goods[ok]] >= a.as_of - CFG.fresh_days * DAY).all()
        assert (a.popularity()[c.goods[ok]] <= CFG.fresh_max_saves).all()


def test_ranker_learns_and_round_trips(tmp_path) -> None:
    full = planted(seed=4)
    # Evaluate on the newest 15% (a test window); the ranker trains inside the rest with its own cut.
    T = training_cut(full, 0.15)
    train = full.as_of_time(T)
    truth = label_matrix(full, T)
    users = np.flatnonzero(train.eligible() & (np.diff(truth.indptr) > 0))
    ranker = fit_ranker(train, CFG, model=_model(train.as_of_time(training_cut(train, CFG.label_share))))
    assert ranker.meta["positives"] > 0 and ranker.meta["cut"] < T
    ctx = _ctx(train)
    ranked = for_you(ctx, users, 20, ranker)
    fused = for_you(ctx, users, 20, None)
    rng = np.random.default_rng(0)
    random = np.stack([rng.choice(np.flatnonzero(train.live()), 20, replace=False) for _ in users])
    r_rank = recall_at_k(ranked.goods, truth[users], 20).mean()
    r_rand = recall_at_k(random, truth[users], 20).mean()
    assert r_rank > 2 * r_rand
    assert recall_at_k(fused.goods, truth[users], 20).mean() > 2 * r_rand
    ranker.save(tmp_path)
    again = Ranker.load(tmp_path)
    assert again is not None and again.sources == ranker.sources
    np.testing.assert_array_equal(for_you(ctx, users, 20, again).goods, ranked.goods)
    assert Ranker.load(tmp_path / "none") is None


def test_lists_are_full_exclude_saves_and_cap_domains() -> None:
    a = planted(seed=5)
    ctx = _ctx(a)
    users = np.flatnonzero(a.eligible())
    lists = for_you(ctx, users, 20, None)
    assert ((lists.goods >= 0).sum(axis=1) == 20).all()
    rows = np.repeat(np.arange(len(users))[:, None], 20, axis=1)
    assert not np.asarray(ctx.exclude[users[rows].ravel(), lists.goods.ravel()]).any()
    for r in range(len(users)):
        g = lists.goods[r]
        assert len(np.unique(g)) == 20
        listed = g[lists.source[r] != PICK_SOURCES.index("popular")]
        assert np.bincount(a.domain[listed]).max(initial=0) <= CFG.max_per_domain
    assert sum(lists.source_counts().values()) == lists.goods.size
    # The evaluation's score function ranks each list in its order.
    s = lists_score_fn(lists, a.n_goods)(users[:3])
    np.testing.assert_array_equal(np.argsort(-s, axis=1)[:, :20], lists.goods[:3])


def test_a_ranker_needs_the_sources_it_was_trained_with() -> None:
    a = planted(seed=4)
    ranker = fit_ranker(a, CFG, model=_model(a))
    ctx = ForYouContext.build(a, CFG)  # no model vectors
    with pytest.raises(ValueError, match="model"):
        for_you(ctx, np.flatnonzero(a.eligible())[:5], 20, ranker)


def test_trending_scores_are_velocity_times_the_users_cluster_and_domain_shares() -> None:
    import dataclasses

    from serving.foryou.sources.trending import Trending

    a = planted()
    dom = a.domain.copy()
    dom[::7] = -1  # goods without a domain add no domain share
    a = dataclasses.replace(a, domain=dom)
    ctx = _ctx(a)
    users = np.flatnonzero(a.eligible())[:30]
    block = Trending().block(ctx, users)  # the goods saved in the window only
    velocity = np.log1p(a.popularity(since=a.as_of - CFG.trending_days * DAY)).astype(np.float32)
    np.testing.assert_array_equal(block.cols, np.flatnonzero(velocity > 0))
    assert 0 < len(block.cols) < a.n_goods
    got = np.zeros((30, a.n_goods), np.float32)
    got[:, block.cols] = block.values
    cluster = ctx.user_cluster_share()[users].toarray()[:, ctx.clusters()]
    domain = np.where(dom >= 0, ctx.user_domain_share()[users].toarray()[:, np.maximum(dom, 0)], 0.0)
    assert block.values.dtype == np.float32
    np.testing.assert_array_equal(got, ((cluster + domain.astype(np.float32)) * velocity).astype(np.float32))
    assert (got[:, velocity > 0] > 0).any()
    # Its candidates and pair scores are those of the whole block.
    from serving.foryou.sources.base import top_n

    want_g, want_s = top_n(ctx, users, got.copy(), 40)
    c = Trending().from_block(ctx, users, block, 40)
    np.testing.assert_array_equal(c.goods, want_g)
    np.testing.assert_array_equal(c.scores, want_s)
    rows, goods = np.nonzero(np.ones((30, a.n_goods), bool))
    np.testing.assert_array_equal(block[rows, goods], got[rows, goods])


@pytest.mark.parametrize("kind", ["exact", "ivf", "ivf_fp16"])
def test_fresh_through_the_pools_index_finds_the_exact_lists(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.foryou.sources.fresh as fresh

    a = planted(seed=3)
    users = np.flatnonzero(a.eligible())
    want = make_source("fresh").candidates(_ctx(a), users, 25)
    monkeypatch.setattr(fresh, "FRESH_EXACT_POOL", 0)
    monkeypatch.setattr(fresh, "FRESH_INDEX", kind)
    got = make_source("fresh").candidates(_ctx(a), users, 25)
    assert (want.goods >= 0).sum() > 100
    if kind == "exact":  # the same lists (cosines do not tie here), scores and anchors
        np.testing.assert_array_equal(got.goods, want.goods)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
        np.testing.assert_array_equal(got.via, want.via)
    else:  # approximate: most of each list
        hits = [
            len(np.intersect1d(g[g >= 0], w[w >= 0])) / max(1, (w >= 0).sum())
            for g, w in zip(got.goods, want.goods, strict=True)
        ]
        assert float(np.mean(hits)) >= 0.8
