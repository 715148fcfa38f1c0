import numpy as np

from etl.tables import NO_TIME
from tests.etl.helpers import SMALL, small_world


def test_counts_and_time_order():
    tables, truth = small_world()
    assert len(tables.users.id) == SMALL.users
    assert len(tables.goods.id) == SMALL.goods
    s = tables.saves
    assert np.all(np.diff(s.saved_at) >= 0)
    # A good is created by its first save, and nobody saves it before that.
    created = dict(zip(tables.goods.id.tolist(), tables.goods.created_at.tolist(), strict=True))
    assert all(t >= created[g] for g, t in zip(s.good_id.tolist(), s.saved_at.tolist(), strict=True))
    assert set(np.unique(s.source)) <= {"external", "explore", "friend"}
    assert (s.source == "external").sum() == SMALL.goods


def test_no_duplicate_saves_and_deletions_after_last_save():
    tables, _ = small_world()
    s, g = tables.saves, tables.goods
    pairs = np.stack([s.user_id, s.good_id], axis=1)
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    deleted = g.deleted_at != NO_TIME
    last = {gid: t for gid, t in zip(s.good_id.tolist(), s.saved_at.tolist(), strict=True)}
    assert all(g.deleted_at[i] > last[g.id[i]] for i in np.nonzero(deleted)[0])


def test_planted_structure_is_recoverable():
    """Goods of one style are closer to each other than to other styles, and users save mostly their styles."""
    tables, truth = small_world()
    style = truth.good_style["style"]
    emb = tables.goods.embedding
    centroids = np.stack([emb[style == k].mean(0) for k in range(SMALL.styles)])
    nearest = np.argmax(emb @ centroids.T, axis=1)
    assert (nearest == style).mean() > 0.9
    interests = {}
    for u, k in zip(truth.user_interests["user_id"].tolist(), truth.user_interests["style"].tolist(), strict=True):
        interests.setdefault(u, set()).add(k)
    s = tables.saves
    on_taste = [style[g - 1] in interests[u] for u, g in zip(s.user_id.tolist(), s.good_id.tolist(), strict=True)]
    assert np.mean(on_taste) > 0.6


def test_activity_is_long_tailed():
    tables, _ = small_world(users=2000, goods=20000, styles=20, domains=100)
    per_user = np.bincount(tables.saves.user_id)[1:]
    assert 8 <= np.median(per_user) <= 25
    assert per_user.max() > 10 * np.median(per_user)
    assert (per_user < 10).mean() > 0.2


def test_same_seed_same_world():
    a, _ = small_world()
    b, _ = small_world()
    assert np.array_equal(a.saves.good_id, b.saves.good_id)
    assert np.array_equal(a.goods.embedding, b.goods.embedding)
    c, _ = small_world(seed=4)
    assert not np.array_equal(a.saves.good_id, c.saves.good_id)
