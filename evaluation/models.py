"""The trained models as rows of the table, fitted inside the evaluation on the data as of T.

Goodsend data: `graph_model` calls `training.train.fit` for any kind registered in `training.models.MODELS`
on etl's graph built as of T and `training.embed.embed` on the same graph, so nothing after T reaches a model.
It fits twice (`fit_as_of`): the selection run holds out training's validation window (the newest
`train.val_share` of the saves before T) and picks the epoch count on it; the refit then trains a fresh model
(same seed) on every save before T for that many epochs, as the sequence rows do. Without the refit the
model that ranks the test window never learned from the saves just before T. Public data
(no Goodsend graph): `public_lightgcn` trains `training.models.lightgcn.train_lightgcn` on the train matrix,
with early stopping on a seeded per-user carve-out of train (never the test set).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from evaluation.evaluator import Recommender
from evaluation.protocol import TrainData
from graphrec.core.config import TrainConfig
from graphrec.core.metrics import ScoreFn, recall_at_k, topk_from_vectors

log = logging.getLogger(__name__)


def graph_models() -> tuple[str, ...]:
    """The kinds `graphrec train` can fit (training.models.MODELS), in registry order."""
    from training.models import MODELS

    return tuple(MODELS)


def _vector_scores(user_vecs: np.ndarray, good_vecs: np.ndarray) -> ScoreFn:
    user_vecs = np.ascontiguousarray(user_vecs, dtype=np.float32)
    good_t = np.ascontiguousarray(np.asarray(good_vecs, dtype=np.float32).T)
    return lambda users: user_vecs[users] @ good_t


def best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The epoch of the best validation figure in a training history (the first of ties), None if none."""
    validated = [h for h in history if h.get("val") is not None]
    return max(validated, key=lambda h: h["val"])["epoch"] if validated else None


def fit_as_of(
    data: Any, id_maps: Any, manifest: dict[str, Any], cfg: TrainConfig, progress: bool = False
) -> tuple[Any, Any]:
    """`cfg.model` trained on `data` (a graph as of T) for evaluation: (model, selection run), both
    `training.checkpoint.Trained`.

    The selection run early-stops on training's validation window; when it found a best epoch, a fresh model
    with the same seed trains on all of `data`'s saves (`train.val_share` 0, no validation) for that many
    epochs and is the model. Otherwise the selection run is the model too."""
    from training.train import fit as train_fit

    selection = train_fit(data, id_maps, manifest, cfg, progress=progress)
    epochs = best_epoch(selection.meta.history)
    if epochs is None:
        return selection, selection
    whole = dataclasses.replace(cfg, val_share=0.0, max_epochs=epochs)
    trained = train_fit(data, id_maps, manifest, whole, progress=progress)
    log.info("%s: refitted on every save before T for %d epochs (the selection run's best)", cfg.model, epochs)
    return trained, selection


def fit_details(trained: Any, selection: Any, time_budget_s: float | None) -> dict[str, Any]:
    """What a row's `fit_as_of` did, for the report: the selection run's validation figures, best epoch, the
    epochs it ran and their seconds, whether the time budget (wall time, so it binds under load) stopped it or
    the refit, and torch's threads. Without these a row that scores differently in one process than in
    another cannot be told apart from one whose training was cut short."""
    import torch

    def seconds(run: Any) -> float | None:
        history = run.meta.history
        return float(history[-1]["seconds"]) if history and "seconds" in history[-1] else None

    def cut(run: Any) -> bool:
        s = seconds(run)
        return time_budget_s is not None and s is not None and s > time_budget_s

    return {
        "val": selection.meta.val,
        "best_epoch": best_epoch(selection.meta.history),
        "epochs": len(trained.meta.history),
        "refit": trained is not selection,
        "selection_epochs": len(selection.meta.history),
        "selection_s": seconds(selection),
        "refit_s": seconds(trained) if trained is not selection else None,
        "time_budget_cut": cut(selection) or (trained is not selection and cut(trained)),
        "torch_threads": torch.get_num_threads(),
    }


def graph_model(kind: str, graph: Any, cfg: TrainConfig, progress: bool = False) -> Recommender:
    """A row for `graphrec train`'s model `kind` on `graph` = (HeteroData, IdMaps, manifest) as of T, refitted
    on every save before T for the epoch count its validation window chose (`fit_as_of`)."""
    from training.models import get_model

    model = get_model(kind)  # ValueError naming the known kinds
    if graph is None:
        raise ValueError(f"{kind} needs a Goodsend graph; this data set has none")
    info: dict[str, Any] = {}

    def fit(train: TrainData) -> ScoreFn:
        from training.embed import embed

        data, id_maps, manifest = graph
        if data["user"].num_nodes != train.n_users or data["good"].num_nodes != train.n_goods:
            raise ValueError("the graph and the train data disagree on users or goods")
        trained, selection = fit_as_of(data, id_maps, manifest, dataclasses.replace(cfg, model=kind), progress)
        emb = embed(trained, data, id_maps)
        info.update(version=trained.version, **fit_details(trained, selection, cfg.time_budget_s))
        # Embeddings are keyed by database id; put them back in the graph's index order.
        users = id_maps.to_idx("user", emb.user_ids)
        goods = id_maps.to_idx("good", emb.good_ids)
        user_vecs = np.zeros((train.n_users, emb.user_vecs.shape[1]), np.float32)
        good_vecs = np.zeros((train.n_goods, emb.good_vecs.shape[1]), np.float32)
        user_vecs[users[users >= 0]] = emb.user_vecs[users >= 0]
        good_vecs[goods[goods >= 0]] = emb.good_vecs[goods >= 0]
        return _vector_scores(user_vecs, good_vecs)

    what = f"{model.what} (graphrec train), as of the split; epoch count chosen on validation, then refitted"
    return Recommender(kind, what, fit, "model", details=info)


def public_lightgcn(
    params: Any, early_stop: bool = True, val_share: float = 0.1, progress: bool = False
) -> Recommender:
    """LightGCN for a public train matrix; `params` is a training.models.lightgcn.LightGCNParams.

    early_stop: train on train minus the data set's validation saves (or a seeded per-user carve-out of
    train) and keep the best epoch by validation recall@20. Otherwise train on all of train for the
    params' fixed epochs (chosen beforehand on a validation split), as bench-gowalla does.
    """

    def fit(train: TrainData) -> ScoreFn:
        from evaluation.datasets.gowalla import carve_validation
        from training.models.lightgcn import train_lightgcn

        validate = None
        fit_part = train.saves
        if early_stop:
            if train.validation is not None:
                val = sp.csr_matrix(train.validation)
                fit_part = sp.csr_matrix(train.saves - train.saves.multiply(val > 0))
                fit_part.eliminate_zeros()
            else:
                fit_part, val = carve_validation(train.saves, share=val_share, seed=params.seed)
            val_users = np.flatnonzero(np.diff(val.indptr) > 0)
            val_truth = val[val_users]

            def validate(user_vecs: np.ndarray, good_vecs: np.ndarray) -> float:
                picks = topk_from_vectors(user_vecs, good_vecs, val_users, 20, exclude=fit_part)
                return float(recall_at_k(picks, val_truth, 20).mean())

        coo = sp.csr_matrix(fit_part).tocoo()
        result = train_lightgcn(
            coo.row.astype(np.int64),
            coo.col.astype(np.int64),
            train.n_users,
            train.n_goods,
            params,
            validate=validate,
            progress=progress,
        )
        log.info("lightgcn: best validation %s after %d epochs", result.best_val, len(result.history))
        return _vector_scores(result.user_vecs, result.good_vecs)

    how = "early-stopped on validation saves" if early_stop else f"{params.max_epochs} epochs fixed beforehand"
    return Recommender(
        "lightgcn", f"LightGCN (training.models.lightgcn) on the train interactions, {how}", fit, "model"
    )


def gowalla_lightgcn_params() -> Any:
    """The LightGCN settings for Gowalla, shared by bench-gowalla and the evaluator's Gowalla row.

    Chosen on the validation split (train.txt minus a seeded 10% per user, as bench-gowalla --select does;
    Recall@20 on seeded samples of validation users). Random init, 64-d, cosine softmax (the settings before):
    0.101, 0.127, 0.138 after epochs 1-3, still rising when a 600 s budget ran out. Spectral init, 0 epochs,
    3-layer propagation, dot-product scores (8,000 users): 64-d 0.1095, 128-d 0.1322, 256-d 0.1514, 512-d 0.1669;
    goods scaled by degree^0.25 at 512-d 0.1863 (degree^0.5 0.1841); cosine scores lost everywhere (512-d
    0.1330). On another 4,000 users: s^(power/2) with power 1.0 0.1921, 0.5 0.1927, 2.0 0.1867; degree power
    0.4 0.1931. Fine-tuning that init (sampled softmax, 2,048 uniform negatives, batch 4,096, dot product over
    temperature 0.066 = a fifth of the init's positive-minus-random score gap, Adam 2e-4) went to 0.1963 after
    28 steps (about 200 s) and stayed there (0.1962 after 49 steps, 330 s); hence the 400 s budget.
    Step-size decay (``lr_decay_steps``), on all 29,858 validation users of the same carve-out: Adam 4e-4 along
    a half cosine over 60 steps 0.1933, over 200 steps 0.1961 (0.1961 after its first 178-step epoch), against
    the flat 2e-4 given the same wall time 0.1966 (0.1957 after its first epoch) — the decay lost, so the step
    size stays flat. Those runs took 1.9-3.5 s a step depending on the machine's load. The flat run's second
    epoch (stopped by its ~720 s budget inside it) beat its first (0.1966 against 0.1957), so training runs two
    full epochs (2 x 198 steps on the whole train.txt) within the target's 900 s instead of the 400 s budget.
    """
    from training.models.lightgcn import LightGCNParams

    return LightGCNParams(
        embedding_dim=512,
        num_layers=3,
        loss="softmax",
        init="spectral",
        spectral_power=1.0,
        spectral_degree_power=0.4,
        normalize=False,
        lr=2e-4,
        batch_size=4096,
        negatives=2048,
        in_batch_negatives=0,
        temperature=0.066,
        max_epochs=2,
        time_budget_s=900.0,
        seed=0,
    )


def graph_filter(k: int = 256, alpha: float = 0.3) -> Recommender:
    """GF-CF (training.graph_filter): a training-free graph filter over the save matrix."""

    def fit(train: TrainData) -> ScoreFn:
        from training.graph_filter import gf_cf

        return gf_cf(train.saves, k=k, alpha=alpha)

    return Recommender(
        "gf_cf", f"GF-CF graph filter (training-free; {k} singular vectors, alpha {alpha})", fit, "model"
    )
