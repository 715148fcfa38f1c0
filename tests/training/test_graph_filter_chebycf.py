"""training.graph_filter's ChebyCF: the Chebyshev interpolation, the sparse filter against a dense
eigendecomposition of the same filter, the randomized SVD, the fit_graph_filter entry point, and a run at
200,000 goods that a good x good matrix could not survive."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.polynomial import chebyshev

from training.graph_filter import (
    bspm,
    cheby_coefficients,
    chebycf,
    filter_basis,
    fit_graph_filter,
    gf_cf,
    plateau,
    randomized_vt,
)

ROOT = Path(__file__).resolve().parents[2]


def random_matrix(n_users: int = 40, n_goods: int = 60, seed: int = 0) -> sp.csr_matrix:
    m = (np.random.default_rng(seed).random((n_users, n_goods)) < 0.2).astype(np.float32)
    m[:, 0] = 1.0  # no empty row
    m[:, 7] = 0.0  # one good nobody saved
    return sp.csr_matrix(m)


@pytest.mark.parametrize(("order", "flatness"), [(1, 1.0), (4, 2.0), (8, 1.5), (12, 5.0)])
def test_coefficients_interpolate_the_plateau_at_the_chebyshev_nodes(order: int, flatness: float) -> None:
    nodes = np.cos((order + 1.5 - np.arange(1, order + 2)) / (order + 1) * np.pi)
    c = cheby_coefficients(order, flatness)
    np.testing.assert_allclose(chebyshev.chebval(nodes, c), plateau(order, flatness), atol=1e-12)


# Printed by the reference code (chanwoo0806/ChebyCF 6961667, src/module.py ChebyFilter: plateau() and
# fit()'s coeffs, torch float32). The test above reuses plateau(); these pin its points too: the reference takes
# the target at the Chebyshev extrema and pairs it with the nodes, and interpolating at the nodes themselves
# would move them by 0.03-0.09.
REFERENCE_COEFFICIENTS = {
    (8, 1.5): [0.5, -0.492679, 0.0, -0.032332, 0.0, 0.021115, 0.0, -0.001107, 0.0],
    (10, 2.0): [0.5, -0.458272, 0.0, -0.071947, 0.0, 0.024616, 0.0, -0.000774, 0.0, 0.003082, 0.0],
    (4, 3.0): [0.5, -0.463653, 0.0, -0.100444, 0.0],
}


@pytest.mark.parametrize(("order", "flatness"), sorted(REFERENCE_COEFFICIENTS))
def test_coefficients_are_the_reference_codes(order: int, flatness: float) -> None:
    want = REFERENCE_COEFFICIENTS[order, flatness]
    np.testing.assert_allclose(cheby_coefficients(order, flatness), want, atol=2e-6)


def test_plateau_keeps_low_frequencies_and_drops_high_ones() -> None:
    target = plateau(8, 1.5)
    assert target[0] == 1.0 and target[-1] == 0.0  # x = -1 (P's eigenvalue 1) kept, x = 1 dropped
    assert (np.diff(target) <= 0).all()


def dense_chebycf(
    m: sp.csr_matrix, order: int, flatness: float, ideal_k: int, weight: float, power: float
) -> np.ndarray:
    """The same filter for every user, by dense algebra: h on P's eigenvalues, exact SVD for the ideal pass."""
    r = m.toarray().astype(np.float64)
    du, dg = r.sum(1), r.sum(0)
    inv = lambda d: np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1)), 0.0)  # noqa: E731
    norm = r * inv(du)[:, None] * inv(dg)[None, :]
    lam, q = np.linalg.eigh(norm.T @ norm)
    h = q @ np.diag(chebyshev.chebval(1 - 2 * lam, cheby_coefficients(order, flatness))) @ q.T
    vt = np.linalg.svd(norm)[2][:ideal_k]
    pre = np.where(dg > 0, np.maximum(dg, 1) ** -power, 0.0)
    post = np.where(dg > 0, np.maximum(dg, 1) ** power, 0.0)
    s = r * pre
    return (s @ h + weight * s @ vt.T @ vt) * post


@pytest.mark.parametrize("svd", ["arpack", "randomized"])
@pytest.mark.parametrize(
    ("order", "flatness", "ideal_k", "weight", "power"),
    [(8, 1.5, 6, 0.2, 0.4), (3, 3.0, 10, 0.5, 0.1), (10, 1.0, 0, 0.0, 0.5), (5, 2.0, 4, 1.0, 0.0)],
)
def test_chebycf_equals_its_dense_formula(
    svd: str, order: int, flatness: float, ideal_k: int, weight: float, power: float
) -> None:
    m = random_matrix()
    want = dense_chebycf(m, order, flatness, ideal_k, weight, power)
    users = np.array([0, 3, 7, 21, 39])
    got = chebycf(
        m, order=order, flatness=flatness, ideal_k=ideal_k, ideal_weight=weight, degree_power=power, svd=svd, chunk=2
    )(users)
    assert got.dtype == np.float32 and got.shape == (5, 60)
    np.testing.assert_allclose(got, want[users], atol=1e-5)
    assert (got[:, 7] == 0).all()


def test_a_wrong_polynomial_is_caught_by_the_dense_formula() -> None:
    # The comparison above can fail: the filter of another order differs from this one's dense formula.
    m = random_matrix()
    got = chebycf(m, order=4, flatness=1.5, ideal_k=6, svd="arpack")(np.arange(5))
    assert np.abs(got - dense_chebycf(m, 8, 1.5, 6, 0.2, 0.4)[:5]).max() > 1e-3


# block_bytes 448, below one [G, k + oversample] float64 block: the lean path, the goods side 7 rows at a time.
@pytest.mark.parametrize(
    ("shape", "block_bytes"),
    [((50, 80), None), ((80, 50), None), ((50, 80), 7 * 8 * 8), ((60, 300), 7 * 8 * 8)],
    ids=["wide", "tall", "wide-lean", "wider-lean"],
)
def test_randomized_vt_finds_the_planted_top_subspace(shape: tuple[int, int], block_bytes: int | None) -> None:
    rng = np.random.default_rng(1)
    u = np.linalg.qr(rng.standard_normal((shape[0], 5)))[0]
    v = np.linalg.qr(rng.standard_normal((shape[1], 5)))[0]
    a = u @ np.diag([9.0, 7.0, 5.0, 4.0, 3.0]) @ v.T + 0.01 * rng.standard_normal(shape)
    exact = np.linalg.svd(a)
    lean = {} if block_bytes is None else {"block_bytes": block_bytes}
    sigma, vt = randomized_vt(sp.csr_matrix(a), 5, oversample=3, n_iter=4, **lean)
    assert vt.shape == (5, shape[1]) and vt.dtype == (np.float64 if block_bytes is None else np.float32)
    np.testing.assert_allclose(sigma, exact[1][:5], rtol=1e-6)
    np.testing.assert_allclose(vt.T @ vt, exact[2][:5].T @ exact[2][:5], atol=1e-6 if block_bytes is None else 1e-5)


def test_fit_graph_filter_picks_each_filter_by_name() -> None:
    m = random_matrix(seed=3)
    users = np.arange(6)
    for kind, direct in [("gf_cf", gf_cf(m, k=8)), ("bspm", bspm(m, k=8)), ("chebycf", chebycf(m, ideal_k=8))]:
        params = {"ideal_k": 8} if kind == "chebycf" else {"k": 8}
        np.testing.assert_array_equal(fit_graph_filter(m, kind, **params)(users), direct(users))
    with pytest.raises(ValueError, match="unknown graph filter 'ease'"):
        fit_graph_filter(m, "ease")


def test_chebycf_runs_at_200k_goods_without_a_good_by_good_matrix() -> None:
    # A float32 good x good matrix here is 160 GB; the child's whole peak RSS must stay under 1.5 GB.
    code = textwrap.dedent(
        """
        import numpy as np, scipy.sparse as sp
        from training.graph_filter import chebycf
        rng = np.random.default_rng(0)
        n_users, n_goods = 400, 200_000
        users = np.repeat(np.arange(n_users), 30)
        goods = rng.integers(0, n_goods, len(users))
        m = sp.csr_matrix((np.ones(len(users), np.float32), (users, goods)), shape=(n_users, n_goods))
        m.data[:] = 1.0
        scores = chebycf(m, order=8, ideal_k=32)(np.arange(64))
        assert scores.shape == (64, n_goods) and np.isfinite(scores).all()
        print(scores.shape[1])
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.split() == [b"200000"]
    # A good x good matrix at 200,000 goods is 160 GB (one [G, G] row block of 4,096 goods: 3.3 GB); the run
    # peaks at 1.5-1.8 GB (torch and the [64, G] blocks), depending on the machine's allocator and threads.
    assert usage.ru_maxrss < 3_000_000  # kB


def test_arpack_basis_is_seeded_even_where_the_krylov_space_runs_out() -> None:
    # Three disjoint blocks (rank 3) with k = 10: ARPACK restarts with fresh random vectors, which filter_basis
    # seeds.
    m = sp.csr_matrix((np.arange(20)[:, None] % 3 == np.arange(30)[None, :] % 3).astype(np.float32))
    a, b = filter_basis(m, 10), filter_basis(m, 10)
    np.testing.assert_array_equal(a.vt.numpy(), b.vt.numpy())
    np.testing.assert_array_equal(a.sigma, b.sigma)
    np.testing.assert_allclose(a.sigma[:3], 1.0, rtol=1e-6)  # each block's normalised matrix has sigma 1
    np.testing.assert_allclose(a.sigma[3:], 0.0, atol=1e-6)


def test_lean_start_on_the_users_side_is_at_least_as_accurate_as_the_whole_block_start() -> None:
    # A flat spectrum, as a normalised save matrix has, where the power steps are far from converged: the lean
    # start (A A^T g) is half a power step ahead of the whole-block one (A omega), so at the same n_iter its
    # Ritz values, each a lower bound on the true singular value, are at least as high.
    m = sp.csr_matrix(random_matrix(60, 400, seed=4), dtype=np.float64)
    exact = np.linalg.svd(m.toarray(), compute_uv=False)[:8]
    whole, _ = randomized_vt(m, 8, oversample=4, n_iter=1)
    lean, _ = randomized_vt(m, 8, oversample=4, n_iter=1, block_bytes=7 * 12 * 8)
    assert np.all(lean <= exact * (1 + 1e-9)) and np.all(whole <= exact * (1 + 1e-9))
    assert lean.sum() > whole.sum() and (exact - lean).sum() < (exact - whole).sum()


def test_auto_basis_is_arpack_below_the_cell_limit_and_randomized_above(monkeypatch: pytest.MonkeyPatch) -> None:
    import training.graph_filter as gf

    m = random_matrix(seed=5)
    auto, arpack = filter_basis(m, 6, svd="auto"), filter_basis(m, 6, svd="arpack")
    np.testing.assert_array_equal(auto.vt.numpy(), arpack.vt.numpy())
    monkeypatch.setattr(gf, "ARPACK_MAX_CELLS", m.shape[0] * m.shape[1] - 1)
    np.testing.assert_array_equal(
        filter_basis(m, 6, svd="auto").vt.numpy(), filter_basis(m, 6, svd="randomized").vt.numpy()
    )
    with pytest.raises(ValueError, match="svd must be"):
        filter_basis(m, 6, svd="lanczos")
