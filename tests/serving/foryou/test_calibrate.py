"""Calibrated lists (serving/foryou/calibrate.py): a known answer, the limits lam = 0 and 1, and properties."""

from __future__ import annotations

import numpy as np
import pytest

from serving.foryou.calibrate import calibrate, kl_divergence
from serving.foryou.interests import InterestParams, find_interests, good_interest
from tests.serving.foryou.test_interests import PLANTED, catalogue, four_taste_user, saves_of


def test_kl_divergence_known_values() -> None:
    p = np.array([0.5, 0.5, 0.0])
    assert kl_divergence(p, p) == pytest.approx(0.0)
    # The list has only the first interest: q~ = 0.99 * [1, 0, 0] + 0.01 * p.
    q_s = np.array([0.995, 0.005])
    assert kl_divergence(p, np.array([1.0, 0.0, 0.0])) == pytest.approx(float((0.5 * np.log(0.5 / q_s)).sum()))


def test_calibrated_top_20_covers_four_tastes_in_proportion_and_one_user_vector_does_not() -> None:
    vecs, style, domain = catalogue()
    goods = four_taste_user(style, PLANTED)
    saves = saves_of([goods], len(style))
    ui = find_interests(saves, vecs, params=InterestParams(dim=0))
    # The uncalibrated list: cosine to one user vector (the mean of the saves) over every unsaved good.
    user_vec = vecs[goods].mean(axis=0)
    cand = np.array([[g for g in np.argsort(-(vecs @ user_vec), kind="stable") if g not in set(goods)][:200]])
    score = (vecs[cand[0]] @ user_vec)[None, :]
    slot = good_interest(ui, np.array([0]), cand, vecs)
    weight = ui.weight[:, :4]
    plain = cand[0, calibrate(cand, score, slot, weight, 20, 0.0)[0]]
    np.testing.assert_array_equal(plain, cand[0, :20])  # lam = 0 is the score order
    shares = lambda picks: np.bincount(style[picks], minlength=4)[:4] / 20.0  # noqa: E731
    assert (shares(plain) > 0).sum() < 4  # one vector: its neighbourhood, not all four tastes
    cal = cand[0, calibrate(cand, score, slot, weight, 20, 0.9)[0]]
    assert len(set(cal.tolist())) == 20
    np.testing.assert_allclose(shares(cal), [0.4, 0.3, 0.2, 0.1], atol=0.051)
    # A milder trade-off still reaches every taste, with fewer places for the small ones.
    mild = cand[0, calibrate(cand, score, slot, weight, 20, 0.5)[0]]
    assert (shares(mild) > 0).all() and shares(mild)[3] <= shares(cal)[3]
    # Calibration gives up as little relevance as it can: within a taste it takes the best-scored goods.
    for s in range(4):
        mine = cand[0][style[cand[0]] == s]
        picked = [g for g in cal if style[g] == s]
        assert set(picked) == set(mine[: len(picked)].tolist())


def test_domain_cap_holds_inside_the_calibrated_list() -> None:
    rng = np.random.default_rng(0)
    n, c, k = 30, 60, 12
    goods = np.stack([rng.permutation(500)[:c] for _ in range(n)])
    scores = rng.random((n, c))
    slot = rng.integers(-1, 3, (n, c))
    weight = rng.dirichlet(np.ones(3), n)
    domains = rng.integers(-1, 5, 500)
    order = calibrate(goods, scores, slot, weight, k, 0.4, domains=domains, max_per_domain=2)
    for i in range(n):
        taken = order[i][order[i] >= 0]
        assert len(set(taken.tolist())) == len(taken)
        d = domains[goods[i, taken]]
        counts = np.bincount(d[d >= 0], minlength=5)
        assert counts.max(initial=0) <= 2
        # Filled unless the cap ran out of candidates.
        possible = (domains[goods[i]] < 0).sum() + 2 * len(np.unique(domains[goods[i]][domains[goods[i]] >= 0]))
        assert len(taken) == min(k, possible)


def test_padding_duplicates_and_users_without_interests() -> None:
    goods = np.array([[5, 5, 7, -1, 9], [1, 2, 3, 4, -1]])
    scores = np.array([[0.9, 0.9, 0.5, 0.0, 0.1], [0.1, 0.4, 0.3, 0.2, 0.0]])
    slot = np.array([[0, 0, 1, -1, 1], [0, 0, 0, 0, -1]])
    weight = np.array([[0.5, 0.5], [0.0, 0.0]])
    order = calibrate(goods, scores, slot, weight, 4, 0.7)
    picked = np.where(order >= 0, np.take_along_axis(goods, np.maximum(order, 0), 1), -1)
    assert picked[0].tolist()[:3] == [5, 7, 9] and picked[0, 3] == -1
    assert picked[1].tolist() == [2, 3, 4, 1]  # no interests: the score order
    with pytest.raises(ValueError, match="lam"):
        calibrate(goods, scores, slot, weight, 4, 1.5)
    with pytest.raises(ValueError, match="below 2"):
        calibrate(goods, scores, slot + 1, weight, 4, 0.5)


def test_final_list_calibrates_then_reranks_and_names_each_picks_interest() -> None:
    from graphrec.core.config import ForYouConfig
    from serving.foryou.calibrate import final_list
    from serving.foryou.context import ForYouContext
    from serving.rerank import rerank
    from tests.serving.foryou.test_interests import _arrays

    vecs, style, domain = catalogue()
    goods = four_taste_user(style, PLANTED)
    arrays = _arrays(saves_of([goods], len(style)), vecs, domain)
    user_vec = vecs[goods].mean(axis=0)
    cand = np.array([[g for g in np.argsort(-(vecs @ user_vec), kind="stable") if g not in set(goods)][:200]])
    score = (vecs[cand[0]] @ user_vec)[None, :]
    off = ForYouContext.build(arrays, ForYouConfig(calibration=0.0, interest_min_places=0, max_per_domain=20))
    picks, slot = final_list(off, np.array([0]), cand, score, 20)
    np.testing.assert_array_equal(picks, rerank(cand, score, vecs, domain, 20, 0.0, 20))
    on = ForYouContext.build(arrays, ForYouConfig(calibration=0.9, max_per_domain=20))
    picks, slot = final_list(on, np.array([0]), cand, score, 20)
    np.testing.assert_allclose(np.bincount(style[picks[0]], minlength=4)[:4] / 20, [0.4, 0.3, 0.2, 0.1], atol=0.051)
    np.testing.assert_array_equal(slot[0], style[picks[0]])  # interest slot j is taste j here


def test_interest_quotas_share_places_by_weight_with_a_floor() -> None:
    from serving.foryou.calibrate import interest_quotas

    w = np.array([[0.5, 0.3, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0], [0.9, 0.05, 0.05, 0.0]])
    q = interest_quotas(w, 20, 1.0)
    assert q.tolist()[0] == [10, 6, 4, 0] and q[1].sum() == 0 and q[2].sum() == 20
    half = interest_quotas(w, 20, 0.5)
    assert half[0].sum() == 10 and (half[0] <= q[0]).all()
    assert interest_quotas(w, 20, 0.0, floor=1).tolist() == [[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 0]]


def test_a_quota_gives_a_small_taste_its_places_where_score_order_gives_none() -> None:
    # One user, two interests (0.8 / 0.2); the 30 candidates of interest 0 all outscore interest 1's 10.
    goods = np.arange(40)[None, :]
    slot = np.array([[0] * 30 + [1] * 10])
    score = -np.arange(40, dtype=np.float64)[None, :]
    weight = np.array([[0.8, 0.2]])
    plain = calibrate(goods, score, slot, weight, 10, 0.0)
    assert (slot[0, plain[0]] == 0).all()
    quota = calibrate(goods, score, slot, weight, 10, 0.0, quota=1.0)
    assert np.bincount(slot[0, quota[0]], minlength=2).tolist() == [8, 2]
    # Within each interest the score order holds: the best two of interest 1, the best eight of interest 0.
    assert sorted(quota[0].tolist()) == [*range(8), 30, 31]
    floor = calibrate(goods, score, slot, weight, 10, 0.0, quota_floor=1)
    assert sorted(floor[0].tolist()) == [*range(9), 30]


def test_rerank_pool_adds_each_interests_best_outside_the_pool() -> None:
    from serving.foryou.features import CandidateSet
    from serving.foryou.pipeline import rerank_pool

    n = 12
    row = np.zeros(n, np.int64)
    cs = CandidateSet(
        users=np.array([7]),
        sources=("x",),
        row=row,
        good=np.arange(n),
        group=np.array([n]),
        source_score=np.zeros((n, 1), np.float32),
        source_rank=np.ones((n, 1), np.float32),
        via=np.full((n, 1), -1),
        interest=np.array([0] * 8 + [1] * 3 + [-1]),
    )
    score = -np.arange(n, dtype=np.float32)
    goods, sc, slots = rerank_pool(cs, score, 1, 4, 0)
    assert goods[0].tolist() == [0, 1, 2, 3]
    goods, sc, slots = rerank_pool(cs, score, 1, 4, 2)
    assert goods[0][goods[0] >= 0].tolist() == [0, 1, 2, 3, 8, 9]
    assert slots[0][goods[0] >= 0].tolist() == [0, 0, 0, 0, 1, 1] and (np.diff(sc[0][goods[0] >= 0]) < 0).all()
