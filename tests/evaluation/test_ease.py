"""EASE (evaluation.ease): the closed form against the dense formula, a known answer, and its limits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from evaluation import ease as E
from evaluation.protocol import TrainData


def test_weights_match_the_dense_formula() -> None:
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((40, 15)) < 0.3).astype(np.float32))
    lam = 3.0
    p = np.linalg.inv(x.T.toarray() @ x.toarray() + lam * np.eye(15))
    expected = np.eye(15) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(E.ease_weights(x, lam), expected, atol=1e-4)
    assert not np.diag(E.ease_weights(x, lam)).any()


def test_the_co_saved_good_comes_first() -> None:
    """Goods 2k and 2k + 1 are always saved together; a user holding one gets the other first."""
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(300):
        pairs = rng.choice(10, 2, replace=False)
        rows.append(np.r_[2 * pairs, 2 * pairs + 1])
    users = np.repeat(np.arange(300), 4)
    x = sp.csr_matrix((np.ones(1200, np.float32), (users, np.concatenate(rows))), shape=(300, 20))
    x.data[:] = 1.0
    query = sp.csr_matrix((np.ones(10, np.float32), (np.arange(10), 2 * np.arange(10))), shape=(10, 20))
    scores = np.asarray(query @ E.ease_weights(x, 10.0))
    scores[np.arange(10), 2 * np.arange(10)] = -np.inf
    assert (scores.argmax(axis=1) == 2 * np.arange(10) + 1).all()


def test_lambda_is_chosen_on_validation_and_refuses_big_catalogs() -> None:
    rng = np.random.default_rng(2)
    x = sp.csr_matrix((rng.random((200, 30)) < 0.2).astype(np.float32))
    lam, figures = E.choose_lambda(TrainData(saves=x, seed=0), (1.0, 1000.0))
    assert set(figures) == {1.0, 1000.0} and figures[lam] == max(figures.values())
    with pytest.raises(ValueError, match="exceed its limit"):
        E.ease_weights(sp.csr_matrix((2, E.MAX_GOODS + 1), dtype=np.float32), 1.0)
