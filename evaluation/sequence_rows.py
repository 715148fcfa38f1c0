"""The sequence model (training.sequence, SASRec-style) as a row of the evaluation table.

The row reads the save order from `TrainData.save_time` (unix seconds for Goodsend, sequence steps for
the public sequences) and validates on `TrainData.validation` when the data set has it (Beauty: each
user's item before the last), else on each user's newest save; the validation goods leave the training
sequences and come back for the user vectors that rank the test goods.
"""

from __future__ import annotations

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


def fit_sasrec(train: TrainData, params: SASRecParams, progress: bool = False) -> tuple[ScoreFn, dict[str, Any]]:
    """Train on `train` and return (score_fn over all goods, info: best epoch, validation, seconds)."""
    seqs = train_sequences(train)
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
    user_vecs = np.ascontiguousarray(result.user_vecs, dtype=np.float32)
    good_t = np.ascontiguousarray(result.good_vecs.T, dtype=np.float32)
    info = {
        "best_epoch": result.best_epoch,
        "val_ndcg@10": result.best_val,
        "train_s": result.train_s,
        "history": result.history,
    }
    log.info(
        "sasrec: best validation NDCG@10 %s at epoch %s (%.0f s)", result.best_val, result.best_epoch, info["train_s"]
    )
    return (lambda users: user_vecs[users] @ good_t), info


def sasrec_row(params: SASRecParams | None = None, progress: bool = False) -> Recommender:
    """A row for the SASRec-style sequence model; applies to data sets with save times."""
    p = params or SASRecParams()

    def fit(train: TrainData) -> ScoreFn:
        score_fn, _ = fit_sasrec(train, p, progress)
        return score_fn

    what = (
        f"SASRec-style sequence model (training.sequence): {p.num_blocks} causal attention blocks, "
        f"d={p.embedding_dim}, last {p.max_len} saves, id + content embeddings, sampled softmax, "
        "early-stopped on validation"
    )
    return Recommender("sasrec", what, fit, "model")
