"""Training-free graph filters for collaborative filtering on a user-good matrix.

- GF-CF (Shen et al., CIKM 2021): with ``R~ = D_U^-1/2 R D_G^-1/2`` (R the binary user-good matrix, D the
  degrees), a user's scores are ``r_u (R~^T R~) + alpha * r_u D_G^-1/2 V V^T D_G^1/2``: the normalised
  good-good linear filter plus an ideal low-pass filter from the top-``k`` right singular vectors V of R~.
- BSPM (Choi et al., SIGIR 2023): blur the user's row with the linear filter, add the ideal low-pass term,
  then sharpen by integrating ``dr/dt = -r R~^T R~`` over ``[0, T_s]`` with RK4 steps.

Both are pure functions of a scipy csr matrix [U, G] (rows user_idx, columns good_idx) that return a score
function ``score_fn(user_idx int64 [b]) -> float32 [b, G]``, the shape :func:`graphrec.core.metrics.topk` takes.
The good-good matrix is never formed (it would be G x G dense); each product goes through R~ twice.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

log = logging.getLogger(__name__)

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FilterBasis:
    """What both filters precompute from the train matrix R [U, G].

    ``norm`` = R~ as torch CSR [U, G], ``norm_t`` its transpose [G, U], ``d_inv_sqrt`` / ``d_sqrt`` [G] the
    good degree scalings, ``vt`` [k, G] the top right singular vectors V^T of R~ and ``vt_scaled_t`` =
    D^-1/2 V as numpy [G, k].
    """

    rows: sp.csr_matrix
    norm: torch.Tensor
    norm_t: torch.Tensor
    d_inv_sqrt: torch.Tensor
    d_sqrt: torch.Tensor
    vt: torch.Tensor
    vt_scaled_t: np.ndarray
    seconds: float


def _to_torch_csr(m: sp.spmatrix) -> torch.Tensor:
    m = sp.csr_matrix(m, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data),
            m.shape,
            check_invariants=False,
        )


def _inv_sqrt(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float64)
    np.divide(1.0, np.sqrt(x), out=out, where=x > 0)
    return out


def filter_basis(train: sp.csr_matrix, k: int, *, seed: int = 0) -> FilterBasis:
    """Normalise ``train`` [U, G] and take its top-``k`` right singular vectors (ARPACK, seeded start)."""
    start = time.perf_counter()
    rows = sp.csr_matrix(train, dtype=np.float64)
    du = _inv_sqrt(np.asarray(rows.sum(axis=1)).ravel())
    dg_raw = np.asarray(rows.sum(axis=0)).ravel()
    dg = _inv_sqrt(dg_raw)
    norm = sp.diags(du) @ rows @ sp.diags(dg)
    k = min(k, min(norm.shape) - 1)
    if k > 0:
        v0 = np.random.default_rng(seed).random(min(norm.shape))
        _, _, vt = sp.linalg.svds(norm, k=k, v0=v0)
    else:
        vt = np.zeros((0, norm.shape[1]))
    basis = FilterBasis(
        rows=sp.csr_matrix(train, dtype=np.float32),
        norm=_to_torch_csr(norm),
        norm_t=_to_torch_csr(norm.T.tocsr()),
        d_inv_sqrt=torch.from_numpy(dg.astype(np.float32)),
        # Goods nobody saved have no column in any row, so their scaling does not matter.
        d_sqrt=torch.from_numpy(np.sqrt(dg_raw).astype(np.float32)),
        vt=torch.from_numpy(np.ascontiguousarray(vt, dtype=np.float32)),
        vt_scaled_t=np.ascontiguousarray((vt * dg).T, dtype=np.float32),
        seconds=0.0,
    )
    seconds = time.perf_counter() - start
    log.info("graph filter basis: %d x %d, k=%d, %.1f s", *norm.shape, k, seconds)
    return FilterBasis(**{**basis.__dict__, "seconds": seconds})


def _linear(basis: FilterBasis, r: torch.Tensor) -> torch.Tensor:
    """``r R~^T R~`` for dense rows r [b, G], as two sparse products."""
    return (basis.norm_t @ (basis.norm @ r.t())).t()


def _ideal(basis: FilterBasis, rows: sp.csr_matrix) -> torch.Tensor:
    """``r D^-1/2 V V^T D^1/2`` for sparse rows r [b, G]: the ideal low-pass filter on the top singular
    vectors (the sparse product comes first, so the cost is one [b, k] x [k, G] product)."""
    low = torch.from_numpy(np.asarray(rows @ basis.vt_scaled_t, dtype=np.float32))
    return (low @ basis.vt) * basis.d_sqrt


def _dense_rows(basis: FilterBasis, users: np.ndarray) -> tuple[sp.csr_matrix, torch.Tensor]:
    rows = basis.rows[np.asarray(users, dtype=np.int64)]
    return rows, torch.from_numpy(rows.toarray())


def _filtered(basis: FilterBasis, users: np.ndarray, alpha: float) -> torch.Tensor:
    """``r R~^T R~ + alpha r D^-1/2 V V^T D^1/2`` for the users' saves rows r [b, G] (GF-CF's scores)."""
    rows, r = _dense_rows(basis, users)
    out = _linear(basis, r)
    if alpha:
        out = out + alpha * _ideal(basis, rows)
    return out


def gf_cf(train: sp.csr_matrix, *, k: int = 256, alpha: float = 0.3, basis: FilterBasis | None = None) -> ScoreFn:
    """GF-CF scores; ``alpha`` weighs the ideal low-pass term (0 gives the linear filter alone).

    ``basis`` may be passed to share one SVD between filters (its ``k`` then wins).
    """
    basis = basis or filter_basis(train, k)

    def score(users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _filtered(basis, users, alpha).numpy()

    return score


def bspm(
    train: sp.csr_matrix,
    *,
    k: int = 448,
    idl_beta: float = 0.2,
    t_sharpen: float = 2.5,
    sharpen_steps: int = 1,
    basis: FilterBasis | None = None,
) -> ScoreFn:
    """BSPM scores (the paper's Gowalla setting by default: one Euler blurring step over T_b = 1, the ideal
    term weighted ``idl_beta`` added before sharpening, ``sharpen_steps`` RK4 steps over ``t_sharpen``)."""
    basis = basis or filter_basis(train, k)
    h = t_sharpen / sharpen_steps

    def sharpen(r: torch.Tensor) -> torch.Tensor:
        # Classic RK4 for dr/dt = -r P, P = R~^T R~.
        k1 = -_linear(basis, r)
        k2 = -_linear(basis, r + 0.5 * h * k1)
        k3 = -_linear(basis, r + 0.5 * h * k2)
        k4 = -_linear(basis, r + h * k3)
        return r + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    def score(users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            # Euler over [0, 1] of dr/dt = r P - r lands exactly on r P: GF-CF's scores, ideal term weighted idl_beta.
            out = _filtered(basis, users, idl_beta)
            for _ in range(sharpen_steps):
                out = sharpen(out)
        return out.numpy()

    return score
