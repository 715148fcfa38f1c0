"""The retrain gate: whether `graphrec retrain` may make a new model (and its For You pipeline) CURRENT.

On the validation window training holds out (`training.split.time_split`: the newest `train.val_share` of
the saves), the new pipeline, the current one and two baselines are scored by the same code and metric
(Recall@20 and NDCG@20 of the held-out saves, ranking the goods that existed before the cut, training saves
excluded): recent popularity and the GF-CF graph filter, the same rows `graphrec evaluate` shows, fitted on
the saves before the cut. What is scored is what `graphrec recommend` serves: with foryou.ranker, the For You
lists (graphrec.app.foryou.gate_pipeline: a ranker trained on the graph before the cut, its labels inside
that data); a current model without a ranker (or foryou.ranker = false) is scored by its embeddings. The
validation users are a seeded sample of `recommend.gate_users`, the same for every scorer. The new pipeline
is promoted only when it is not worse than the current one (by more than `recommend.promote_tolerance`) and
beats both baselines on every figure. With no current model there is nothing to keep, so it is promoted
anyway, and the reason says which baseline it lost to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from graphrec.core.artifacts import Embeddings, IdMaps
    from training.split import TimeSplit

ScoreFn = Callable[[np.ndarray], np.ndarray]
BASELINES = ("popularity", "gf_cf")
FIGURES = ("recall@20", "ndcg@20")  # training.split.validation_metrics' figures, at its VAL_K


def validation_scores(score_fn: ScoreFn, split: TimeSplit) -> dict[str, float]:
    """`training.split.validation_scores`, imported when called so the CLI starts without torch."""
    from training.split import validation_scores as scores_on_split

    return scores_on_split(score_fn, split)


def embeddings_validation(emb: Embeddings, id_maps: IdMaps, split: TimeSplit) -> dict[str, float]:
    """A model's validation figures from its Embeddings of `split.graph` (rows keyed by database id)."""
    from training.split import validation_metrics

    user_vecs = np.zeros((split.num_users, emb.user_vecs.shape[1]), np.float32)
    good_vecs = np.zeros((split.num_goods, emb.good_vecs.shape[1]), np.float32)
    users, goods = id_maps.to_idx("user", emb.user_ids), id_maps.to_idx("good", emb.good_ids)
    user_vecs[users[users >= 0]] = emb.user_vecs[users >= 0]
    good_vecs[goods[goods >= 0]] = emb.good_vecs[goods >= 0]
    return validation_metrics(user_vecs, good_vecs, split)


def baseline_validation(split: TimeSplit, seed: int = 0) -> dict[str, dict[str, float]]:
    """Recent popularity's and GF-CF's validation figures: evaluate's rows, fitted on the saves before the
    cut (timed as of the cut) and scored like a model."""
    from evaluation.baselines import recent_popularity
    from evaluation.models import graph_filter
    from evaluation.protocol import TrainData, binary_csr

    shape = (split.num_users, split.num_goods)
    saves = binary_csr(split.train_users, split.train_goods, shape)
    first = binary_csr(split.train_users, split.train_goods, shape, split.train_time)  # first save times
    train = TrainData(saves=saves, save_time=first, split_time=float(split.cutoff), seed=seed)
    return {
        "popularity": validation_scores(recent_popularity(train), split),
        "gf_cf": validation_scores(graph_filter().fit(train), split),
    }


def compare_validation(new: dict[str, float], current: dict[str, float] | None, tolerance: float) -> tuple[bool, str]:
    """Promote unless a validation figure of the new model falls short of the current model's by more than
    `tolerance` (relative: 0.02 allows 2% less)."""
    if not current:
        return True, "no current model to compare with"
    worse = []
    for key, cur in sorted(current.items()):
        if key == "val_users" or not isinstance(cur, int | float) or key not in new:
            continue
        if new[key] < cur * (1.0 - tolerance):
            worse.append(f"{key} {new[key]:.4f} < {cur:.4f} - {tolerance:.0%}")
    if worse:
        return False, "new model is worse on validation: " + "; ".join(worse)
    figures = ", ".join(
        f"{k} {new[k]:.4f} vs {v:.4f}" for k, v in sorted(current.items()) if k != "val_users" and k in new
    )
    return True, f"new model is not worse on validation ({figures})"


def shortfalls(new: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Every (baseline, figure) the new model does not beat: 'gf_cf recall@20 0.0100 <= 0.0400'."""
    out = []
    for name, figures in baselines.items():
        for key in FIGURES:
            if key in figures and key in new and not new[key] > figures[key]:
                out.append(f"{name} {key} {new[key]:.4f} <= {figures[key]:.4f}")
    return out


def decide(
    new: dict[str, float],
    current: dict[str, float] | None,
    baselines: Mapping[str, Mapping[str, float]],
    tolerance: float,
) -> tuple[bool, str]:
    """(promote, why): not worse than the current model and better than every baseline; see the module."""
    promoted, reason = compare_validation(new, current, tolerance)
    lost = shortfalls(new, baselines)
    if not lost:
        beaten = ", ".join(f"{n} {f.get('recall@20', float('nan')):.4f}" for n, f in baselines.items())
        return promoted, f"{reason}; beats the baselines on validation ({beaten} recall@20)"
    lost_text = "does not beat the baselines on validation: " + "; ".join(lost)
    if not current:
        return True, f"{reason}, so promoted although it {lost_text}"
    if promoted:
        return False, f"new model {lost_text} (against the current model: {reason.removeprefix('new model ')})"
    return False, f"{reason}; and it {lost_text}"
