"""The re-rank: properties over random inputs, and the trade-off on a planted case."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.rerank import rerank

N_GOODS = 40


@st.composite
def cases(draw: st.DrawFn) -> dict:
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    b = draw(st.integers(1, 4))
    c = draw(st.integers(1, 30))
    cand = np.stack([rng.choice(N_GOODS, size=c, replace=False) for _ in range(b)])
    cand[rng.random((b, c)) < draw(st.floats(0, 0.3))] = -1  # padding anywhere
    return {
        "candidates": cand,
        "scores": rng.standard_normal((b, c)).round(draw(st.integers(0, 3))),  # rounding makes ties
        "good_vecs": rng.standard_normal((N_GOODS, 4)).astype(np.float32),
        "domains": rng.integers(-1, draw(st.integers(1, 6)), size=N_GOODS),
        "k": draw(st.integers(1, 12)),
        "diversity": draw(st.sampled_from([0.0, 0.3, 0.7, 1.0])),
        "max_per_domain": draw(st.integers(1, 4)),
    }


def _feasible(cands: np.ndarray, domains: np.ndarray, m: int) -> int:
    valid = cands[cands >= 0]
    doms, counts = np.unique(domains[valid], return_counts=True)
    return int(sum(n if d < 0 else min(n, m) for d, n in zip(doms, counts, strict=True)))


@settings(max_examples=200, deadline=None)
@given(cases())
def test_rerank_properties(case: dict) -> None:
    picks = rerank(**case)
    k, m, domains = case["k"], case["max_per_domain"], case["domains"]
    assert picks.shape == (len(case["candidates"]), k)
    for row, cands in zip(picks, case["candidates"], strict=True):
        taken = row[row >= 0]
        assert (row[: len(taken)] >= 0).all(), "picks come first, padding after"
        assert len(set(taken.tolist())) == len(taken), "distinct"
        assert set(taken.tolist()) <= set(cands[cands >= 0].tolist()), "only candidates"
        doms, counts = np.unique(domains[taken], return_counts=True)
        assert all(n <= m for d, n in zip(doms, counts, strict=True) if d >= 0), "domain cap"
        assert len(taken) == min(k, _feasible(cands, domains, m)), "as many as the cap allows"


@settings(max_examples=200, deadline=None)
@given(cases())
def test_zero_diversity_is_score_order(case: dict) -> None:
    case["diversity"] = 0.0
    picks = rerank(**case)
    for row, cands, scores in zip(picks, case["candidates"], case["scores"], strict=True):
        expected, per_domain = [], {}
        for j in np.argsort(-scores, kind="stable"):
            g = int(cands[j])
            if g < 0 or len(expected) == case["k"]:
                continue
            d = int(case["domains"][g])
            if d >= 0 and per_domain.get(d, 0) >= case["max_per_domain"]:
                continue
            per_domain[d] = per_domain.get(d, 0) + 1
            expected.append(g)
        assert row[row >= 0].tolist() == expected


def test_diversity_prefers_a_different_good_over_a_near_duplicate() -> None:
    # Goods 0 and 1 are near-duplicates with the top scores; good 2 is different and scores a little less.
    vecs = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]], dtype=np.float32)
    domains = np.array([0, 1, 2])
    cands, scores = np.array([[0, 1, 2]]), np.array([[1.0, 0.95, 0.9]])
    assert rerank(cands, scores, vecs, domains, 2, 0.0, 3).tolist() == [[0, 1]]
    assert rerank(cands, scores, vecs, domains, 2, 0.5, 3).tolist() == [[0, 2]]


def test_one_user_and_duplicates() -> None:
    vecs = np.eye(3, dtype=np.float32)
    out = rerank(np.array([2, 2, 1]), np.array([3.0, 2.0, 1.0]), vecs, np.array([-1, -1, -1]), 3, 0.3, 1)
    assert out.tolist() == [2, 1, -1]
