"""The sequence model (training.sequence, SASRec-style) as a row of the evaluation table.

The row reads the save order from `TrainData.save_time` (unix seconds for Goodsend, sequence steps for
the public sequences) and validates on `TrainData.validation` when the data set has it (Beauty: each
user's item before the last), else on each user's newest save. Two fits: the selection run trains on the
sequences without the validation goods and picks the epoch count on them (early stopping); the refit then
trains a fresh model (same seed) on the whole sequences, validation goods included as the newest targets,
for that many epochs, and its user vectors (the whole sequences) rank the test goods. Without the refit a
test good follows a transition the model never saw (each user's validation good): on Beauty a first-order
last-good -> next-good count model loses 11% of its test HR@10 when it is not refitted (0.0813 -> 0.0723).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from evaluation.evaluator import Recommender
from evaluation.protocol import EvalSet, TrainData
from graphrec.core.metrics import ScoreFn
from training.sequence import SASRecParams, Sequences, sequences_from_saves, split_last, train_sasrec

log = logging.getLogger(__name__)


def public_sasrec_params() -> SASRecParams:
    """The sequence model's settings for public sequence data, shared by bench-beauty and the evaluator.

    Chosen on Beauty's validation item (the one before the last); the settings tried and their validation
    figures are listed in benchmarks/beauty.py.
    """
    return SASRecParams(
        embedding_dim=64,
        num_blocks=2,
        num_heads=1,
        max_len=50,
        dropout=0.3,
        lr=2e-3,
        batch_size=256,
        negatives=4096,
        use_content=True,
        max_epochs=400,
        patience=5,
        val_every=2,
        # The whole fit (training, the last validation, the final user vectors) stays within 900 s.
        time_budget_s=870.0,
        seed=0,
        threads=2,
    )


def sequence_rows(es: EvalSet, progress: bool = False) -> list[Recommender]:
    """Rows for a public data set: the sequence model when it has save order, EASE when its goods fit dense.

    Goodsend data (with a graph) gets the sequence model through the registry (`graphrec train`'s "sasrec").
    """
    from evaluation.ease import MAX_GOODS, ease_row

    rows = []
    if es.graph is None and es.train.save_time is not None:
        rows.append(sasrec_row(public_sasrec_params(), progress))
    if es.train.n_goods <= MAX_GOODS:
        rows.append(ease_row())
    return rows


def train_sequences(train: TrainData) -> Sequences:
    """Every user's saved goods before T, oldest first (needs `save_time`)."""
    if train.save_time is None:
        raise ValueError("the sequence model needs save times (the order of each user's saves); this data has none")
    st = sp.csr_matrix(train.save_time)
    st.sort_indices()
    users = np.repeat(np.arange(train.n_users), np.diff(st.indptr))
    return sequences_from_saves(users, st.indices, st.data, train.n_users)


def holdout(train: TrainData, seqs: Sequences) -> tuple[Sequences, np.ndarray]:
    """(sequences without the validation goods, int64 [U] the validation good per user or -1).

    With `train.validation`, a user's validation good must be the newest of their sequence (leave-last-out);
    a user with several validation goods or an older one is not validated (and keeps their sequence).
    Without it, each user's newest good is held out.
    """
    if train.validation is None:
        return split_last(seqs)
    val = sp.csr_matrix(train.validation)
    fit, last = split_last(seqs)
    target = np.full(seqs.n_users, -1, dtype=np.int64)
    counts = np.diff(val.indptr)
    one = np.flatnonzero(counts == 1)
    goods = val.indices[val.indptr[one]]
    ok = last[one] == goods
    target[one[ok]] = goods[ok]
    if (~ok).any():
        log.info("sasrec: %d users' validation good is not their newest; they are not validated", int((~ok).sum()))
    # Users not validated keep their whole sequence for training.
    held = target >= 0
    lengths = np.where(held, fit.lengths(), seqs.lengths())
    pieces = [fit.of(u) if held[u] else seqs.of(u) for u in range(seqs.n_users)]
    goods_all = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    return Sequences(np.r_[0, np.cumsum(lengths)].astype(np.int64), goods_all.astype(np.int64)), target


def fit_sasrec(
    train: TrainData, params: SASRecParams, progress: bool = False, *, refit: bool = True, epochs: int | None = None
) -> tuple[ScoreFn, dict[str, Any]]:
    """Train on `train` and return (score_fn over all goods, info).

    The selection run early-stops on the validation goods; with `refit` (and a best epoch found) a second
    model trains on the whole sequences for the best epoch count and gives the scores. `epochs` (an epoch
    count a selection run chose before) skips the selection run: only the refit trains. info: best_epoch,
    val_ndcg@10 / val_hr@10 (the selection run's best; None without one), history (the selection run's),
    select_s (its seconds, 0 without one), refit (bool), refit_epochs, train_s (seconds of the fit whose
    model scores: the refit's when refitted).
    """
    seqs = train_sequences(train)
    if epochs is not None:
        fixed = dataclasses.replace(params, max_epochs=epochs)
        result = train_sasrec(seqs, train.n_goods, fixed, content=train.content, progress=progress)
        log.info("sasrec: trained on the whole sequences for %d epochs (%.0f s)", len(result.history), result.train_s)
        given: dict[str, Any] = {"best_epoch": epochs, "val_ndcg@10": None, "val_hr@10": None, "select_s": 0.0}
        given.update(train_s=result.train_s, history=[], refit=True, refit_epochs=len(result.history))
        return _score_fn(result.user_vecs, result.good_vecs), given
    fit_seqs, target = holdout(train, seqs)
    result = train_sasrec(
        fit_seqs,
        train.n_goods,
        params,
        content=train.content,
        validation=target,
        final=seqs,
        progress=progress,
    )
    best = [h.get("val_hr") for h in result.history if h["epoch"] == result.best_epoch]
    info: dict[str, Any] = {
        "best_epoch": result.best_epoch,
        "val_ndcg@10": result.best_val,
        "val_hr@10": best[0] if best else None,
        "select_s": result.train_s,
        "train_s": result.train_s,
        "history": result.history,
        "refit": False,
    }
    log.info(
        "sasrec: best validation NDCG@10 %s at epoch %s (%.0f s)", result.best_val, result.best_epoch, result.train_s
    )
    if refit and result.best_epoch:
        again = dataclasses.replace(params, max_epochs=int(result.best_epoch))
        result = train_sasrec(seqs, train.n_goods, again, content=train.content, progress=progress)
        info.update(train_s=result.train_s, refit=True, refit_epochs=len(result.history))
        log.info("sasrec: refitted on the whole sequences for %d epochs (%.0f s)", len(result.history), result.train_s)
    return _score_fn(result.user_vecs, result.good_vecs), info


def _score_fn(user_vecs: np.ndarray, good_vecs: np.ndarray) -> ScoreFn:
    u = np.ascontiguousarray(user_vecs, dtype=np.float32)
    g_t = np.ascontiguousarray(good_vecs.T, dtype=np.float32)
    return lambda users: u[users] @ g_t


def sasrec_row(params: SASRecParams | None = None, progress: bool = False) -> Recommender:
    """A row for the SASRec-style sequence model; applies to data sets with save times."""
    p = params or SASRecParams()

    def fit(train: TrainData) -> ScoreFn:
        score_fn, _ = fit_sasrec(train, p, progress)
        return score_fn

    what = (
        f"SASRec-style sequence model (training.sequence): {p.num_blocks} causal attention blocks, "
        f"d={p.embedding_dim}, last {p.max_len} saves, id + content embeddings, sampled softmax, "
        "epoch count early-stopped on validation, then refitted with the validation goods"
    )
    return Recommender("sasrec", what, fit, "model")
