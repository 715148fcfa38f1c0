"""The shared candidate selection (serving.foryou.sources.base.top_n): masks, padding and the tie rule."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

from serving.foryou.sources.base import csr_values, pair_dots, sparse_top_n, top_n


def _ctx(pickable: np.ndarray, exclude: sp.csr_matrix) -> types.SimpleNamespace:
    return types.SimpleNamespace(pickable=lambda: pickable, exclude=exclude)


def _brute(scores: np.ndarray, n: int) -> np.ndarray:
    """Best n by score, equal scores lowest index first, non-positive ones as -1 padding."""
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)[:, :n]
    return np.where(np.take_along_axis(scores, order, axis=1) > 0, order, -1)


@pytest.mark.parametrize("order", ["C", "F"])  # GF-CF's and trending's blocks are column-major
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_top_n_masks_pads_and_breaks_ties_by_lowest_good_across_the_nth_place(
    backend: str, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "numpy":
        monkeypatch.setitem(sys.modules, "torch", None)  # type: ignore[arg-type]
    else:
        pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    b, g, n = 40, 500, 30
    scores = np.round(rng.random((b, g)) * 6).astype(np.float32)  # integer-valued: ties at the n-th place
    scores[5] = 0.0  # a user with nothing positive
    scores[6, :10] = np.arange(1, 11)  # fewer than n positive
    scores[6, 10:] = -1.0
    scores[7, 3] = np.nan
    scores[8, 4] = np.inf
    pickable = rng.random(g) > 0.1
    exclude = sp.random(b, g, density=0.02, format="csr", random_state=1, dtype=bool)
    goods, sc = top_n(_ctx(pickable, exclude), np.arange(b), scores.copy(order=order), n)

    expect = scores.copy()
    expect[:, ~pickable] = -np.inf
    expect[exclude.toarray()] = -np.inf
    expect[~np.isfinite(expect)] = -np.inf
    np.testing.assert_array_equal(goods, _brute(expect, n))
    assert (goods[5] == -1).all() and np.isneginf(sc[5]).all()
    assert set(goods[6][goods[6] >= 0].tolist()) == set(np.flatnonzero(pickable[:10] & ~exclude[6].toarray()[0, :10]))
    assert 3 not in goods[7] and 4 not in goods[8]
    assert np.array_equal(sc, np.where(goods >= 0, np.take_along_axis(expect, np.maximum(goods, 0), 1), -np.inf))


@pytest.mark.parametrize("n", [1, 7, 30, 600])
def test_sparse_top_n_is_top_n_of_the_block_made_dense(n: int) -> None:
    rng = np.random.default_rng(5)
    b, g = 40, 500
    dense = np.round(rng.random((b, g)) * 6).astype(np.float32)  # ties at the n-th place
    dense[rng.random((b, g)) < 0.7] = 0.0  # most entries absent
    dense[3] = 0.0
    dense[4, :5] = np.arange(1, 6)  # fewer than n entries
    dense[4, 5:] = 0.0
    dense[8, 11] = -2.0  # a stored non-positive entry never counts
    pickable = rng.random(g) > 0.1
    exclude = sp.csr_matrix(rng.random((b, g)) < 0.05)
    users = np.arange(b)
    want_g, want_s = top_n(_ctx(pickable, exclude), users, dense.copy(), n)
    got_g, got_s = sparse_top_n(_ctx(pickable, exclude), users, sp.csr_matrix(dense), n)
    width = want_g.shape[1]
    np.testing.assert_array_equal(got_g[:, :width], want_g)
    np.testing.assert_array_equal(got_s[:, :width], want_s)
    assert (got_g[:, width:] == -1).all()


@pytest.mark.parametrize("grouped", [True, False])
def test_pair_dots_are_the_per_pair_dot_products(grouped: bool) -> None:
    """Runs of one row (candidates grouped by user) or rows in any order: each pair's dot product, in float32,
    bit for bit as a gather per pair gives it."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((50, 24)).astype(np.float32)
    b = rng.standard_normal((3000, 24)).astype(np.float32)
    row = rng.integers(0, 50, 20_000)
    row = np.sort(row) if grouped else row
    col = rng.integers(0, 3000, 20_000)
    want = np.einsum("nk,nk->n", a[row], b[col])
    got = pair_dots(a, row, b, col)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got[:5], [float(a[r] @ b[c]) for r, c in zip(row[:5], col[:5], strict=True)], atol=1e-5)
    assert len(pair_dots(a, row[:0], b, col[:0])) == 0


def test_csr_values_reads_unsorted_products_once_sorted() -> None:
    """A sparse product's indices come unsorted; pair_values sorts them first, and csr_values then returns each
    pair's entry (0 where none), as scipy's own indexing does."""
    from serving.foryou.sources.base import pair_values

    rng = np.random.default_rng(5)
    m = sp.csr_matrix(
        sp.random(40, 300, density=0.2, random_state=1) @ sp.random(300, 2000, density=0.01, random_state=2)
    )
    assert not m.has_sorted_indices
    row, col = rng.integers(0, 40, 5000), rng.integers(0, 2000, 5000)
    want = np.asarray(m[row, col]).ravel().astype(np.float32)
    np.testing.assert_array_equal(pair_values(m.copy(), row, col), want)
    sorted_m = m.copy()
    sorted_m.sort_indices()
    np.testing.assert_array_equal(csr_values(sorted_m, row, col).astype(np.float32), want)
