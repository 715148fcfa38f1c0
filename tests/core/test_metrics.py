"""graphrec.core.metrics against hand-computed examples, ties, short lists, and brute force on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.core import metrics as m


def csr(rows: list[list[int]], n_goods: int) -> sp.csr_matrix:
    r = [i for i, goods in enumerate(rows) for _ in goods]
    c = [g for goods in rows for g in goods]
    return sp.csr_matrix((np.ones(len(c), np.float32), (r, c)), shape=(len(rows), n_goods))


def table(scores: list[list[float]]):
    arr = np.array(scores, dtype=np.float32)
    return lambda users: arr[users]


# --- topk --------------------------------------------------------------------------------------------


def test_topk_orders_best_first_and_excludes() -> None:
    score = table([[0.1, 0.9, 0.5, 0.7], [0.3, 0.2, 0.8, 0.1]])
    exclude = csr([[1], []], 4)
    picks = m.topk(score, np.array([0, 1]), 3, exclude=exclude)
    assert picks.tolist() == [[3, 2, 0], [2, 0, 1]]


def test_topk_ties_go_to_the_lower_good_idx_even_across_the_cut() -> None:
    # Six goods tied at 0.5 and k=3 cuts through the tie: the three lowest indices win, in order.
    score = table([[0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.5, 0.1]])
    picks = m.topk(score, np.array([0]), 4)
    assert picks.tolist() == [[2, 0, 1, 3]]
    # All equal: plain index order, for any batch size.
    flat = table([[1.0] * 10] * 3)
    assert m.topk(flat, np.array([0, 1, 2]), 4, batch_size=2).tolist() == [[0, 1, 2, 3]] * 3


def test_topk_pads_with_minus_one_when_a_user_has_fewer_candidates() -> None:
    score = table([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    exclude = csr([[0, 2], []], 3)
    picks = m.topk(score, np.array([0, 1]), 5, exclude=exclude)
    assert picks.tolist() == [[1, -1, -1, -1, -1], [0, 1, 2, -1, -1]]
    # -inf scores (a score function saying "not a candidate") are padding too.
    none = table([[-np.inf, 0.5, -np.inf]])
    assert m.topk(none, np.array([0]), 2).tolist() == [[1, -1]]


def test_topk_from_vectors_is_inner_product() -> None:
    users = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    goods = np.array([[0.2, 0.9], [0.8, 0.1], [0.5, 0.5]], np.float32)
    assert m.topk_from_vectors(users, goods, np.array([1, 0]), 2).tolist() == [[0, 2], [1, 2]]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 12),
    st.integers(1, 8),
    st.integers(0, 2**31 - 1),
)
def test_topk_matches_a_stable_sort(n_users: int, n_goods: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct values, so ties are common.
    scores = rng.integers(0, 3, size=(n_users, n_goods)).astype(np.float32)
    mask = rng.random((n_users, n_goods)) < 0.3
    exclude = sp.csr_matrix(mask.astype(np.float32))
    picks = m.topk(lambda u: scores[u], np.arange(n_users), k, exclude=exclude, batch_size=2)
    for u in range(n_users):
        allowed = [g for g in range(n_goods) if not mask[u, g]]
        expect = sorted(allowed, key=lambda g: (-scores[u, g], g))[:k]
        assert picks[u].tolist() == expect + [-1] * (k - len(expect))


# --- accuracy metrics ----------------------------------------------------------------------------------

# User 0: picks 5,1,7,3 and relevant {1, 3, 9}: hits at ranks 2 and 4.
# User 1: picks 2,-1,-1,-1 (one candidate) and relevant {2}: hit at rank 1.
# User 2: picks 4,6,8,0 and relevant {}: never counts.
PICKS = np.array([[5, 1, 7, 3], [2, -1, -1, -1], [4, 6, 8, 0]])
TRUTH = csr([[1, 3, 9], [2], []], 10)


def test_recall_precision_hit() -> None:
    np.testing.assert_allclose(m.recall_at_k(PICKS, TRUTH, 4), [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(m.recall_at_k(PICKS, TRUTH, 2), [1 / 3, 1.0, 0.0])
    # Padding counts as a miss in precision.
    np.testing.assert_allclose(m.precision_at_k(PICKS, TRUTH, 4), [0.5, 0.25, 0.0])
    np.testing.assert_allclose(m.hit_rate_at_k(PICKS, TRUTH, 1), [0.0, 1.0, 0.0])


def test_ndcg() -> None:
    dcg0 = 1 / math.log2(3) + 1 / math.log2(5)
    ideal0 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    np.testing.assert_allclose(m.ndcg_at_k(PICKS, TRUTH, 4), [dcg0 / ideal0, 1.0, 0.0])


def test_average_precision_and_reciprocal_rank() -> None:
    # AP@4 user 0: (1/2 + 2/4) / min(4, 3) = 1/3; user 1: 1/1 / 1.
    np.testing.assert_allclose(m.average_precision_at_k(PICKS, TRUTH, 4), [1 / 3, 1.0, 0.0])
    # AP@2 user 0: (1/2) / min(2, 3).
    np.testing.assert_allclose(m.average_precision_at_k(PICKS, TRUTH, 2), [0.25, 1.0, 0.0])
    np.testing.assert_allclose(m.reciprocal_rank_at_k(PICKS, TRUTH, 4), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(m.reciprocal_rank_at_k(PICKS, TRUTH, 1), [0.0, 1.0, 0.0])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6))
def test_accuracy_metrics_stay_in_range_and_grow_with_k(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_goods = 5, 12
    picks = np.stack([rng.permutation(n_goods)[: k + 2] for _ in range(n_users)])
    picks[rng.random(picks.shape) < 0.2] = -1
    picks = np.sort(picks, axis=1)[:, ::-1].copy()  # padding at the end
    truth = sp.csr_matrix((rng.random((n_users, n_goods)) < 0.3).astype(np.float32))
    ranked = (m.recall_at_k, m.precision_at_k, m.ndcg_at_k, m.average_precision_at_k, m.reciprocal_rank_at_k)
    for fn in ranked:
        v = fn(picks, truth, k)
        assert ((v >= 0) & (v <= 1 + 1e-9)).all()
    assert (m.recall_at_k(picks, truth, k + 1) >= m.recall_at_k(picks, truth, k) - 1e-12).all()
    assert (m.hit_rate_at_k(picks, truth, k) >= m.reciprocal_rank_at_k(picks, truth, k) - 1e-12).all()


# --- beyond accuracy -----------------------------------------------------------------------------------


def test_counts_coverage_and_share() -> None:
    assert m.n_picks(PICKS).tolist() == [4, 1, 4]
    assert m.n_picks(PICKS, 2).tolist() == [2, 1, 2]
    assert m.share_with_min_picks(PICKS, 4) == pytest.approx(2 / 3)
    # Distinct real goods in the top 2: {5, 1, 2, 4, 6} of 20 candidates.
    assert m.catalog_coverage(PICKS, 20, 2) == pytest.approx(5 / 20)


def test_intra_list_diversity() -> None:
    vecs = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], np.float32)  # normalised inside
    picks = np.array([[0, 1, -1], [0, 3, -1], [0, 1, 2], [2, -1, -1]])
    c = 1 / math.sqrt(2)
    # [0,1,2]: pairs (0,1) d=1, (0,2) d=1-c, (1,2) d=1-c.
    expect = [1.0, 0.0, (1 + 2 * (1 - c)) / 3, np.nan]
    np.testing.assert_allclose(m.intra_list_diversity(picks, vecs, 3), expect, atol=1e-6)


def test_distinct_domains() -> None:
    domain = np.array([0, 0, 1, -1, 2])
    picks = np.array([[0, 1, 2], [3, 4, -1], [-1, -1, -1], [3, 3, 0]])
    assert m.distinct_domains(picks, domain, 3).tolist() == [2, 1, 0, 1]
    assert m.distinct_domains(picks, domain, 1).tolist() == [1, 0, 0, 0]


def test_novelty() -> None:
    popularity = np.array([9, 0, 4])  # of 9 users
    picks = np.array([[0, 1], [2, -1], [-1, -1]])
    info = [-math.log2(10 / 10), -math.log2(1 / 10), -math.log2(5 / 10)]
    np.testing.assert_allclose(
        m.novelty(picks, popularity, 9, 2), [(info[0] + info[1]) / 2, info[2], np.nan], atol=1e-12
    )


def test_soft_scores_for_goods_no_model_could_pick() -> None:
    vecs = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    domain = np.array([3, 4, -1])
    picks = np.array([[0, 2], [1, -1], [-1, -1]])
    rows = np.array([0, 0, 1, 2])
    targets = np.array([[0, 1], [1, 0], [1, 0], [1, 0]], np.float32)
    np.testing.assert_allclose(
        m.best_cosine_to_picks(picks, vecs, rows, targets, 2), [1 / math.sqrt(2), 1.0, 0.0, np.nan], atol=1e-6
    )
    # Only the first pick: good 0 for user 0.
    first_only = m.best_cosine_to_picks(picks, vecs, rows, targets, 1)
    np.testing.assert_allclose(first_only[:2], [0.0, 1.0], atol=1e-6)
    hit = m.domain_among_picks(picks, domain, rows, np.array([3, -1, 4, 3]), 2)
    assert hit.tolist() == [True, False, True, False]
