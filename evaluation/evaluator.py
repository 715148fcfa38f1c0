"""The evaluator: fit each recommender on the train data, rank the candidates for the evaluated users, and
measure the picks against the held-out saves. One code path for the demo and the public data sets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation.protocol import EvalSet, TrainData
from graphrec.core import metrics as m
from graphrec.core.metrics import ScoreFn

log = logging.getLogger(__name__)

CURVE_MAX = 50  # recall@k is also traced for k = 1..CURVE_MAX
MIN_PICKS = 5  # the product's promise: at least 5 picks a day


@dataclass(frozen=True)
class Recommender:
    """A row of the table. `fit(train) -> score_fn`; `kind` is 'baseline', 'model' or 'reference'."""

    name: str
    what: str
    fit: Callable[[TrainData], ScoreFn]
    kind: str = "baseline"


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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "kind": self.kind,
            "fit_s": round(self.fit_s, 3),
            "score_s": round(self.score_s, 3),
            "metrics": self.metrics,
            "recall_curve": self.recall_curve,
            "error": self.error,
        }


@dataclass
class EvalResult:
    eval_set: EvalSet
    ks: tuple[int, ...]
    rows: list[Row]
    catalog_popularity: np.ndarray  # train popularity of every candidate good
    eval_s: float

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if len(x) and not np.isnan(x).all() else float("nan")


def measure(picks: np.ndarray, es: EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """Every figure for picks [n users, >= max(ks)] aligned with `es.users`."""
    train, truth = es.train, es.test
    popularity = train.popularity()
    out: dict[str, float] = {}
    for k in ks:
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


def evaluate(
    es: EvalSet,
    recommenders: Sequence[Recommender],
    ks: Sequence[int] = (5, 10, 20),
    batch_size: int = 512,
    progress: bool = False,
) -> EvalResult:
    """Fit and score every recommender on `es`. A recommender that fails gets a row with its error (so one
    broken model does not hide the others); the run still raises if every row failed."""
    started = time.perf_counter()
    ks = tuple(sorted(ks))
    depth = max(max(ks), CURVE_MAX)
    popularity = es.train.popularity()
    rows: list[Row] = []
    for rec in recommenders:
        log.info("evaluating %s on %s (%d users)", rec.name, es.name, len(es.users))
        t0 = time.perf_counter()
        try:
            score_fn = rec.fit(es.train)
            t1 = time.perf_counter()
            picks = m.topk(score_fn, es.users, depth, exclude=es.train.saves, batch_size=batch_size)
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
                metrics=measure(picks, es, ks),
                recall_curve=curve,
                pick_popularity=popularity[top[top >= 0]],
                domains_per_list=dom,
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
    return EvalResult(es, ks, rows, popularity, time.perf_counter() - started)
