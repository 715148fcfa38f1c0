"""The sequence row's refit (evaluation.sequence_rows.fit_sasrec), on a world where a rule lives only in
the validation position.

Type-1 users save fillers, then A, then B, and B is their validation item (the newest train save): "after A
comes B" is never a training target of the selection run. Type-2 users save fillers, C, D, fillers, C, D
(the last D their validation item), so the selection run learns C -> D and finds its epoch count. Query
users (no validation item) end with A. The refit trains on the whole sequences, validation items included,
and must put B first for them; the selection run's model (no refit) cannot.
"""

from __future__ import annotations

import numpy as np

from evaluation.protocol import TrainData, binary_csr
from evaluation.sequence_rows import fit_sasrec
from training.sequence import SASRecParams

A, B, C, D = 0, 1, 2, 3
N_GOODS = 40
FILLERS = np.arange(4, N_GOODS)
PARAMS = SASRecParams(
    embedding_dim=32,
    num_blocks=1,
    max_len=8,
    dropout=0.1,
    lr=5e-3,
    batch_size=64,
    negatives=N_GOODS,
    max_epochs=30,
    patience=4,
    val_every=1,
    time_budget_s=120.0,
    threads=1,
)


def world(seed: int = 0) -> tuple[TrainData, np.ndarray]:
    rng = np.random.default_rng(seed)
    seqs, validated = [], []
    for _ in range(200):
        seqs.append([*rng.choice(FILLERS, 3, replace=False), A, B])
        validated.append(True)
    for _ in range(200):
        f = rng.choice(FILLERS, 4, replace=False)
        seqs.append([f[0], C, D, f[1], f[2], C, D])
        validated.append(True)
    queries = []
    for _ in range(40):
        queries.append(len(seqs))
        seqs.append([*rng.choice(FILLERS, 3, replace=False), A])
        validated.append(False)
    users = np.concatenate([np.full(len(s), u) for u, s in enumerate(seqs)])
    goods = np.concatenate([np.asarray(s) for s in seqs])
    steps = np.concatenate([np.arange(len(s)) - len(s) for s in seqs]).astype(np.float64)
    shape = (len(seqs), N_GOODS)
    val_users = np.flatnonzero(validated)
    val_goods = np.array([seqs[u][-1] for u in val_users])
    train = TrainData(
        saves=binary_csr(users, goods, shape),
        save_time=binary_csr(users, goods, shape, steps),
        validation=binary_csr(val_users, val_goods, shape),
        # Random content: B (never a training save of the selection run) still has a vector, as an unseen
        # Beauty item has its categories' projection, rather than a zero that outranks negative scores.
        content=rng.normal(size=(N_GOODS, 8)).astype(np.float32),
    )
    return train, np.asarray(queries)


def first_picks(train: TrainData, score_fn, users: np.ndarray) -> np.ndarray:
    scores = np.array(score_fn(users), dtype=np.float64)
    scores[train.saves[users].toarray() > 0] = -np.inf
    return scores.argmax(axis=1)


def test_the_refit_learns_what_only_the_validation_items_show() -> None:
    train, queries = world()
    score_fn, info = fit_sasrec(train, PARAMS)
    assert info["refit"] and info["refit_epochs"] == info["best_epoch"]
    assert info["val_ndcg@10"] is not None and info["val_hr@10"] is not None
    assert (first_picks(train, score_fn, queries) == B).mean() >= 0.9
    # The selection run's own model never saw B after A.
    plain_fn, plain = fit_sasrec(train, PARAMS, refit=False)
    assert not plain["refit"] and plain["best_epoch"] == info["best_epoch"]
    assert (first_picks(train, plain_fn, queries) == B).mean() <= 0.2
