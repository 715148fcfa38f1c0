"""Simple recommenders every model is compared with. Each is a function from the train data to a score
function: `fit(train) -> score_fn`, `score_fn(user_idx int64 [b]) -> float32 [b, G]` (higher is better;
the evaluator masks the user's own saves).

All of them see only `TrainData` (saves before T, content vectors, domains), never the test saves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from evaluation.protocol import DemoTruth, TrainData
from graphrec.core.metrics import ScoreFn

log = logging.getLogger(__name__)

DAY = 86400.0


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def _require_content(train: TrainData, who: str) -> np.ndarray:
    if train.content is None:
        raise ValueError(f"{who} needs content vectors for the goods, and this data set has none")
    return train.content


def _popularity_prior(train: TrainData) -> np.ndarray:
    """Save counts scaled into [0, 1): a tie-break that never outranks a real score difference of 1e-3."""
    pop = train.popularity().astype(np.float64)
    return (pop / (pop.max() + 1.0)).astype(np.float32)


def recent_popularity(train: TrainData, half_life_days: float = 30.0, half_life_steps: float = 3.0) -> ScoreFn:
    """Everyone gets the goods saved most in the recent past: each save before T weighs 0.5^(age / half-life).

    Ages in seconds use `half_life_days`; public sequences without clocks count age in steps back from each
    user's newest item (`half_life_steps`). Without save times every save weighs 1: plain popularity.
    """
    if train.save_time is not None and train.split_time is not None and train.save_time.nnz:
        age = train.split_time - train.save_time.data
        weight = 0.5 ** (age / (half_life_steps if train.time_in_steps else half_life_days * DAY))
        score = np.bincount(train.save_time.indices, weights=weight, minlength=train.n_goods)
    else:
        score = train.popularity().astype(np.float64)
    row = score.astype(np.float32)

    def score_fn(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(row, (len(users), len(row)))

    return score_fn


def random_scores(train: TrainData) -> ScoreFn:
    """Uniform random scores, the same for a user whatever the batch (seeded by seed and user_idx)."""
    n_goods, seed = train.n_goods, train.seed

    def score_fn(users: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), n_goods), dtype=np.float32)
        for i, u in enumerate(users):
            out[i] = np.random.default_rng([seed, int(u)]).random(n_goods, dtype=np.float32)
        return out

    return score_fn


def mean_content(train: TrainData) -> ScoreFn:
    """Nearest goods (cosine) to the mean of the user's saved goods' content (CLIP) vectors."""
    content = _require_content(train, "mean-CLIP")
    saves = train.saves
    content_t = np.ascontiguousarray(content.T)

    def score_fn(users: np.ndarray) -> np.ndarray:
        means = _unit(np.asarray(saves[users] @ content))
        return means @ content_t

    return score_fn


def _spherical_kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 10) -> np.ndarray:
    """k unit centres of the unit rows of x [n, d], k-means++ seeding; largest cluster first."""
    n = len(x)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        dist = 1.0 - np.max(x @ np.stack(centres).T, axis=1)
        p = np.maximum(dist, 0)
        p = p / p.sum() if p.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(x[rng.choice(n, p=p)])
    c = np.stack(centres)
    for _ in range(iters):
        assign = np.argmax(x @ c.T, axis=1)
        new = np.zeros_like(c)
        np.add.at(new, assign, x)
        empty = ~new.any(axis=1)
        new[empty] = c[empty]
        new = _unit(new)
        if np.allclose(new, c):
            break
        c = new
    sizes = np.bincount(np.argmax(x @ c.T, axis=1), minlength=k)
    return c[np.argsort(-sizes, kind="stable")]


def multi_interest(train: TrainData, max_interests: int = 4, saves_per_interest: int = 10, depth: int = 100) -> ScoreFn:
    """k-means over a user's CLIP vectors (up to `max_interests` centres, one per `saves_per_interest` saves),
    the nearest unsaved goods to each centre, interleaved round-robin (biggest cluster first).

    The interleaved list covers the first `depth` places; goods after it rank by their best cosine to any
    centre.
    """
    content = _require_content(train, "multi-interest")
    saves = train.saves
    content_t = np.ascontiguousarray(content.T)
    n_goods = train.n_goods

    def score_fn(users: np.ndarray) -> np.ndarray:
        # Every user's centres stacked [C, d] (row offsets per user), then one matrix product for the batch.
        centres, counts = [], np.ones(len(users), dtype=np.int64)
        for i, u in enumerate(users):
            saved = saves.indices[saves.indptr[u] : saves.indptr[u + 1]]
            if len(saved) == 0:
                centres.append(np.zeros((1, content.shape[1]), np.float32))
                continue
            k = int(min(max_interests, max(1, len(saved) // saves_per_interest), len(saved)))
            centres.append(_spherical_kmeans(content[saved], k, np.random.default_rng([train.seed, int(u)])))
            counts[i] = k
        offsets = np.concatenate([[0], np.cumsum(counts)])
        sims = np.concatenate(centres) @ content_t  # [C, G]
        owner = np.repeat(np.arange(len(users)), counts)
        batch_saves = saves[users]
        per_row = np.diff(batch_saves.indptr)[owner]
        row_of = np.repeat(np.arange(len(owner)), per_row)
        cols = np.concatenate([batch_saves.indices[batch_saves.indptr[o] : batch_saves.indptr[o + 1]] for o in owner])
        sims[row_of, cols.astype(np.int64)] = -np.inf
        out = np.maximum.reduceat(sims, offsets[:-1], axis=0)
        d = min(depth, n_goods)
        top = np.argpartition(-sims, d - 1, axis=1)[:, :d]
        top_scores = np.take_along_axis(sims, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)
        ranked = np.take_along_axis(top, order, axis=1)
        ranked_ok = np.isfinite(np.take_along_axis(top_scores, order, axis=1))
        for i in range(len(users)):
            lo, hi = offsets[i], offsets[i + 1]
            # Round robin: place r of centre c comes at r * k + c; a good keeps its first place.
            merged = ranked[lo:hi].T.ravel()[ranked_ok[lo:hi].T.ravel()]
            _, first = np.unique(merged, return_index=True)
            picked = merged[np.sort(first)][:d]
            out[i, picked] = 10.0 + (len(picked) - np.arange(len(picked)))
        return out

    return score_fn


def item_knn(train: TrainData, neighbours: int = 100, chunk: int = 2048) -> ScoreFn:
    """Item-item co-save k-NN: cosine between goods' saver sets, each good keeping its `neighbours` most
    similar goods; a user's score for a good is the summed similarity to the goods they saved.
    Goods with no co-saves rank by popularity (a 1e-3-scaled tie-break)."""
    x = sp.csr_matrix(train.saves, dtype=np.float32)
    pop = np.asarray(x.sum(axis=0)).ravel()
    xn = sp.csr_matrix(x.multiply(1.0 / np.sqrt(np.maximum(pop, 1.0))[None, :]))
    xn_t = sp.csr_matrix(xn.T)
    rows, cols, vals = [], [], []
    for start in range(0, train.n_goods, chunk):
        block = sp.csr_matrix(xn_t[start : start + chunk] @ xn)  # [chunk, G] cosine
        for r in range(block.shape[0]):
            lo, hi = block.indptr[r], block.indptr[r + 1]
            idx, val = block.indices[lo:hi], block.data[lo:hi]
            keep = idx != start + r
            idx, val = idx[keep], val[keep]
            if len(val) > neighbours:
                sel = np.argpartition(-val, neighbours - 1)[:neighbours]
                idx, val = idx[sel], val[sel]
            rows.append(np.full(len(idx), start + r, dtype=np.int64))
            cols.append(idx)
            vals.append(val)
    sim = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(train.n_goods, train.n_goods),
        dtype=np.float32,
    )
    prior = _popularity_prior(train) * 1e-3

    def score_fn(users: np.ndarray) -> np.ndarray:
        return (x[users] @ sim).toarray() + prior

    return score_fn


def pure_svd(train: TrainData, factors: int = 64) -> ScoreFn:
    """Matrix factorisation: truncated SVD of the user-good save matrix (PureSVD), scores X_u V V^T."""
    x = sp.csr_matrix(train.saves, dtype=np.float32)
    k = int(min(factors, min(x.shape) - 1))
    if k < 1:
        raise ValueError("truncated SVD needs at least 2 users and 2 goods")
    _, _, vt = spla.svds(x, k=k, random_state=train.seed)
    v = np.ascontiguousarray(vt.T.astype(np.float32))  # [G, k]
    vt32 = np.ascontiguousarray(vt.astype(np.float32))

    def score_fn(users: np.ndarray) -> np.ndarray:
        return np.asarray(x[users] @ v) @ vt32

    return score_fn


def oracle(truth: DemoTruth) -> Callable[[TrainData], ScoreFn]:
    """The demo's planted answer: a good scores the user's true weight on its style; within a style, goods
    saved more before T come first. A reference, not a ceiling: it knows tastes, not which goods."""

    def fit(train: TrainData) -> ScoreFn:
        if truth.interest.shape[0] != train.n_users or len(truth.style) != train.n_goods:
            raise ValueError("planted truth does not match the evaluated users and goods")
        interest = np.asarray(truth.interest, dtype=np.float32)
        style = np.asarray(truth.style)
        known = style >= 0
        prior = _popularity_prior(train) * 1e-3

        def score_fn(users: np.ndarray) -> np.ndarray:
            w = interest[users][:, np.maximum(style, 0)] * known
            return w + prior

        return score_fn

    return fit


@dataclass(frozen=True)
class Baseline:
    name: str
    what: str  # one line for the report
    fit: Callable[[TrainData], ScoreFn]
    needs_content: bool = False


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in [
        Baseline("random", "uniform random order (the floor)", random_scores),
        Baseline("popularity", "most saved lately (30-day half-life), same for all", recent_popularity),
        Baseline("mean_clip", "nearest goods to the mean CLIP of the user's saves", mean_content, True),
        Baseline(
            "multi_interest",
            "k-means (up to 4) over the user's CLIP vectors, nearest goods per centre, interleaved",
            multi_interest,
            True,
        ),
        Baseline("item_knn", "item-item co-save k-NN (cosine, 100 neighbours per good)", item_knn),
        Baseline("svd", "matrix factorisation: truncated SVD of the user-good matrix, 64 factors", pure_svd),
    ]
}
