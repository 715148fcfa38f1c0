"""bench-gowalla and `graphrec evaluate --dataset gowalla` must report the same LightGCN figures: the
evaluator is not a separate code path. Checked here on a small Gowalla-shaped split with fixed epochs, so
the comparison does not depend on how fast the machine is."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from evaluation.evaluator import evaluate
from evaluation.models import gowalla_lightgcn_params, public_lightgcn
from evaluation.protocol import from_public

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def _split(seed: int = 0, users: int = 120, items: int = 160) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Two communities; each user has 12 train items and 3 test items inside their community."""
    rng = np.random.default_rng(seed)
    half = items // 2
    train_rows, test_rows = [], []
    for u in range(users):
        base = 0 if u % 2 == 0 else half
        chosen = base + rng.choice(half, 15, replace=False)
        train_rows.append(chosen[:12])
        test_rows.append(chosen[12:])

    def csr(rows: list[np.ndarray]) -> sp.csr_matrix:
        r = np.repeat(np.arange(users), [len(x) for x in rows])
        return sp.csr_matrix((np.ones(len(r), np.float32), (r, np.concatenate(rows))), shape=(users, items))

    return csr(train_rows), csr(test_rows)


def test_evaluator_and_bench_gowalla_agree_on_lightgcn():
    sys.path.insert(0, str(BENCH_DIR))
    import gowalla as bench  # benchmarks/gowalla.py

    train, test = _split()
    params = dataclasses.replace(
        gowalla_lightgcn_params(),
        embedding_dim=16,
        batch_size=256,
        negatives=64,
        in_batch_negatives=64,
        max_epochs=3,
        time_budget_s=1e9,
    )

    # bench-gowalla's path: train on all of train.txt, rank every item not in the user's train set.
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    u, g = bench.edges(train)
    result = bench.train_lightgcn(u, g, train.shape[0], train.shape[1], params)
    picks = bench.topk_from_vectors(result.user_vecs, result.good_vecs, users, bench.K, exclude=train)
    bench_recall, bench_ndcg = bench.evaluate(users, test, picks)

    # The evaluator's path, as `graphrec evaluate --dataset gowalla` builds it.
    es = from_public("gowalla", train, test)
    row = evaluate(es, [public_lightgcn(params, early_stop=False)], ks=(20,)).rows[0]
    assert row.error is None
    assert row.metrics["recall@20"] == bench_recall
    assert row.metrics["ndcg@20"] == bench_ndcg
    # And the model learned something, so this is not equality of two empty results: random picks among the
    # 148 unsaved items would recall 20 / 148 = 0.135 of a user's test items.
    assert bench_recall > 0.2
