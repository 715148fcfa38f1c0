"""Baselines on tiny planted inputs, and the evaluator's figures on a hand-checked public-style split."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from evaluation import baselines as B
from evaluation.evaluator import Recommender, evaluate
from evaluation.protocol import DemoTruth, TrainData, binary_csr, from_public
from graphrec.core.metrics import topk

DAY = 86400.0


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def picks(fit, train: TrainData, users, k: int) -> list[list[int]]:
    return topk(fit(train), np.asarray(users), k, exclude=train.saves).tolist()


def test_recent_popularity_weighs_recent_saves_more() -> None:
    # Good 0: three saves a year ago; good 1: two saves yesterday; good 2: one save today.
    rows, cols = np.array([0, 1, 2, 3, 4, 5]), np.array([0, 0, 0, 1, 1, 2])
    T = 1000 * DAY
    times = np.array([T - 365 * DAY] * 3 + [T - DAY] * 2 + [T])
    train = TrainData(binary_csr(rows, cols, (7, 3)), binary_csr(rows, cols, (7, 3), times), split_time=T)
    assert picks(B.recent_popularity, train, [6], 3) == [[1, 2, 0]]
    # Without times it is plain popularity.
    assert picks(B.recent_popularity, TrainData(train.saves), [6], 3) == [[0, 1, 2]]


def test_mean_clip_and_multi_interest_on_two_tastes() -> None:
    # Goods 0-5 of taste A (x axis), 6-11 of taste B (y axis); the user saved 0-3 (A) and 6-7 (B).
    rng = np.random.default_rng(0)
    a = unit(np.array([1.0, 0.0, 0.0]) + 0.05 * rng.standard_normal((6, 3)))
    b = unit(np.array([0.0, 1.0, 0.0]) + 0.05 * rng.standard_normal((6, 3)))
    content = np.concatenate([a, b])
    saves = binary_csr(np.zeros(6, np.int64), np.array([0, 1, 2, 3, 6, 7]), (1, 12))
    train = TrainData(saves, content=content)
    mean = picks(B.mean_content, train, [0], 4)[0]
    assert set(mean[:2]) == {4, 5}  # the mean leans to the bigger taste
    multi = picks(lambda t: B.multi_interest(t, max_interests=2, saves_per_interest=3), train, [0], 4)[0]
    # Interleaved: the biggest cluster's best, then the other's, alternating.
    assert [g < 6 for g in multi] == [True, False, True, False]
    assert set(multi) <= {4, 5, 8, 9, 10, 11}


def test_item_knn_follows_co_saves() -> None:
    # Users 0-2 save goods 0 and 1 together; users 3-4 save 2 and 3; user 5 saved only good 0.
    rows = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5])
    cols = np.array([0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 0])
    train = TrainData(binary_csr(rows, cols, (6, 4)))
    assert picks(B.item_knn, train, [5], 1) == [[1]]


def test_svd_recovers_a_block_structure() -> None:
    # Two blocks of users/goods; the last user of block 0 misses good 2, which SVD should put first.
    blocks = np.zeros((8, 8), np.float32)
    blocks[:4, :4] = 1
    blocks[4:, 4:] = 1
    blocks[3, 2] = 0
    train = TrainData(sp.csr_matrix(blocks))
    assert picks(lambda t: B.pure_svd(t, factors=2), train, [3], 1) == [[2]]


def test_random_is_the_same_whatever_the_batch() -> None:
    train = TrainData(sp.csr_matrix((5, 50), dtype=np.float32))
    fn = B.random_scores(train)
    together = topk(fn, np.arange(5), 10, batch_size=5)
    apart = topk(fn, np.arange(5), 10, batch_size=2)
    np.testing.assert_array_equal(together, apart)
    assert len({tuple(r) for r in together.tolist()}) == 5


def test_oracle_ranks_the_true_style_first() -> None:
    truth = DemoTruth(interest=np.array([[0.0, 1.0], [0.7, 0.3]], np.float32), style=np.array([0, 1, 0, 1, -1]))
    train = TrainData(binary_csr(np.array([0]), np.array([3]), (2, 5)))
    assert picks(B.oracle(truth), train, [0, 1], 2) == [[1, 0], [0, 2]]


def test_evaluator_figures_on_a_hand_checked_split() -> None:
    # Two users, four goods. Train: user 0 saved good 0, user 1 saved good 1. Test: user 0 -> good 2,
    # user 1 -> good 3. Scores prefer goods 2 then 3 for everyone, so user 0 hits at rank 1 and user 1 at
    # rank 2 (good 2 first, then 3; own saves masked).
    train = binary_csr(np.array([0, 1]), np.array([0, 1]), (2, 4))
    test = binary_csr(np.array([0, 1]), np.array([2, 3]), (2, 4))
    es = from_public("toy", train, test, domain=np.array([0, 0, 1, 2]))
    row = np.array([0.1, 0.2, 0.9, 0.5], np.float32)
    fixed = Recommender("fixed", "fixed order", lambda t: lambda u: np.tile(row, (len(u), 1)))
    result = evaluate(es, [fixed], ks=(1, 2))
    m = result.rows[0].metrics
    assert m["recall@1"] == pytest.approx(0.5) and m["recall@2"] == pytest.approx(1.0)
    assert m["mrr@2"] == pytest.approx((1 + 0.5) / 2)
    assert m["precision@2"] == pytest.approx(0.5)
    # Top-2 lists: user 0 gets [2, 3], user 1 gets [2, 3]: 2 distinct goods of 4, 2 domains each.
    assert m["coverage@2"] == pytest.approx(0.5) and m["domains@2"] == pytest.approx(2.0)
    assert m["users_with_5_picks"] == 0.0  # only 3 candidates each
    assert result.rows[0].recall_curve[:3] == pytest.approx([0.5, 1.0, 1.0])
