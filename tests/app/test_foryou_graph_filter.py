"""foryou.graph_filter picks the filter of the For You graph_filter source (GF-CF, BSPM or ChebyCF)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from graphrec.app.foryou import GRAPH_FILTER_PARAMS, graph_filter_fit


def _two_blocks(n_users: int = 60, n_goods: int = 40, seed: int = 0) -> sp.csr_matrix:
    """Users 0..29 save only goods 0..19, users 30..59 only goods 20..39, each 8 of their block's 20."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    half_u, half_g = n_users // 2, n_goods // 2
    for u in range(n_users):
        block = 0 if u < half_u else half_g
        for g in rng.choice(half_g, size=8, replace=False):
            rows.append(u)
            cols.append(block + g)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_goods))


@pytest.mark.parametrize("kind", sorted(GRAPH_FILTER_PARAMS))
def test_each_filter_scores_the_users_own_block_first(kind: str) -> None:
    saves = _two_blocks()
    score = graph_filter_fit(saves, kind)
    users = np.array([0, 45])
    s = np.asarray(score(users), dtype=np.float64)
    assert s.shape == (2, 40)
    s[saves[users].toarray() > 0] = -np.inf  # the unsaved goods only
    own = [s[0, :20], s[1, 20:]]
    other = [s[0, 20:], s[1, :20]]
    for mine, theirs in zip(own, other, strict=True):
        assert np.min(mine[np.isfinite(mine)]) > np.max(theirs)


def test_an_unknown_filter_is_refused_by_its_config_name() -> None:
    with pytest.raises(ValueError, match="foryou.graph_filter.*'ease'"):
        graph_filter_fit(_two_blocks(), "ease")
