"""Training-free graph filters for collaborative filtering on a user-good matrix.

- GF-CF (Shen et al., CIKM 2021): with ``R~ = D_U^-1/2 R D_G^-1/2`` (R the binary user-good matrix, D the
  degrees), a user's scores are ``r_u (R~^T R~) + alpha * r_u D_G^-1/2 V V^T D_G^1/2``: the normalised
  good-good linear filter plus an ideal low-pass filter from the top-``k`` right singular vectors V of R~.
- BSPM (Choi et al., SIGIR 2023): blur the user's row with the linear filter, add the ideal low-pass term,
  then sharpen by integrating ``dr/dt = -r R~^T R~`` over ``[0, T_s]`` with RK4 steps.
- ChebyCF (Kim et al., SIGIR 2025; reference code chanwoo0806/ChebyCF): a plateau-shaped low-pass transfer
  function of ``P = R~^T R~``, approximated by a Chebyshev polynomial of order K in ``L~ = I - 2P`` (whose
  spectrum lies in [-1, 1]), plus the ideal pass ``V V^T`` on the top singular vectors, both applied to the
  degree-normalised row: ``scores = (h(P) s + ideal_weight * s V V^T) D^beta`` with ``s = r D^-beta``.

All three are pure functions of a scipy csr matrix [U, G] (rows user_idx, columns good_idx) that return a score
function ``score_fn(user_idx int64 [b]) -> float32 [b, G]``, the shape :func:`graphrec.core.metrics.topk` takes.
The good-good matrix is never formed (it would be G x G dense); each product goes through R~ twice, and the
ideal pass goes through the [k, G] singular vectors. :func:`fit_graph_filter` picks one by name.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg
import torch

log = logging.getLogger(__name__)

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FilterBasis:
    """What both filters precompute from the train matrix R [U, G].

    ``norm`` = R~ as torch CSR [U, G], ``norm_t`` its transpose [G, U], ``d_inv_sqrt`` / ``d_sqrt`` [G] the
    good degree scalings, ``vt`` [k, G] the top right singular vectors V^T of R~ (largest singular value
    first, ``sigma`` [k] their singular values) and ``vt_scaled_t`` = D^-1/2 V as numpy [G, k].
    """

    rows: sp.csr_matrix
    norm: torch.Tensor
    norm_t: torch.Tensor
    d_inv_sqrt: torch.Tensor
    d_sqrt: torch.Tensor
    vt: torch.Tensor
    vt_scaled_t: np.ndarray
    sigma: np.ndarray
    seconds: float

    def top(self, k: int) -> FilterBasis:
        """The same basis with only its ``k`` leading singular vectors (shares every other array)."""
        return dataclasses.replace(
            self, vt=self.vt[:k], vt_scaled_t=np.ascontiguousarray(self.vt_scaled_t[:, :k]), sigma=self.sigma[:k]
        )


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


# Above this many bytes a [goods, k + oversample] float64 block is not held whole: randomized_vt works through
# the goods side in row blocks of this size (at 10x, 1M goods x 384 columns is 3 GB per block).
LEAN_BYTES = 2**29


def randomized_vt(
    norm: sp.csr_matrix,
    k: int,
    *,
    oversample: int = 128,
    n_iter: int = 6,
    seed: int = 0,
    block_bytes: int = LEAN_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` singular values [k] and right singular vectors V^T [k, G] of a sparse [U, G] matrix, largest
    first: a randomized block power method (Halko, Martinsson & Tropp 2011) with ``k + oversample`` columns and
    ``n_iter`` power steps, run on the smaller side of the matrix.

    Memory is O((U + G) (k + oversample)); only products with ``norm`` and its transpose touch the matrix.
    Exact (up to rounding) when ``k + oversample`` reaches the rank. When the users are the smaller side and a
    [G, k + oversample] float64 block would pass ``block_bytes``, the goods side is worked through in row
    blocks (:func:`_lean_randomized_vt`: the same method from a start drawn on the users' side, float32 V^T,
    about a third of the memory).
    """
    norm = sp.csr_matrix(norm, dtype=np.float64)
    width = min(k + oversample, min(norm.shape))
    if norm.shape[0] <= norm.shape[1] and norm.shape[1] * width * 8 > block_bytes:
        return _lean_randomized_vt(norm, k, width, n_iter, seed, max(1, block_bytes // (8 * width)))
    norm_t = norm.T.tocsr()
    rng = np.random.default_rng(seed)
    # q spans the range of the smaller side: A's columns (user space) when U <= G, else A^T's (good space).
    fwd, back = (norm, norm_t) if norm.shape[0] <= norm.shape[1] else (norm_t, norm)
    q = np.linalg.qr(fwd @ rng.standard_normal((fwd.shape[1], width)))[0]
    for _ in range(n_iter):
        q = np.linalg.qr(fwd @ (back @ q))[0]
    b = back @ q  # [other side, width]; A (or A^T) ~ q b^T
    evals, z = np.linalg.eigh(b.T @ b)
    order = np.argsort(evals)[::-1][:k]
    sigma = np.sqrt(np.clip(evals[order], 0.0, None))
    w = (b @ z[:, order]) / np.where(sigma > 0, sigma, 1.0)
    if norm.shape[0] <= norm.shape[1]:
        return sigma, np.ascontiguousarray(w.T)
    # Good-space iteration: A ~ (A q) q^T, and the right singular vectors of A are q times those of A q.
    return sigma, np.ascontiguousarray((q @ (z[:, order])).T)


def _lean_randomized_vt(
    norm: sp.csr_matrix, k: int, width: int, n_iter: int, seed: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """randomized_vt's user-space iteration for U <= G without a whole [G, width] block: every product with
    the goods side goes through ``step`` rows of R~^T at a time (A A^T q as a sum over good blocks, summed in
    two fixed halves on two threads: scipy's sparse products hold one core and release the GIL), the Gram
    matrix of b = A^T q as q^T (A A^T q) ([U, width] products, not [G, width] ones), and V = A^T (q z / sigma)
    written block by block into float32 [G, k], returned as its transpose's view (V^T [k, G], not contiguous:
    filter_basis' [G, k] layouts then need no transposed copy, 1.5-3 s each at 10x).

    The start is A A^T g for a Gaussian g [U, width], where randomized_vt's is A omega for omega [G, width]:
    at 10x (1M goods, width 384) drawing omega took 6-9 s, one more A A^T product takes 1.7 s. The start's
    columns then weigh the left singular vectors by sigma^2 instead of sigma, one half power step more, so the
    basis is at least as accurate (tests/training/test_graph_filter_chebycf.py); it is not randomized_vt's
    whole-block basis to rounding."""
    norm_t = norm.T.tocsr()  # [G, U]
    n_goods = norm_t.shape[0]
    blocks = [(lo, min(lo + step, n_goods)) for lo in range(0, n_goods, step)]
    halves = [blocks[: (len(blocks) + 1) // 2], blocks[(len(blocks) + 1) // 2 :]]

    def aat(q: np.ndarray) -> np.ndarray:
        def half(part: list[tuple[int, int]]) -> np.ndarray:
            acc = np.zeros_like(q)
            for lo, hi in part:
                rows = norm_t[lo:hi]
                acc += rows.T @ (rows @ q)
            return acc

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(half, halves)
        return first + second  # in this order whatever the threads: the same rounding on any machine

    q = np.linalg.qr(aat(np.random.default_rng(seed).standard_normal((norm.shape[0], width))))[0]
    # Between power steps an LU factor keeps the block well scaled at a quarter of QR's flops (as scikit-learn's
    # randomized_range_finder does); the range, and so the basis, is the same up to rounding. The last is QR.
    for i in range(n_iter):
        x = aat(q)
        q = np.linalg.qr(x)[0] if i == n_iter - 1 else scipy.linalg.lu(x, permute_l=True, check_finite=False)[0]
    gram = q.T @ aat(q)
    gram = (gram + gram.T) / 2.0
    evals, z = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1][:k]
    sigma = np.sqrt(np.clip(evals[order], 0.0, None))
    qz = q @ (z[:, order] / np.where(sigma > 0, sigma, 1.0))
    v = np.empty((n_goods, len(order)), np.float32)
    for lo, hi in blocks:
        v[lo:hi] = norm_t[lo:hi] @ qz
    return sigma, v.T


def arpack_vt(norm: sp.csr_matrix, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` singular values [k] and right singular vectors V^T [k, G] of a sparse [U, G] matrix, largest
    first, by scipy's svds arpack path step for step (eigsh on the smaller Gram matrix, its vectors made
    orthonormal, an SVD of their image) with every random draw seeded: svds (scipy 1.17) seeds only the start
    vector, and when the Krylov space runs out (k near the rank, as on small graphs) ARPACK's fresh vectors came
    from an unseeded generator, so two fits of one matrix could differ."""
    a = sp.linalg.aslinearoperator(norm)
    v0 = np.random.default_rng(seed).random(min(a.shape))
    tall = a.shape[0] >= a.shape[1]
    x_dot, xh_dot, x_mat = (a.matvec, a.rmatvec, a.matmat) if tall else (a.rmatvec, a.matvec, a.rmatmat)
    gram = sp.linalg.LinearOperator(shape=(min(a.shape),) * 2, dtype=a.dtype, matvec=lambda x: xh_dot(x_dot(x)))
    _, vecs = sp.linalg.eigsh(gram, k=k, v0=v0, rng=np.random.default_rng(seed))
    vecs, _ = np.linalg.qr(vecs)
    u, sigma, vh = _thin_svd(x_mat(vecs))
    vt = vh @ vecs.T if tall else u.T
    return sigma, np.ascontiguousarray(vt)


def _thin_svd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The thin SVD of a tall [m, k] matrix (u [m, k], sigma [k] largest first, vh [k, k]) through the
    eigenvectors W of its [k, k] Gram matrix: u = x W / sigma. Two [m, k] x [k, k] products instead of LAPACK's
    SVD of x (arpack_vt at 1x: x [99,273, 256], 2.6 s). The Gram matrix squares the condition number (u's
    columns lose about eps * (sigma_1 / sigma_i)^2), so with any singular value below 1e-3 of the largest (k
    near the rank, as on small graphs) this is LAPACK's SVD of x, as before."""
    lam, w = np.linalg.eigh(x.T @ x)
    order = np.argsort(lam)[::-1]
    lam, w = lam[order], w[:, order]
    sigma = np.sqrt(np.clip(lam, 0.0, None))
    if not len(sigma) or sigma[-1] <= 1e-3 * sigma[0]:
        u, s, vh = scipy.linalg.svd(x, full_matrices=False, overwrite_a=True)
        return u, s, vh
    return (x @ w) / sigma, sigma, np.ascontiguousarray(w.T)


# svd="auto": ARPACK up to this many cells (users x goods) of R~, the randomized method above. ARPACK (k=256)
# took 6.9 s at the demo scale (5,000 x 100,000: 5e8 cells) and ran past 20 minutes at ten times it (5e10);
# Gowalla (1.2e9) and Beauty (2.7e8) stay below, so their published GF-CF rows keep ARPACK's basis.
ARPACK_MAX_CELLS = 2e9


def filter_basis(
    train: sp.csr_matrix, k: int, *, seed: int = 0, svd: str = "arpack", power_iters: int = 6
) -> FilterBasis:
    """Normalise ``train`` [U, G] and take its top-``k`` right singular vectors: ``svd="arpack"``
    (:func:`arpack_vt`, scipy's svds path fully seeded), ``"randomized"`` (:func:`randomized_vt` with
    ``power_iters`` power steps, much cheaper at large k) or ``"auto"`` (ARPACK up to ARPACK_MAX_CELLS
    users x goods, randomized above)."""
    start = time.perf_counter()
    if svd == "auto":
        svd = "arpack" if float(train.shape[0]) * float(train.shape[1]) <= ARPACK_MAX_CELLS else "randomized"
    rows = sp.csr_matrix(train, dtype=np.float64)
    du = _inv_sqrt(np.asarray(rows.sum(axis=1)).ravel())
    dg_raw = np.asarray(rows.sum(axis=0)).ravel()
    dg = _inv_sqrt(dg_raw)
    norm = sp.csr_matrix(sp.diags(du) @ rows @ sp.diags(dg))
    del rows
    k = min(k, min(norm.shape) - 1)
    if k > 0 and svd == "randomized":
        sigma, vt = randomized_vt(norm, k, n_iter=power_iters, seed=seed)
    elif k > 0 and svd == "arpack":
        sigma, vt = arpack_vt(norm, k, seed=seed)
    elif k > 0:
        raise ValueError(f"svd must be 'arpack', 'randomized' or 'auto', got {svd!r}")
    else:
        sigma, vt = np.zeros(0), np.zeros((0, norm.shape[1]))
    # A float32 V^T (randomized_vt's lean path, at size) is scaled in float32: no [k, G] float64 copy.
    scale = dg.astype(np.float32) if vt.dtype == np.float32 else dg
    basis = FilterBasis(
        rows=sp.csr_matrix(train, dtype=np.float32),
        norm=_to_torch_csr(norm),
        norm_t=_to_torch_csr(norm.T.tocsr()),
        d_inv_sqrt=torch.from_numpy(dg.astype(np.float32)),
        # Goods nobody saved have no column in any row, so their scaling does not matter.
        d_sqrt=torch.from_numpy(np.sqrt(dg_raw).astype(np.float32)),
        # The lean path's V^T is a view of a [G, k] array: kept so, its [G, k] products below need no copy.
        vt=torch.from_numpy(vt if vt.dtype == np.float32 else np.ascontiguousarray(vt, dtype=np.float32)),
        vt_scaled_t=np.ascontiguousarray((vt * scale).T, dtype=np.float32),
        sigma=sigma,
        seconds=0.0,
    )
    seconds = time.perf_counter() - start
    log.info("graph filter basis: %d x %d, k=%d (%s), %.1f s", *norm.shape, k, svd, seconds)
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


def _scipy_csr(m: torch.Tensor) -> sp.csr_matrix:
    """A torch CSR tensor as a scipy csr matrix over the same buffers (no copy)."""
    return sp.csr_matrix((m.values().numpy(), m.col_indices().numpy(), m.crow_indices().numpy()), shape=tuple(m.shape))


@dataclass
class GfCfScores:
    """GF-CF's scores on a basis: callable as a ScoreFn (dense [b, G], as gf_cf always returned) and in its two
    parts, for a caller that wants the top goods without a [b, G] block (serving's graph_filter source):

        score(u, g) = linear(u)[g] + user_factors(u) . good_factors()[g]

    ``linear`` (r R~^T R~) is sparse and non-negative: non-zero only on goods co-saved with the user's saves;
    the ideal term is an inner product of a [k] user vector (alpha r D^-1/2 V) with a [k] good vector
    (D^1/2 V row g). So a good outside the co-saved set scores its inner product alone, and the top N by the
    inner product bound every other good's score (serving.foryou.sources.graph_filter uses that)."""

    basis: FilterBasis
    alpha: float
    _good_factors: np.ndarray | None = None

    def __call__(self, users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _filtered(self.basis, users, self.alpha).numpy()

    def linear(self, users: np.ndarray) -> sp.csr_matrix:
        """float32 csr [b, G]: ``r R~^T R~`` of the users' rows, zero outside their co-saved goods."""
        rows = self.basis.rows[np.asarray(users, dtype=np.int64)]
        via = sp.csr_matrix(rows @ _scipy_csr(self.basis.norm_t))  # [b, U]: co-savers, weighted
        out = sp.csr_matrix(via @ _scipy_csr(self.basis.norm), dtype=np.float32)
        out.sort_indices()
        return out

    def user_factors(self, users: np.ndarray) -> np.ndarray:
        """float32 [b, k]: ``alpha r D^-1/2 V`` (zero columns when alpha is 0)."""
        rows = self.basis.rows[np.asarray(users, dtype=np.int64)]
        return np.asarray(self.alpha * (rows @ self.basis.vt_scaled_t), dtype=np.float32)

    def good_factors(self) -> np.ndarray:
        """float32 [G, k]: ``D^1/2 V`` (rows of goods nobody saved are zero); computed once."""
        if self._good_factors is None:
            vt = self.basis.vt.numpy()
            self._good_factors = np.ascontiguousarray((vt * self.basis.d_sqrt.numpy()).T, dtype=np.float32)
        return self._good_factors


def gf_cf(
    train: sp.csr_matrix,
    *,
    k: int = 256,
    alpha: float = 0.3,
    svd: str = "auto",
    basis: FilterBasis | None = None,
) -> GfCfScores:
    """GF-CF scores (:class:`GfCfScores`, a ScoreFn); ``alpha`` weighs the ideal low-pass term (0 gives the
    linear filter alone); ``svd`` is :func:`filter_basis`' (by default ARPACK up to ARPACK_MAX_CELLS,
    randomized above).

    ``basis`` may be passed to share one SVD between filters (its ``k`` then wins).
    """
    return GfCfScores(basis or filter_basis(train, k, svd=svd), alpha)


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


def plateau(order: int, flatness: float) -> np.ndarray:
    """ChebyCF's target transfer function on ``L~``'s spectrum [-1, 1] at the ``order + 1`` Chebyshev extrema
    cos((order - j) pi / order), j = 0..order: ``0.5 + 0.5 |x|^flatness`` for x < 0 (low frequencies, kept),
    ``0.5 - 0.5 x^flatness`` for x >= 0; a larger ``flatness`` widens the plateau at 0.5 around x = 0.
    Rounded to 3 decimals, as the reference code does."""
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    x = np.round(np.cos((order - np.arange(order + 1)) / order * math.pi), 3)
    out = np.where(x < 0, 0.5 + 0.5 * np.abs(x) ** flatness, 0.5 - 0.5 * np.abs(x) ** flatness)
    return np.round(out, 3)


def cheby_coefficients(order: int, flatness: float) -> np.ndarray:
    """Coefficients c [order + 1] of ``h(x) = sum_k c_k T_k(x)``, ChebyCF's interpolation of
    :func:`plateau`: the polynomial that takes the plateau's values at the ``order + 1`` Chebyshev nodes
    cos((j - 1/2) pi / (order + 1)) (ascending; the reference code pairs the j-th node with the j-th extremum's
    target, and so does this)."""
    n = order + 1
    nodes = np.cos((n + 0.5 - np.arange(1, n + 1)) / n * math.pi)
    target = plateau(order, flatness)
    t = np.cos(np.arange(n)[:, None] * np.arccos(nodes)[None, :])  # T_k(node_j) [n, n]
    coeffs = (t * target).sum(axis=1) * (2.0 / n)
    coeffs[0] /= 2.0
    return coeffs


def chebyshev_terms(basis: FilterBasis, signal: torch.Tensor, order: int) -> Iterator[torch.Tensor]:
    """``T_k(L~) s`` for k = 0..order, with ``L~ = I - 2 R~^T R~`` and the signal as columns s [G, b]
    (three-term recurrence; each step is two sparse products through R~, never a G x G matrix)."""

    def lap(x: torch.Tensor) -> torch.Tensor:
        return x - 2.0 * (basis.norm_t @ (basis.norm @ x))

    prev, cur = signal, lap(signal)
    yield prev
    if order >= 1:
        yield cur
    for _ in range(2, order + 1):
        prev, cur = cur, 2.0 * lap(cur) - prev
        yield cur


def degree_scaling(basis: FilterBasis, power: float) -> tuple[torch.Tensor, torch.Tensor]:
    """ChebyCF's degree normalisation [G]: (``d^-power``, ``d^power``), both 0 for goods nobody saved."""
    d = basis.d_sqrt.double() ** 2
    seen = d > 0
    pre = torch.where(seen, d.clamp(min=1.0) ** -power, torch.zeros_like(d))
    post = torch.where(seen, d.clamp(min=1.0) ** power, torch.zeros_like(d))
    return pre.float(), post.float()


def chebycf(
    train: sp.csr_matrix,
    *,
    order: int = 8,
    flatness: float = 1.5,
    ideal_k: int = 512,
    ideal_weight: float = 0.2,
    degree_power: float = 0.4,
    svd: str = "randomized",
    power_iters: int = 6,
    seed: int = 0,
    chunk: int | None = None,
    basis: FilterBasis | None = None,
) -> ScoreFn:
    """ChebyCF scores (the reference code's Gowalla setting by default: K=8, phi=1.5, eta=512, alpha=0.2,
    beta=0.4): ``(h(P) s + ideal_weight * s V V^T) D^degree_power`` for ``s = r D^-degree_power``, where h is
    :func:`cheby_coefficients`' polynomial of ``L~ = I - 2P`` and V the top ``ideal_k`` right singular vectors
    of R~ (``ideal_k`` or ``ideal_weight`` 0 turns the ideal pass off).

    ``basis`` may be passed to share one SVD (it needs at least ``ideal_k`` vectors; the first ``ideal_k`` are
    used). Users are filtered ``chunk`` at a time (by default as many as fit 2^25 floats, 128 MB, per
    [G, chunk] block), so the working memory is a few such blocks.
    """
    use_ideal = ideal_k > 0 and ideal_weight > 0
    basis = basis or filter_basis(train, ideal_k if use_ideal else 0, seed=seed, svd=svd, power_iters=power_iters)
    if use_ideal and basis.vt.shape[0] < min(ideal_k, min(train.shape) - 1):
        raise ValueError(f"the basis has {basis.vt.shape[0]} singular vectors, ideal_k is {ideal_k}")
    coeffs = cheby_coefficients(order, flatness).tolist()
    pre, post = degree_scaling(basis, degree_power)
    vt = basis.vt[:ideal_k]
    step = chunk or max(1, min(1024, 2**25 // max(1, basis.rows.shape[1])))

    def score(users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), basis.rows.shape[1]), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(users), step):
                rows = basis.rows[users[start : start + step]]
                s = torch.from_numpy(rows.toarray()) * pre  # [b, G]
                signal = s.t().contiguous()  # [G, b]: the sparse products want columns
                acc = torch.zeros_like(signal)
                for c, term in zip(coeffs, chebyshev_terms(basis, signal, order), strict=True):
                    acc.add_(term, alpha=c)
                filtered = acc.t()
                if use_ideal:
                    filtered = filtered + ideal_weight * ((s @ vt.t()) @ vt)
                out[start : start + len(rows.indptr) - 1] = (filtered * post).numpy()
        return out

    return score


FILTERS: dict[str, Callable[..., ScoreFn]] = {"gf_cf": gf_cf, "bspm": bspm, "chebycf": chebycf}


def fit_graph_filter(saves: sp.csr_matrix, kind: str = "gf_cf", **params: float | int | str) -> ScoreFn:
    """Fit the graph filter ``kind`` ("gf_cf", "bspm" or "chebycf") on the save matrix [U, G] with its
    keyword ``params`` (see each function); returns ``score_fn(user_idx int64 [b]) -> float32 [b, G]``."""
    if kind not in FILTERS:
        raise ValueError(f"unknown graph filter {kind!r}; expected one of {sorted(FILTERS)}")
    return FILTERS[kind](saves, **params)
