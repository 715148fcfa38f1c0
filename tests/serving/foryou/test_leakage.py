"""No leakage past the ranker's cut: the candidates and features of a context built as of the cut are the same
whatever happens after it (the way tests/evaluation/test_demo_protocol.py checks the evaluation's split)."""

from __future__ import annotations

import numpy as np

from graphrec.core.config import ForYouConfig
from serving.foryou.context import ForYouContext
from serving.foryou.features import candidate_batch
from serving.foryou.ranker import label_matrix, training_cut
from serving.foryou.sources import make_source
from tests.serving.foryou.world import AS_OF, DAY, N_GOODS, N_USERS, planted

SOURCES = ("cosave", "followees", "trending", "fresh")
CFG = ForYouConfig(sources=SOURCES, per_source=40, clusters=8)


def _features(arrays, cut, users):
    ctx = ForYouContext.build(arrays.as_of_time(cut), CFG)
    return candidate_batch(ctx, users, [make_source(s) for s in SOURCES], CFG.per_source)


def test_saves_after_the_cut_change_labels_but_not_features() -> None:
    base = planted(seed=3)
    cut = training_cut(base, 0.2)
    rng = np.random.default_rng(1)
    # 300 extra saves after the cut, some of goods the users' candidates hold; and every existing save after
    # the cut moved to another time after it.
    extra = tuple(
        (int(u), int(g), int(t))
        for u, g, t in zip(
            rng.integers(0, N_USERS, 300),
            rng.integers(0, N_GOODS, 300),
            rng.integers(cut + 1, AS_OF, 300),
            strict=True,
        )
    )
    changed = planted(seed=3, extra_saves=extra)
    st = changed.save_time
    late = st.data > cut
    st.data[late] = np.minimum(st.data[late] + DAY, AS_OF)
    users = np.flatnonzero(base.as_of_time(cut).eligible())[:60]
    cs1, x1 = _features(base, cut, users)
    cs2, x2 = _features(changed, cut, users)
    np.testing.assert_array_equal(cs1.row, cs2.row)
    np.testing.assert_array_equal(cs1.good, cs2.good)
    np.testing.assert_array_equal(x1, x2)  # NaN == NaN here
    # The test could fail: the label window did change.
    l1, l2 = label_matrix(base, cut), label_matrix(changed, cut)
    assert l2.nnz > l1.nnz


def test_a_save_before_the_cut_does_change_the_features() -> None:
    base = planted(seed=3)
    cut = training_cut(base, 0.2)
    users = np.flatnonzero(base.as_of_time(cut).eligible())[:60]
    cs1, x1 = _features(base, cut, users)
    # The same kind of change before the cut must show (else the test above proves nothing).
    g = int(cs1.good[0])
    extra = tuple((int(u), g, cut - DAY) for u in range(N_USERS) if u not in users[:1])
    cs2, x2 = _features(planted(seed=3, extra_saves=extra), cut, users)
    assert len(cs1) != len(cs2) or not np.array_equal(np.nan_to_num(x1), np.nan_to_num(x2))


def test_labels_are_after_the_cut_of_goods_that_existed_at_it() -> None:
    a = planted(seed=2)
    cut = training_cut(a, 0.15)
    labels = label_matrix(a, cut).tocoo()
    t = np.asarray(a.save_time[labels.row, labels.col]).ravel()
    assert len(t) and (t > cut).all()
    assert (a.created_at[labels.col] <= cut).all()
    # About label_share of the saves fall after the cut.
    assert abs((a.save_time.data > cut).mean() - 0.15) < 0.02
