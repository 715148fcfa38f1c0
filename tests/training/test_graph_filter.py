"""training.graph_filter: GF-CF and BSPM against their dense formulas, and on a planted two-community matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from graphrec.core.metrics import topk
from training.graph_filter import bspm, chebycf, filter_basis, gf_cf


def random_matrix(n_users: int = 30, n_goods: int = 40, seed: int = 0) -> sp.csr_matrix:
    m = (np.random.default_rng(seed).random((n_users, n_goods)) < 0.25).astype(np.float32)
    m[:, 0] = 1.0  # no empty column or row
    return sp.csr_matrix(m)


def dense_parts(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, P = R~^T R~, ideal = D^-1/2 V V^T D^1/2) by plain dense algebra."""
    r = m.toarray().astype(np.float64)
    du, dg = r.sum(1), r.sum(0)
    norm = r / np.sqrt(du)[:, None] / np.sqrt(dg)[None, :]
    vt = np.linalg.svd(norm)[2][:k]
    ideal = np.diag(1 / np.sqrt(dg)) @ vt.T @ vt @ np.diag(np.sqrt(dg))
    return r, norm.T @ norm, ideal


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_gf_cf_equals_its_dense_formula(alpha: float) -> None:
    m = random_matrix()
    r, p, ideal = dense_parts(m, k=6)
    users = np.array([0, 3, 7, 29])
    got = gf_cf(m, k=6, alpha=alpha)(users)
    np.testing.assert_allclose(got, r[users] @ (p + alpha * ideal), rtol=1e-4, atol=1e-5)


def test_bspm_equals_its_dense_formula() -> None:
    m = random_matrix(seed=1)
    r, p, ideal = dense_parts(m, k=5)
    users = np.arange(10)
    h, beta = 2.5, 0.2
    start = r[users] @ p + beta * r[users] @ ideal
    hp = -h * p
    # One RK4 step of dr/dt = -r P is the 4th-order Taylor polynomial of exp(-hP).
    step = np.eye(len(p)) + hp + hp @ hp / 2 + hp @ hp @ hp / 6 + hp @ hp @ hp @ hp / 24
    got = bspm(m, k=5, idl_beta=beta, t_sharpen=h, sharpen_steps=1)(users)
    np.testing.assert_allclose(got, start @ step, rtol=1e-3, atol=1e-4)


def planted() -> tuple[sp.csr_matrix, np.ndarray]:
    """Users 0-19 save goods 0-14, users 20-39 goods 15-29 (8 each); one more per user is held out."""
    rng = np.random.default_rng(0)
    rows, cols, held = [], [], []
    for u in range(40):
        picked = (0 if u < 20 else 15) + rng.choice(15, size=9, replace=False)
        rows += [u] * 8
        cols += list(picked[:8])
        held.append(picked[8])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(40, 30)), np.array(held)


@pytest.mark.parametrize(
    "make",
    [lambda m: gf_cf(m, k=4), lambda m: bspm(m, k=4), lambda m: chebycf(m, ideal_k=4)],
    ids=["gf_cf", "bspm", "chebycf"],
)
def test_top_picks_stay_in_the_users_community_and_find_the_held_out_good(make) -> None:  # type: ignore[no-untyped-def]
    m, held = planted()
    picks = topk(make(m), np.arange(40), 5, exclude=m)
    community = (np.arange(40) >= 20).astype(int)
    assert (picks >= 0).all()
    assert ((picks >= 15).astype(int) == community[:, None]).all()
    assert np.mean([held[u] in picks[u] for u in range(40)]) >= 0.6


def test_same_seed_same_basis() -> None:
    m = random_matrix(60, 80, seed=2)
    a, b = filter_basis(m, 8, seed=0), filter_basis(m, 8, seed=0)
    np.testing.assert_array_equal(a.vt.numpy(), b.vt.numpy())
    users = np.arange(5)
    np.testing.assert_array_equal(gf_cf(m, basis=a)(users), gf_cf(m, basis=b)(users))


@pytest.mark.parametrize("rank", [40, 25], ids=["full-rank", "rank-deficient"])
def test_thin_svd_matches_lapacks(rank: int) -> None:
    """arpack_vt's SVD of the Gram eigenvectors' image: through the [k, k] Gram matrix when it is well
    conditioned, LAPACK's SVD when a singular value is near zero (rank below k)."""
    import scipy.linalg

    from training.graph_filter import _thin_svd

    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, rank)) @ rng.standard_normal((rank, 40))
    u, s, vh = _thin_svd(x.copy())
    u_ref, s_ref, _ = scipy.linalg.svd(x, full_matrices=False)
    np.testing.assert_allclose(s, s_ref, atol=1e-9 * s_ref[0])
    np.testing.assert_allclose((u * s) @ vh, x, atol=1e-9 * s_ref[0])
    np.testing.assert_allclose(u.T @ u, np.eye(40), atol=1e-9)
    top = u[:, :rank] @ u[:, :rank].T  # the span of the non-zero singular directions, sign- and rotation-free
    np.testing.assert_allclose(top, u_ref[:, :rank] @ u_ref[:, :rank].T, atol=1e-9)
