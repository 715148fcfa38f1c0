"""The graph_filter source's top N from GF-CF's two parts (a sparse co-saved term plus an inner-product
search) against the dense [b, G] block it replaces, on a planted world: the same goods in the same order, the
same scores, and the same pair scores for the ranker's features."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from graphrec.core.config import ForYouConfig
from serving.foryou.context import FactoredScores, ForYouContext
from serving.foryou.features import candidate_batch
from serving.foryou.sources import make_source
from serving.foryou.sources.graph_filter import FactoredBlock
from tests.serving.foryou.world import DAY, planted
from training.graph_filter import gf_cf

CFG = ForYouConfig(sources=("graph_filter", "cosave"), per_source=50, clusters=8)


def _contexts(alpha: float, search: str = "exact") -> tuple[ForYouContext, ForYouContext, np.ndarray]:
    a = planted(seed=2).as_of_time(planted(seed=2).as_of - 10 * DAY)
    gf = gf_cf(a.saves, k=24, alpha=alpha, svd="arpack")
    assert isinstance(gf, FactoredScores)
    # Serving's extra exclusions (collections, recent picks): a few goods per user beyond their saves.
    rng = np.random.default_rng(0)
    extra = sp.random(a.n_users, a.n_goods, density=0.01, random_state=rng, format="csr", dtype=bool)
    factored = ForYouContext.build(
        a, dataclasses.replace(CFG, graph_filter_search=search), graph_filter=gf, extra_exclude=extra
    )
    dense = ForYouContext.build(
        a, dataclasses.replace(CFG, graph_filter_search="dense"), graph_filter=gf, extra_exclude=extra
    )
    return factored, dense, np.flatnonzero(a.eligible())


@pytest.mark.parametrize("alpha", [0.0, 0.3, 3.0])
@pytest.mark.parametrize("n", [1, 20, 200])
def test_factored_top_n_is_the_dense_blocks_top_n(alpha: float, n: int) -> None:
    factored, dense, users = _contexts(alpha)
    src = make_source("graph_filter")
    got, want = src.candidates(factored, users, n), src.candidates(dense, users, n)
    assert (want.goods >= 0).sum() > 0
    _assert_same_top_n_up_to_ties(got.goods, want.goods, want.scores, dense, users)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-7)


def _assert_same_top_n_up_to_ties(
    got: np.ndarray, want: np.ndarray, want_scores: np.ndarray, dense: ForYouContext, users: np.ndarray
) -> None:
    """`got` is the dense block's top N: each pick, scored by the dense block, has the dense list's score at
    its place, no pick is an excluded good, and the rows hold the same goods except where scores tie. The
    two paths sum in another order, so goods whose scores agree to rounding (many with alpha 0, where only
    co-saved counts score) may come in either order; CI once saw 11 of 29,400 places swapped so."""
    np.testing.assert_array_equal(got >= 0, want >= 0)
    full = np.asarray(dense.graph_filter(users))
    ok = got >= 0
    rows = np.broadcast_to(np.arange(len(users))[:, None], got.shape)
    np.testing.assert_allclose(full[rows[ok], got[ok]], want_scores[ok], rtol=1e-5, atol=1e-7)
    assert not np.asarray(dense.exclude[users[rows[ok]], got[ok]]).any()
    for i in range(len(users)):
        g, w, sc = got[i][ok[i]], want[i][ok[i]], want_scores[i][ok[i]]
        assert len(np.unique(g)) == len(g)
        if len(w):  # above the row's last score (beyond rounding), the same goods
            clear = sc > sc.min() + 1e-5 * max(abs(float(sc.min())), 1e-2)
            assert set(w[clear].tolist()) <= set(g.tolist())
        differ = g != w
        np.testing.assert_allclose(full[i, g[differ]], full[i, w[differ]], rtol=1e-5, atol=1e-7)


def test_pair_scores_are_the_dense_blocks_values() -> None:
    factored, dense, users = _contexts(0.3)
    chunk = users[:64]
    block = make_source("graph_filter").block(factored, chunk)
    assert isinstance(block, FactoredBlock)
    full = dense.graph_filter(chunk)
    rng = np.random.default_rng(1)
    row, good = rng.integers(0, len(chunk), 5000), rng.integers(0, factored.arrays.n_goods, 5000)
    np.testing.assert_allclose(block[row, good], full[row, good], rtol=1e-5, atol=1e-6)
    # The ranker's features (every candidate's graph_filter_score) come out the same.
    srcs = [make_source(s) for s in CFG.sources]
    cs_f, x_f = candidate_batch(factored, chunk, srcs, 50)
    cs_d, x_d = candidate_batch(dense, chunk, srcs, 50)
    np.testing.assert_array_equal(cs_f.good, cs_d.good)
    np.testing.assert_allclose(x_f, x_d, rtol=1e-5, atol=1e-6)


def test_ivf_search_finds_most_of_the_exact_top_n() -> None:
    # Approximate: the inner product's top N comes from an IVF index (here few lists, so probing covers most).
    factored, _, users = _contexts(0.3, search="ivf")
    exact, _, _ = _contexts(0.3, search="exact")
    src = make_source("graph_filter")
    got, want = src.candidates(factored, users, 20), src.candidates(exact, users, 20)
    hits = [
        len(np.intersect1d(g[g >= 0], w[w >= 0])) / max(1, (w >= 0).sum())
        for g, w in zip(got.goods, want.goods, strict=True)
    ]
    assert float(np.mean(hits)) >= 0.9


def test_auto_is_the_dense_block_on_small_catalogs_and_a_bad_name_is_refused() -> None:
    auto, _, users = _contexts(0.3, search="auto")
    assert isinstance(make_source("graph_filter").block(auto, users[:4]), np.ndarray)
    bad, _, _ = _contexts(0.3, search="hnsw")
    with pytest.raises(ValueError, match="graph_filter_search"):
        make_source("graph_filter").block(bad, users[:4])
