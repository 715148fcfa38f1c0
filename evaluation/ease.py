"""EASE (Steck, WWW 2019): a closed-form item-item linear model, as a baseline row of the evaluation table.

B = I - P / diag(P) with P = (XᵀX + λI)⁻¹ (so diag(B) = 0); a user's scores are x_u B. λ is chosen on the
data set's validation saves (or a seeded per-user carve-out of train) from `LAMBDAS`, then B is refitted
on all of train.

Dense limit: P and B are dense float32 [G, G] (and the Cholesky works in place on one of them), about
8·G² bytes in all: 1.2 GB at Beauty's 12,101 goods, 3.2 GB at 20,000. Above `MAX_GOODS` the row refuses
to fit, saying so, rather than exhaust memory (the demo's 100,000 goods would need 80 GB).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from evaluation.evaluator import Recommender
from evaluation.protocol import TrainData
from graphrec.core.metrics import ScoreFn, hit_rate_at_k, topk

log = logging.getLogger(__name__)

MAX_GOODS = 20_000
# Beauty's validation HR@10 (bench-beauty, 20:23): 50 0.0896, 200 0.0879, 500 0.0849, 2000 0.0830; the best
# was the grid's smallest, so the grid now reaches below it.
LAMBDAS = (10.0, 25.0, 50.0, 200.0, 1000.0)
VAL_K = 10


def ease_weights(saves: sp.csr_matrix, lam: float) -> np.ndarray:
    """B float32 [G, G] for the binary save matrix `saves` [U, G] and L2 weight `lam` > 0."""
    n = saves.shape[1]
    if n > MAX_GOODS:
        raise ValueError(f"EASE is dense in the goods: {n} goods exceed its limit of {MAX_GOODS}")
    if lam <= 0:
        raise ValueError(f"EASE needs lambda > 0, got {lam}")
    x = sp.csr_matrix(saves, dtype=np.float32)
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32, order="F")
    gram[np.diag_indices(n)] += lam
    # Cholesky inverse in place (upper triangle), then mirrored: half the work of a general inverse.
    chol, info = lapack.spotrf(gram, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: Cholesky failed (info {info})")
    p, info = lapack.spotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: inverse failed (info {info})")
    p = np.triu(p)
    p = p + np.triu(p, 1).T
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices(n)] = 0.0
    return np.ascontiguousarray(b, dtype=np.float32)


def _validation_split(train: TrainData) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    from evaluation.datasets.gowalla import carve_validation

    if train.validation is not None:
        val = sp.csr_matrix(train.validation)
        fit = sp.csr_matrix(train.saves - train.saves.multiply(val > 0))
        fit.eliminate_zeros()
        return fit, val
    return carve_validation(train.saves, share=0.1, seed=train.seed)


def choose_lambda(train: TrainData, lambdas: Sequence[float] = LAMBDAS) -> tuple[float, dict[float, float]]:
    """(best λ by validation HR@10, {λ: validation HR@10}); never looks at the test saves."""
    fit, val = _validation_split(train)
    users = np.flatnonzero(np.diff(val.indptr) > 0)
    truth = val[users]
    figures: dict[float, float] = {}
    for lam in lambdas:
        b = ease_weights(fit, lam)

        def scores(u: np.ndarray, b: np.ndarray = b) -> np.ndarray:
            return np.asarray(fit[u] @ b)

        picks = topk(scores, users, VAL_K, exclude=fit, batch_size=2048)
        figures[lam] = float(hit_rate_at_k(picks, truth, VAL_K).mean())
        log.info("ease: lambda %g validation hr@%d %.4f", lam, VAL_K, figures[lam])
    return max(figures, key=lambda k: figures[k]), figures


def ease(train: TrainData, lambdas: Sequence[float] = LAMBDAS) -> ScoreFn:
    """Fit EASE on `train` with λ chosen on validation; score_fn(user_idx [b]) -> float32 [b, G]."""
    if train.n_goods > MAX_GOODS:
        raise ValueError(f"EASE is dense in the goods: {train.n_goods} goods exceed its limit of {MAX_GOODS}")
    lam = lambdas[0] if len(lambdas) == 1 else choose_lambda(train, lambdas)[0]
    b = ease_weights(train.saves, lam)
    x = sp.csr_matrix(train.saves, dtype=np.float32)
    return lambda users: np.asarray(x[users] @ b)


def ease_row(lambdas: Sequence[float] = LAMBDAS) -> Recommender:
    return Recommender(
        "ease",
        f"EASE closed-form item-item model, lambda chosen on validation from {', '.join(f'{v:g}' for v in lambdas)}",
        lambda train: ease(train, lambdas),
    )
