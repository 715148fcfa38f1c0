"""What a Goodsend engineer would otherwise install, as rows of the same table: implicit's ALS and BPR.

Each row picks its settings (factors, regularisation, confidence or learning rate, iterations) on a validation
window inside the train data, never on the test saves: `TrainData.validation` where the data set has one,
else the newest `VAL_SHARE` of the saves by time (as `graphrec train` validates), else a seeded per-user
carve-out. The chosen settings are then refitted on all of the train data.

LightFM (with the CLIP vectors as item features) is not a row: `pip install lightfm` (1.17, sdist only) fails
here while generating its metadata (`AttributeError: 'dict' object has no attribute '__LIGHTFM_SETUP__'`,
lyst/lightfm#687), with and without `--no-build-isolation`.

implicit is an evaluation-only dependency (`pip install -e '.[eval]'`); without it the rows fail with an
error saying so.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from evaluation.evaluator import Recommender
from evaluation.protocol import TrainData
from graphrec.core.metrics import ScoreFn, recall_at_k, topk_from_vectors

log = logging.getLogger(__name__)

VAL_SHARE = 0.1  # validation window when the data set has none of its own
VAL_K = 20
MAX_VAL_USERS = 2000  # validation users scored per check (a seeded sample beyond that)


@dataclass(frozen=True)
class ALSParams:
    factors: int = 64
    regularization: float = 0.01
    alpha: float = 1.0  # confidence: 1 + alpha per save
    iterations: int = 15


@dataclass(frozen=True)
class BPRParams:
    factors: int = 64
    learning_rate: float = 0.01
    regularization: float = 0.01
    iterations: int = 100


# The search on validation, one setting at a time (coordinate search): from `start`, try each value of the
# first axis and keep the best, then the next axis from there. Iteration counts come free: every fit is
# scored after each of its checkpoints, up to start.iterations. The ranges were widened where a first run on
# Amazon Beauty's validation saves chose an end (ALS alpha 40 and 128 factors; BPR learning rate 0.1, with
# validation recall still rising at 200 iterations: BPR may be undertrained at this budget).
Axes = tuple[tuple[str, tuple[Any, ...]], ...]
ALS_START = ALSParams(factors=64, regularization=0.01, alpha=1.0, iterations=20)
ALS_AXES: Axes = (
    ("alpha", (1.0, 10.0, 40.0, 100.0)),
    ("regularization", (0.01, 0.1, 1.0)),
    ("factors", (64, 128, 256)),
)
ALS_CHECKPOINTS = (5, 10, 15, 20)
BPR_START = BPRParams(factors=64, learning_rate=0.05, regularization=0.01, iterations=200)
BPR_AXES: Axes = (("learning_rate", (0.05, 0.1, 0.2)), ("factors", (64, 128)))
BPR_CHECKPOINTS = (25, 50, 100, 200)


@dataclass(frozen=True)
class Validation:
    """fit: csr [U, G] the saves a candidate setting learns from; users int64 [V] and truth csr [V, G]: the
    held-out saves it is scored on (goods the user also has in `fit` never count)."""

    fit: sp.csr_matrix
    users: np.ndarray
    truth: sp.csr_matrix
    how: str


def validation_split(train: TrainData, share: float = VAL_SHARE, max_users: int = MAX_VAL_USERS) -> Validation:
    """The validation window inside `train` (see the module docstring)."""
    saves = sp.csr_matrix(train.saves, dtype=np.float32)
    if train.validation is not None:
        val = sp.csr_matrix(train.validation, dtype=np.float32)
        fit = sp.csr_matrix(saves - saves.multiply(val > 0))
        how = "the data set's validation saves"
    elif train.save_time is not None and not train.time_in_steps and train.save_time.nnz:
        st = sp.csr_matrix(train.save_time)
        cutoff = np.quantile(st.data, 1.0 - share, method="higher")
        rows = np.repeat(np.arange(st.shape[0]), np.diff(st.indptr))
        new = st.data >= cutoff
        shape = saves.shape
        val = sp.csr_matrix((np.ones(new.sum(), np.float32), (rows[new], st.indices[new])), shape=shape)
        fit = sp.csr_matrix((np.ones((~new).sum(), np.float32), (rows[~new], st.indices[~new])), shape=shape)
        how = f"the newest {share:.0%} of the saves by time"
    else:
        from evaluation.datasets.gowalla import carve_validation

        fit, val = carve_validation(saves, share=share, seed=train.seed)
        how = f"a seeded {share:.0%} of each user's saves"
    fit.eliminate_zeros()
    val = sp.csr_matrix(val - val.multiply(fit > 0))
    val.eliminate_zeros()
    has_fit = np.diff(fit.indptr) > 0
    users = np.flatnonzero((np.diff(val.indptr) > 0) & has_fit)
    if len(users) == 0:
        raise ValueError(f"no validation users in {how}: every held-out saver has no other save")
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(train.seed).choice(users, max_users, replace=False))
    return Validation(fit, users.astype(np.int64), sp.csr_matrix(val[users]), how)


def _recall(user_vecs: np.ndarray, good_vecs: np.ndarray, val: Validation) -> float:
    picks = topk_from_vectors(user_vecs, good_vecs, val.users, VAL_K, exclude=val.fit)
    return float(recall_at_k(picks, val.truth, VAL_K).mean())


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    # implicit parallelises over users itself; a multi-threaded BLAS underneath only oversubscribes the cores.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        yield


def _require_implicit() -> Any:
    try:
        import implicit.cpu.als
        import implicit.cpu.bpr
    except ImportError as exc:  # an evaluation-only dependency
        raise ImportError("implicit is not installed: pip install -e '.[eval]'") from exc
    return implicit.cpu


def _als(p: ALSParams, seed: int) -> Any:
    cpu = _require_implicit()
    return cpu.als.AlternatingLeastSquares(
        factors=p.factors,
        regularization=p.regularization,
        alpha=p.alpha,
        iterations=p.iterations,
        random_state=seed,
    )


def _bpr(p: BPRParams, seed: int) -> Any:
    cpu = _require_implicit()
    # One thread: implicit's BPR updates are Hogwild across threads, so only one thread repeats for a seed.
    return cpu.bpr.BayesianPersonalizedRanking(
        factors=p.factors,
        learning_rate=p.learning_rate,
        regularization=p.regularization,
        iterations=p.iterations,
        num_threads=1,
        random_state=seed,
    )


def _vectors(model: Any) -> tuple[np.ndarray, np.ndarray]:
    # BPR's item factors carry a bias column and its user factors a matching column of ones.
    return np.asarray(model.user_factors, np.float32), np.asarray(model.item_factors, np.float32)


def _validate_one(
    p: Any, checkpoints: Sequence[int], make: Callable[[Any, int], Any], val: Validation, seed: int
) -> dict[int, float]:
    """Fit setting `p` on val.fit; validation recall@20 after each checkpoint's iterations (and the last)."""
    checks = {c for c in checkpoints if c <= p.iterations} | {p.iterations}
    scores: dict[int, float] = {}
    t0 = time.perf_counter()
    with _one_blas_thread():
        model = make(p, seed)

        def callback(iteration: int, *_: Any) -> None:
            if iteration + 1 in checks:
                scores[iteration + 1] = _recall(*_vectors(model), val)

        model.fit(val.fit, show_progress=False, callback=callback)
    log.info("%s: validation recall@%d %s (%.1f s)", p, VAL_K, scores, time.perf_counter() - t0)
    return scores


def _search(
    start: Any,
    axes: Axes,
    checkpoints: Sequence[int],
    make: Callable[[Any, int], Any],
    val: Validation,
    seed: int,
) -> tuple[Any, float, list[dict[str, Any]]]:
    """Coordinate search from `start` over `axes`, each setting fitted on val.fit and scored at each
    checkpoint: the best setting (with its best iteration count), its validation recall@20, and every check."""
    history: list[dict[str, Any]] = []
    tried: dict[Any, dict[int, float]] = {}

    def best_of(p: Any) -> tuple[int, float]:
        if p not in tried:
            tried[p] = _validate_one(p, checkpoints, make, val, seed)
            for done, score in sorted(tried[p].items()):
                history.append({**dataclasses.asdict(p), "iterations": done, f"val_recall@{VAL_K}": score})
        # Fewest iterations among equals: max() keeps the first of ties in ascending order.
        return max(sorted(tried[p].items()), key=lambda kv: kv[1])

    current = start
    for field_name, values in axes:
        current = max((dataclasses.replace(current, **{field_name: v}) for v in values), key=lambda p: best_of(p)[1])
    done, score = best_of(current)
    return dataclasses.replace(current, iterations=done), score, history


def _peer(
    name: str, what: str, start: Any, axes: Axes, checkpoints: Sequence[int], make: Callable[[Any, int], Any]
) -> Recommender:
    details: dict[str, Any] = {}

    def fit(train: TrainData) -> ScoreFn:
        _require_implicit()
        val = validation_split(train)
        chosen, score, history = _search(start, axes, checkpoints, make, val, train.seed)
        log.info("%s: chose %s on %s (validation recall@%d %.4f)", name, chosen, val.how, VAL_K, score)
        details.update(chosen=dataclasses.asdict(chosen), val=score, validation=val.how, history=history)
        with _one_blas_thread():
            model = make(chosen, train.seed)
            model.fit(sp.csr_matrix(train.saves, dtype=np.float32), show_progress=False)
        user_vecs, good_vecs = _vectors(model)
        good_t = np.ascontiguousarray(good_vecs.T)
        return lambda users: user_vecs[users] @ good_t

    return Recommender(name, what, fit, "peer", details)


def _describe(axes: Axes, checkpoints: Sequence[int]) -> str:
    tried = "; ".join(f"{name} {', '.join(str(v) for v in values)}" for name, values in axes)
    return f"settings chosen on validation ({tried}; iterations {', '.join(map(str, checkpoints))})"


def als(
    start: ALSParams = ALS_START, axes: Axes = ALS_AXES, checkpoints: Sequence[int] = ALS_CHECKPOINTS
) -> Recommender:
    """implicit's AlternatingLeastSquares (confidence-weighted matrix factorisation, Hu et al. 2008)."""
    what = "implicit ALS, confidence-weighted matrix factorisation; " + _describe(axes, checkpoints)
    return _peer("als", what, start, axes, checkpoints, _als)


def bpr(
    start: BPRParams = BPR_START, axes: Axes = BPR_AXES, checkpoints: Sequence[int] = BPR_CHECKPOINTS
) -> Recommender:
    """implicit's BayesianPersonalizedRanking (matrix factorisation with the pairwise BPR loss)."""
    what = "implicit BPR, matrix factorisation with a pairwise loss; " + _describe(axes, checkpoints)
    return _peer("bpr", what, start, axes, checkpoints, _bpr)


def peers() -> list[Recommender]:
    """Every peer row, in table order."""
    return [als(), bpr()]
