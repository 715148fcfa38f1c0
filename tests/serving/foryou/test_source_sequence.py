"""The sequence source (next goods for the user's recent sequence) on the planted For You world.

The injected scores plant a next-good rule: after good A comes good B. A "sequence model" that reads the
user's newest save (as the app's callable reads their newest saves) gives B the top score and everything
else a negative dot product; the source must propose B first, name A as the reason, never propose a saved
or not-yet-created good, and keep the order of negative scores (a source that kept only positive raw
scores would return nothing but B).
"""

from __future__ import annotations

import numpy as np
import pytest

from graphrec.core.config import ForYouConfig
from serving.foryou.context import ForYouContext
from serving.foryou.sources.sequence import NextGoods
from tests.serving.foryou.world import DAY, planted

CFG = ForYouConfig(sources=("cosave",), per_source=30, clusters=8)
A_GOOD, B_GOOD = 11, 407


def next_after(ctx: ForYouContext, rule: dict[int, int]):
    """A planted sequence model: scores in [-2, -1) by good (a stable order), the ruled next good of the
    user's newest save at +5, and a saved good (which the source must skip) at +9."""
    g = ctx.arrays.n_goods
    base = -2.0 + np.arange(g, dtype=np.float32) / g

    def scores(users: np.ndarray) -> np.ndarray:
        newest = ctx.newest_saves(users, 1)[:, 0]
        s = np.tile(base, (len(users), 1))
        for i, last in enumerate(newest.tolist()):
            if last in rule:
                s[i, rule[last]] = 5.0
            if last >= 0:
                s[i, last] = 9.0  # already saved: never a candidate
        return s

    return scores


def _ctx():
    a = planted()
    # User 3 saves A last (a second before as_of), so the rule fires for them only.
    arrays = planted(extra_saves=((3, A_GOOD, a.as_of - 1),))
    ctx = ForYouContext.build(arrays, CFG)
    ctx.sequence = next_after(ctx, {A_GOOD: B_GOOD})
    return arrays, ctx


def test_the_planted_next_good_comes_first_with_its_reason() -> None:
    arrays, ctx = _ctx()
    assert arrays.saves[3, A_GOOD] and not arrays.saves[3, B_GOOD]
    users = np.array([3, 4, 5])
    c = NextGoods().candidates(ctx, users, 20)
    assert c.source == "sequence" and c.goods.shape == (3, 20)
    assert c.goods[0, 0] == B_GOOD
    assert c.via[0, 0] == A_GOOD
    # Others have no ruled good: B is not singled out for them.
    assert B_GOOD not in c.goods[1:, :1]
    # The reason of every pick is the user's newest save.
    newest = ctx.newest_saves(users, 1)[:, 0]
    assert (c.via[c.goods >= 0] == np.repeat(newest, 20)[c.goods.ravel() >= 0]).all()


def test_negative_scores_keep_their_order_and_saved_goods_never_come_back() -> None:
    arrays, ctx = _ctx()
    users = np.flatnonzero(arrays.eligible())[:30]
    c = NextGoods().candidates(ctx, users, 25)
    ok = c.goods >= 0
    # Every user gets a full list although all but one raw score are negative.
    assert ok.all()
    rows = np.repeat(np.arange(len(users))[:, None], 25, axis=1)
    assert not np.asarray(ctx.exclude[users[rows[ok]], c.goods[ok]]).any()
    assert (arrays.created_at[c.goods[ok]] <= arrays.as_of).all()
    assert (np.diff(c.scores, axis=1) <= 1e-6).all()
    # Below the ruled good the planted base order (higher good_idx first) decides.
    for r in range(len(users)):
        g = c.goods[r][c.goods[r] != B_GOOD]
        assert (np.diff(g) < 0).all()


def test_users_without_saves_get_nothing_and_a_missing_model_is_named() -> None:
    arrays, _ = _ctx()
    early = arrays.as_of_time(arrays.as_of - 115 * DAY)
    ctx = ForYouContext.build(early, CFG)
    ctx.sequence = next_after(ctx, {})
    saves = np.diff(early.save_time.indptr)
    empty, some = np.flatnonzero(saves == 0)[:3], np.flatnonzero(saves > 0)[:3]
    assert len(empty) == 3 and len(some) == 3
    c = NextGoods().candidates(ctx, np.r_[empty, some], 10)
    assert (c.goods[:3] == -1).all() and (c.goods[3:] >= 0).any()
    bare = ForYouContext.build(arrays, CFG)
    with pytest.raises(ValueError, match="sequence model"):
        NextGoods().candidates(bare, np.array([3]), 10)


def test_scores_of_the_wrong_shape_are_refused() -> None:
    arrays, ctx = _ctx()
    ctx.sequence = lambda users: np.zeros((len(users), 3), np.float32)
    with pytest.raises(ValueError, match="shape"):
        NextGoods().candidates(ctx, np.array([3]), 10)
