"""Retrieval (exact and FAISS) against brute force, exclusions, and the IVF index's recall."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.retrieval import build_index, index_recall, retrieve


@pytest.mark.parametrize("kind", ["exact", "flat"])
@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), n_goods=st.integers(1, 60), n_cand=st.integers(1, 15), p=st.floats(0, 0.9))
def test_exact_retrieval_is_brute_force_top_without_excluded(
    kind: str, seed: int, n_goods: int, n_cand: int, p: float
) -> None:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n_goods, 6)).astype(np.float32)
    good_idx = rng.permutation(n_goods + 5)[:n_goods]  # index rows map to arbitrary good_idx
    users = rng.standard_normal((7, 6)).astype(np.float32)
    exclude = sp.csr_matrix(rng.random((7, n_goods + 5)) < p)
    cands, scores = retrieve(build_index(vecs, good_idx, kind), users, exclude, n_cand)
    for u in range(7):
        s = users[u] @ vecs.T
        order = [good_idx[j] for j in np.argsort(-s, kind="stable") if not exclude[u, good_idx[j]]][:n_cand]
        got = cands[u][cands[u] >= 0]
        assert not any(exclude[u, g] for g in got), "never an excluded good"
        assert len(got) == len(order)
        # Same set and same scores (ties may come in either order).
        assert sorted(got.tolist()) == sorted(order)
        expected_scores = np.sort(s[[list(good_idx).index(g) for g in order]])[::-1]
        assert np.allclose(scores[u][: len(got)], expected_scores, atol=1e-5)
        assert (np.diff(scores[u][: len(got)]) <= 1e-6).all(), "best first"


@pytest.mark.parametrize("kind", ["ivf", "ivf_fp16"])
def test_ivf_recall_against_exact(kind: str) -> None:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, 16))
    goods = (centers[rng.integers(0, 20, 5000)] + 0.3 * rng.standard_normal((5000, 16))).astype(np.float32)
    queries = (centers[rng.integers(0, 20, 200)] + 0.3 * rng.standard_normal((200, 16))).astype(np.float32)
    # Probing every list is exhaustive: recall 1 (float16 vectors: all but near-ties). Probing a few is
    # approximate but still finds most.
    everything = index_recall(goods, queries, k=20, nlist=64, nprobe=64, kind=kind)
    assert everything == pytest.approx(1.0) if kind == "ivf" else 0.995 <= everything <= 1.0
    few = index_recall(goods, queries, k=20, nlist=64, nprobe=4, kind=kind)
    assert 0.5 < few < 1.0 + 1e-9


def test_ivf_fp16_scores_are_within_float16_rounding_of_the_inner_products() -> None:
    rng = np.random.default_rng(4)
    vecs = rng.standard_normal((4000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    users = vecs[rng.choice(4000, 50, replace=False)]
    cands, scores = retrieve(build_index(vecs, np.arange(4000) + 7, "ivf_fp16", nlist=16, nprobe=16), users, None, 30)
    assert (cands >= 7).all()
    exact = np.einsum("nd,nkd->nk", users, vecs[cands - 7])
    # float16 keeps ~11 bits: unit vectors' products move by a few 1e-4 at most, and never by 1e-5 or less
    # everywhere (the index does store float16, not the float32 vectors).
    gap = np.abs(scores - exact)
    assert gap.max() < 2e-3 and gap.mean() > 1e-6
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_exact_and_flat_agree_with_ties() -> None:
    rng = np.random.default_rng(2)
    vecs = rng.integers(-2, 3, size=(500, 4)).astype(np.float32)  # many exact ties
    users = rng.integers(-2, 3, size=(30, 4)).astype(np.float32)
    exclude = sp.csr_matrix(rng.random((30, 500)) < 0.2)
    a = retrieve(build_index(vecs, np.arange(500), "exact"), users, exclude, 25)
    b = retrieve(build_index(vecs, np.arange(500), "flat"), users, exclude, 25)
    # The same score profile; which of several tied goods makes the cut may differ (FAISS's heap order).
    assert np.array_equal(a[1], b[1])
    for cands, scores in (a, b):
        assert np.allclose(np.einsum("nd,nkd->nk", users, vecs[cands]), scores)
        assert not any(exclude[u, g] for u in range(30) for g in cands[u])


def test_ivf_retrieval_excludes_too() -> None:
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((3000, 8)).astype(np.float32)
    users = vecs[:5] * 3  # each user's nearest good is "their" good, which is excluded
    exclude = sp.csr_matrix((np.ones(5, bool), (np.arange(5), np.arange(5))), shape=(5, 3000))
    index = build_index(vecs, np.arange(3000), "ivf", nlist=32, nprobe=32)
    cands, _ = retrieve(index, users, exclude, 10)
    assert all(u not in cands[u] for u in range(5))
    assert (cands >= 0).all()


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivf_fp16"])
def test_exclusions_outside_the_index_change_nothing(kind: str) -> None:
    """A search only returns indexed goods, so excluded goods the index lacks are dropped before the search
    depth is set (GoodIndex.excluded_inside): the same lists as with only the indexed exclusions."""
    rng = np.random.default_rng(3)
    good_idx = np.sort(rng.choice(5000, 1200, replace=False))  # the index holds a quarter of the goods
    vecs = rng.standard_normal((1200, 8)).astype(np.float32)
    users = rng.standard_normal((40, 8)).astype(np.float32)
    exclude = sp.csr_matrix(rng.random((40, 5000)) < 0.3)
    index = build_index(vecs, good_idx, kind, nlist=16, nprobe=16)
    inside = index.excluded_inside(exclude)
    member = np.isin(np.arange(5000), good_idx)
    assert (inside.toarray() == (exclude.toarray() & member)).all()
    assert inside.nnz < exclude.nnz
    # Built by hand, without excluded_inside's own arithmetic.
    by_hand = sp.csr_matrix(exclude.toarray() & member)
    assert np.array_equal(retrieve(index, users, exclude, 30)[0], retrieve(index, users, by_hand, 30)[0])
    cands, _ = retrieve(index, users, exclude, 30)
    assert (cands >= 0).all()
    assert not any(exclude[u, g] for u in range(40) for g in cands[u])
