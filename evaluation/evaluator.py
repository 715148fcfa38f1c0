"""The evaluator: fit each recommender on the train data, rank the candidates for the evaluated users, and
measure the picks against the held-out saves. One code path for the demo and the public data sets.

A recommender's score fn returns scores for every good ([b, G], the evaluator takes the top) or, for one that
builds whole lists (the For You pipeline), `RankedLists`: the picks themselves, optionally with the candidate
source that supplied each pick, which the report counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from evaluation import bootstrap
from evaluation.protocol import EvalSet, TrainData
from graphrec.core import metrics as m
from graphrec.core.metrics import ScoreFn

log = logging.getLogger(__name__)

CURVE_MAX = 50  # recall@k is also traced for k = 1..CURVE_MAX
MIN_PICKS = 5  # the product's promise: at least 5 picks a day
INTERVAL_METRICS = ("recall", "ndcg")  # figures with bootstrap intervals over users
NOT_COMPARED = ("reference", "ablation")  # kinds never taken as "the best other row"
INTEREST_MIN_WEIGHT = 0.15  # a planted interest counts when it carries at least this share of the user's taste
CONTENT_GROUPS = 32  # clusters of the content vectors that stand for interests on data without planted ones


@dataclass(frozen=True)
class RankedLists:
    """What a list-building recommender's score fn returns for a batch of b users instead of scores [b, G].

    picks: int64 [b, K] good_idx, best first, -1 padding at the tail. source: str [b, K] the candidate source
    that supplied each pick ('' at padding), or None.
    """

    picks: np.ndarray
    source: np.ndarray | None = None


@dataclass(frozen=True)
class Recommender:
    """A row of the table. `fit(train) -> score_fn`; `kind` is 'baseline', 'model', 'peer', 'reference' (knows
    the planted answer) or 'ablation' (a part or variant of another row, e.g. one candidate source alone).
    `details`: what the fit chose (settings picked on validation, ...), filled by fit, copied to the row."""

    name: str
    what: str
    fit: Callable[[TrainData], ScoreFn]
    kind: str = "baseline"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    """The figures of one recommender, plus the arrays the plots need."""

    name: str
    what: str
    kind: str
    fit_s: float
    score_s: float
    metrics: dict[str, float]
    recall_curve: list[float]
    pick_popularity: np.ndarray = field(repr=False)  # train popularity of every top-k pick (k = max ks)
    domains_per_list: np.ndarray = field(repr=False)  # int [n users], empty without domains
    error: str | None = None
    # "recall@K"/"ndcg@K" -> float [n users] aligned with EvalSet.users: what the bootstrap resamples.
    per_user: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    # source -> {"picks", "hits", "pick_share", "hit_share"} over every top-K pick (K = max ks); rows whose
    # score fn returns RankedLists with sources only.
    sources: dict[str, dict[str, float]] = field(default_factory=dict)
    # metric -> its bootstrap interval over users (filled by evaluate()).
    intervals: dict[str, bootstrap.Interval] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # Recommender.details after the fit

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "kind": self.kind,
            "fit_s": round(self.fit_s, 3),
            "score_s": round(self.score_s, 3),
            "metrics": self.metrics,
            "recall_curve": self.recall_curve,
            "intervals": {k: v.to_json() for k, v in self.intervals.items()},
            "sources": self.sources,
            "details": self.details,
            "error": self.error,
        }


@dataclass(frozen=True)
class Comparison:
    """`target` against the best other row on `metric` (the best by that metric's mean, references such as
    the oracle left out), paired over the same users: difference and ratio of the means, with intervals."""

    metric: str
    target: str
    other: str
    target_value: float
    other_value: float
    difference: bootstrap.Interval
    ratio: bootstrap.Interval

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "target": self.target,
            "other": self.other,
            "target_value": self.target_value,
            "other_value": self.other_value,
            "difference": self.difference.to_json(),
            "ratio": self.ratio.to_json(),
        }


@dataclass
class EvalResult:
    eval_set: EvalSet
    ks: tuple[int, ...]
    rows: list[Row]
    catalog_popularity: np.ndarray  # train popularity of every candidate good
    eval_s: float
    comparisons: list[Comparison] = field(default_factory=list)

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if len(x) and not np.isnan(x).all() else float("nan")


@dataclass(frozen=True)
class InterestTruth:
    """What the interest figures compare a list with, computed once per EvalSet.

    history: csr [n, G] the evaluated users' train saves (rows aligned with EvalSet.users); groups: int64 [G]
    a seeded spherical k-means of the content vectors into CONTENT_GROUPS (-1 without a vector), or None
    without content; planted: (interest float [n, S], style int64 [G]) on the demo, else None.
    """

    history: sp.csr_matrix
    groups: np.ndarray | None
    planted: tuple[np.ndarray, np.ndarray] | None

    @classmethod
    def of(cls, es: EvalSet) -> InterestTruth:
        content = es.train.content
        groups = m.content_groups(content, CONTENT_GROUPS, seed=es.train.seed) if content is not None else None
        planted = None
        if es.truth is not None:
            planted = (np.asarray(es.truth.interest)[es.users], np.asarray(es.truth.style))
        return cls(sp.csr_matrix(es.train.saves[es.users]), groups, planted)


def interest_figures(picks: np.ndarray, it: InterestTruth, k: int) -> dict[str, float]:
    """interest_coverage@k: the share of a user's planted interests of weight >= INTEREST_MIN_WEIGHT with a
    pick among the top k (demo); calibration_kl@k: Steck's KL between the content-cluster mix of the user's
    saves and of the top k (0 = the same mix; any data with content vectors); calibration_kl_planted@k: the
    same over planted styles (demo)."""
    out: dict[str, float] = {}
    if it.planted is not None:
        interest, style = it.planted
        out[f"interest_coverage@{k}"] = _mean(
            m.planted_interest_coverage(picks, interest, style, k, INTEREST_MIN_WEIGHT)
        )
        out[f"calibration_kl_planted@{k}"] = _mean(m.calibration_kl(picks, it.history, style, k))
    if it.groups is not None:
        out[f"calibration_kl@{k}"] = _mean(m.calibration_kl(picks, it.history, it.groups, k))
    return out


def measure(
    picks: np.ndarray, es: EvalSet, ks: Sequence[int], interests: InterestTruth | None = None
) -> dict[str, float]:
    """Every figure for picks [n users, >= max(ks)] aligned with `es.users`. `interests`: InterestTruth.of(es),
    passed in so that many rows share it (computed here when None)."""
    train, truth = es.train, es.test
    popularity = train.popularity()
    interests = interests if interests is not None else InterestTruth.of(es)
    out: dict[str, float] = {}
    for k in ks:
        out.update(interest_figures(picks, interests, k))
        out[f"precision@{k}"] = _mean(m.precision_at_k(picks, truth, k))
        out[f"recall@{k}"] = _mean(m.recall_at_k(picks, truth, k))
        out[f"ndcg@{k}"] = _mean(m.ndcg_at_k(picks, truth, k))
        out[f"map@{k}"] = _mean(m.average_precision_at_k(picks, truth, k))
        out[f"mrr@{k}"] = _mean(m.reciprocal_rank_at_k(picks, truth, k))
        out[f"hit@{k}"] = _mean(m.hit_rate_at_k(picks, truth, k))
        out[f"coverage@{k}"] = m.catalog_coverage(picks, train.n_goods, k)
        out[f"novelty@{k}"] = _mean(m.novelty(picks, popularity, train.n_users, k))
        if train.content is not None:
            out[f"diversity@{k}"] = _mean(m.intra_list_diversity(picks, train.content, k))
        if train.domain is not None:
            out[f"domains@{k}"] = _mean(m.distinct_domains(picks, train.domain, k))
        soft = es.soft
        if soft is not None and len(soft.rows):
            if soft.vecs is not None and train.content is not None:
                out[f"new_good_cosine@{k}"] = _mean(
                    m.best_cosine_to_picks(picks, train.content, soft.rows, soft.vecs, k)
                )
            if soft.domain is not None and train.domain is not None:
                out[f"new_good_domain_hit@{k}"] = _mean(
                    m.domain_among_picks(picks, train.domain, soft.rows, soft.domain, k)
                )
    out[f"users_with_{MIN_PICKS}_picks"] = m.share_with_min_picks(picks[:, : max(ks)], MIN_PICKS)
    return out


def rank(
    score_fn: ScoreFn | Callable[[np.ndarray], RankedLists],
    es: EvalSet,
    depth: int,
    batch_size: int = 512,
    name: str = "",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Top-`depth` picks int64 [n, depth] for `es.users` (train saves never ranked) and, when the score fn
    returns RankedLists with sources, each pick's source str [n, depth] ('' at padding); else None."""
    users, exclude = es.users, es.train.saves
    picks = np.full((len(users), depth), -1, dtype=np.int64)
    source: np.ndarray | None = None
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        out = score_fn(batch)
        if not isinstance(out, RankedLists):
            scores = np.asarray(out)
            picks[start : start + len(batch)] = m.topk(lambda _u: scores, batch, depth, exclude, len(batch))  # noqa: B023
            continue
        got = _check_lists(out, batch, es, name)
        kk = min(depth, got.shape[1])
        picks[start : start + len(batch), :kk] = got[:, :kk]
        if out.source is not None:
            if source is None:
                source = np.full((len(users), depth), "", dtype=object)
            source[start : start + len(batch), :kk] = np.asarray(out.source, dtype=object)[:, :kk]
    if source is not None:
        source[picks < 0] = ""
    return picks, source


def _check_lists(out: RankedLists, batch: np.ndarray, es: EvalSet, name: str) -> np.ndarray:
    """The picks of a RankedLists, checked against the contract; raises ValueError naming the row and user."""
    got = np.asarray(out.picks)
    if got.ndim != 2 or got.shape[0] != len(batch) or not np.issubdtype(got.dtype, np.integer):
        raise ValueError(f"{name}: RankedLists.picks must be int [{len(batch)}, K], got {got.dtype} {got.shape}")
    if out.source is not None and np.shape(out.source) != got.shape:
        raise ValueError(f"{name}: RankedLists.source has shape {np.shape(out.source)}, picks {got.shape}")
    n_goods = es.train.n_goods
    bad = (got < -1) | (got >= n_goods)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name}: user_idx {batch[i]} pick {j} is good_idx {got[i, j]}, outside [0, {n_goods})")
    valid = got >= 0
    gap = ~valid[:, :-1] & valid[:, 1:]
    if gap.any():
        i = int(np.argwhere(gap)[0][0])
        raise ValueError(f"{name}: user_idx {batch[i]} has a real pick after -1 padding")
    srt = np.sort(np.where(valid, got, -1 - np.arange(got.shape[1])), axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup.any():
        i = int(np.argwhere(dup)[0][0])
        raise ValueError(f"{name}: user_idx {batch[i]} got good_idx {srt[i, 1:][dup[i]][0]} twice")
    saved = _hit_matrix(got, es.train.saves[batch])
    if saved.any():
        i, j = np.argwhere(saved)[0]
        raise ValueError(f"{name}: user_idx {batch[i]} was picked good_idx {got[i, j]}, which they saved before T")
    return got


def _hit_matrix(picks: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """bool [n, K]: whether picks[i, j] is a nonzero of truth row i (padding never is)."""
    valid = picks >= 0
    rows = np.broadcast_to(np.arange(picks.shape[0])[:, None], picks.shape)
    hits = np.zeros(picks.shape, dtype=bool)
    if valid.any():
        hits[valid] = np.asarray(sp.csr_matrix(truth)[rows[valid], picks[valid]]).ravel() != 0
    return hits


def source_figures(picks: np.ndarray, source: np.ndarray, truth: sp.csr_matrix, k: int) -> dict[str, dict[str, float]]:
    """How many of the top-k picks, and of their hits (test saves), each source supplied, over all users."""
    top, src = picks[:, :k], source[:, :k]
    hits = _hit_matrix(top, truth)
    valid = top >= 0
    n_picks, n_hits = int(valid.sum()), int(hits.sum())
    out: dict[str, dict[str, float]] = {}
    for name in sorted({str(s) for s in src[valid]}):
        mine = valid & (src == name)
        p, h = int(mine.sum()), int((hits & mine).sum())
        out[name or "(none)"] = {
            "picks": p,
            "hits": h,
            "pick_share": p / n_picks if n_picks else 0.0,
            "hit_share": h / n_hits if n_hits else float("nan"),
        }
    return out


def per_user(picks: np.ndarray, es: EvalSet, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """The per-user figures that get bootstrap intervals: recall@k and ndcg@k for each k. float [n]."""
    out = {}
    for k in ks:
        out[f"recall@{k}"] = m.recall_at_k(picks, es.test, k)
        out[f"ndcg@{k}"] = m.ndcg_at_k(picks, es.test, k)
    return out


def add_intervals(result: EvalResult, target: str = "for_you", n_boot: int = bootstrap.RESAMPLES) -> None:
    """Fill every row's bootstrap intervals and `result.comparisons` (in place).

    One set of resamples of the users serves every row (seeded by the data set's seed), so the difference of
    two rows is paired. The comparison is of `target` when that row ran, else of the best row by recall@K,
    against the best other row that is neither a reference (the oracle knows the planted answer) nor an
    ablation (a piece of the target itself).
    """
    ok = [r for r in result.rows if not r.error and r.per_user]
    if not ok or len(result.eval_set.users) == 0:
        return
    keys = [f"{metric}@{k}" for k in result.ks for metric in INTERVAL_METRICS]
    values = np.stack([r.per_user[key] for r in ok for key in keys])
    means = bootstrap.bootstrap_means(values, n_boot, seed=result.eval_set.train.seed)
    lo, hi = bootstrap.percentile_interval(means)
    for i, r in enumerate(ok):
        for j, key in enumerate(keys):
            at = i * len(keys) + j
            r.intervals[key] = bootstrap.Interval(float(values[at].mean()), float(lo[at]), float(hi[at]))
    k = max(result.ks)
    candidates = [r for r in ok if r.kind not in NOT_COMPARED]
    by_name = {r.name: r for r in candidates}
    tgt = by_name.get(target) or max(candidates, key=lambda r: r.metrics.get(f"recall@{k}", -1.0), default=None)
    others = [r for r in candidates if tgt is not None and r.name != tgt.name]
    if tgt is None or not others:
        return
    seed = result.eval_set.train.seed
    result.comparisons = []
    for metric in INTERVAL_METRICS:
        key = f"{metric}@{k}"
        best = max(others, key=lambda r: float(r.per_user[key].mean()))
        a, b = tgt.per_user[key], best.per_user[key]
        result.comparisons.append(
            Comparison(
                metric=key,
                target=tgt.name,
                other=best.name,
                target_value=float(a.mean()),
                other_value=float(b.mean()),
                difference=bootstrap.paired_difference(a, b, n_boot, seed),
                ratio=bootstrap.paired_ratio(a, b, n_boot, seed),
            )
        )


def evaluate(
    es: EvalSet,
    recommenders: Sequence[Recommender],
    ks: Sequence[int] = (5, 10, 20),
    batch_size: int = 512,
    progress: bool = False,
    compare: str = "for_you",
) -> EvalResult:
    """Fit and score every recommender on `es`. A recommender that fails gets a row with its error (so one
    broken model does not hide the others); the run still raises if every row failed. Then bootstrap
    intervals over the users for every row, and `compare` (default for_you) against the best other row."""
    started = time.perf_counter()
    ks = tuple(sorted(ks))
    depth = max(max(ks), CURVE_MAX)
    popularity = es.train.popularity()
    interests = InterestTruth.of(es)
    rows: list[Row] = []
    for rec in recommenders:
        log.info("evaluating %s on %s (%d users)", rec.name, es.name, len(es.users))
        t0 = time.perf_counter()
        try:
            score_fn = rec.fit(es.train)
            t1 = time.perf_counter()
            picks, source = rank(score_fn, es, depth, batch_size, rec.name)
            t2 = time.perf_counter()
        except Exception as exc:  # one row's failure is reported, not fatal to the table
            log.exception("%s failed", rec.name)
            rows.append(
                Row(
                    rec.name,
                    rec.what,
                    rec.kind,
                    time.perf_counter() - t0,
                    0.0,
                    {},
                    [],
                    np.zeros(0),
                    np.zeros(0),
                )
            )
            rows[-1].error = f"{type(exc).__name__}: {exc}"
            continue
        curve = [float(np.mean(m.recall_at_k(picks, es.test, k))) for k in range(1, CURVE_MAX + 1)]
        top = picks[:, : max(ks)]
        dom = (
            m.distinct_domains(picks, es.train.domain, max(ks))
            if es.train.domain is not None
            else np.zeros(0, np.int64)
        )
        rows.append(
            Row(
                name=rec.name,
                what=rec.what,
                kind=rec.kind,
                fit_s=t1 - t0,
                score_s=t2 - t1,
                metrics=measure(picks, es, ks, interests),
                recall_curve=curve,
                pick_popularity=popularity[top[top >= 0]],
                domains_per_list=dom,
                per_user=per_user(picks, es, ks),
                sources=source_figures(picks, source, es.test, max(ks)) if source is not None else {},
                details=dict(rec.details),
            )
        )
        log.info(
            "%s: recall@%d %.4f (fit %.1fs, score %.1fs)",
            rec.name,
            max(ks),
            rows[-1].metrics[f"recall@{max(ks)}"],
            t1 - t0,
            t2 - t1,
        )
    if rows and all(r.error for r in rows):
        raise RuntimeError("every recommender failed: " + "; ".join(f"{r.name}: {r.error}" for r in rows))
    result = EvalResult(es, ks, rows, popularity, time.perf_counter() - started)
    add_intervals(result, compare)
    return result
