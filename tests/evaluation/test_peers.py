"""implicit's ALS and BPR as rows: settings picked on a validation window inside the train data, and on a tiny
planted world they find each user's block (random does not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from evaluation import peers as P
from evaluation.evaluator import Recommender, evaluate
from evaluation.protocol import EvalSet, TrainData, binary_csr, from_public
from evaluation.report import write_report

pytest.importorskip("implicit")

DAY = 86400.0


def _blocks(n_users: int = 200, n_goods: int = 60, seed: int = 0) -> EvalSet:
    """Each user saves goods of one of 4 blocks: 6 before the split (timed), 2 after it."""
    rng = np.random.default_rng(seed)
    size = n_goods // 4
    rows, cols, test_cols = [], [], []
    for u in range(n_users):
        goods = rng.integers(0, 4) * size + rng.choice(size, 8, replace=False)
        rows += [u] * 6
        cols += list(goods[:6])
        test_cols += list(goods[6:])
    rows_a, cols_a = np.array(rows), np.array(cols)
    times = np.tile(np.arange(6) * DAY, n_users).astype(float)
    shape = (n_users, n_goods)
    es = from_public(
        "blocks",
        binary_csr(rows_a, cols_a, shape),
        binary_csr(np.repeat(np.arange(n_users), 2), np.array(test_cols), shape),
        seed=seed,
    )
    train = TrainData(es.train.saves, save_time=binary_csr(rows_a, cols_a, shape, times), split_time=6 * DAY, seed=seed)
    return EvalSet(es.name, train, es.users, es.test, counts=es.counts)


def test_validation_window_is_the_newest_saves_and_never_the_fit() -> None:
    es = _blocks()
    val = P.validation_split(es.train, share=0.2)
    assert val.how.startswith("the newest 20%")
    held = sp.lil_matrix(val.fit.shape, dtype=np.float32)
    held[val.users] = val.truth
    held = sp.csr_matrix(held)
    assert held.multiply(val.fit).nnz == 0  # held-out saves are not in the fit part
    assert (val.fit + held).nnz == es.train.saves.nnz
    st = es.train.save_time
    assert st.multiply(held > 0).data.min() > st.multiply(val.fit > 0).data.max()  # a time window
    # A data set's own validation saves win.
    first = [es.train.saves[u].indices[0] for u in (0, 1)]
    own = TrainData(es.train.saves, validation=binary_csr(np.array([0, 1]), np.array(first), es.train.saves.shape))
    got = P.validation_split(own)
    assert got.how == "the data set's validation saves" and list(got.users) == [0, 1]
    assert got.fit.nnz == es.train.saves.nnz - 2


@pytest.mark.parametrize(
    "row",
    [
        P.als(
            P.ALSParams(factors=8, regularization=0.01, alpha=1.0, iterations=10), (("alpha", (1.0, 10.0)),), (5, 10)
        ),
        P.bpr(
            P.BPRParams(factors=8, learning_rate=0.05, regularization=0.01, iterations=60),
            (("learning_rate", (0.01, 0.05)),),
            (30, 60),
        ),
    ],
    ids=["als", "bpr"],
)
def test_peer_rows_find_the_planted_blocks(row: Recommender, tmp_path: Path) -> None:
    es = _blocks()

    def random_fit(train: TrainData):
        return lambda users: np.random.default_rng([3, *users.tolist()]).random((len(users), train.n_goods))

    result = evaluate(es, [row, Recommender("random", "random", random_fit)], ks=(10,))
    peer, rnd = result.rows
    assert peer.error is None, peer.error
    # 10 picks out of the 15 - 6 = 9 unsaved goods of the user's block hold both test saves: recall near 1
    # for a model that learnt the blocks; random picks 10 of 54 goods.
    assert rnd.metrics["recall@10"] < 0.35
    assert peer.metrics["recall@10"] > 0.8
    assert result.comparisons[0].target == peer.name and result.comparisons[0].difference.lo > 0
    chosen = peer.details["chosen"]
    assert peer.details["validation"].startswith("the newest") and chosen["iterations"] in (5, 10, 30, 60)
    assert len(peer.details["history"]) == 4  # 2 settings x 2 checkpoints
    write_report([result], tmp_path, {"run": "t"})
    assert f"- {peer.name}: factors 8" in (tmp_path / "report.md").read_text()


def test_search_keeps_the_best_setting_per_axis(monkeypatch: pytest.MonkeyPatch) -> None:
    # A made-up validation surface: alpha 10 is best, then regularization 0.1; more iterations help up to 10.
    def fake(p: P.ALSParams, checkpoints, make, val, seed) -> dict[int, float]:
        base = {1.0: 0.1, 10.0: 0.3, 40.0: 0.2}[p.alpha] + {0.01: 0.0, 0.1: 0.05, 1.0: -0.1}[p.regularization]
        return {5: base, 10: base + 0.01, 20: base + 0.01}

    monkeypatch.setattr(P, "_validate_one", fake)
    axes = (("alpha", (1.0, 10.0, 40.0)), ("regularization", (0.01, 0.1, 1.0)), ("factors", (64, 128)))
    chosen, score, history = P._search(P.ALS_START, axes, (5, 10, 20), P._als, None, 0)  # type: ignore[arg-type]
    assert (chosen.alpha, chosen.regularization, chosen.factors, chosen.iterations) == (10.0, 0.1, 64, 10)
    assert score == pytest.approx(0.36)
    assert len({(h["alpha"], h["regularization"], h["factors"]) for h in history}) == 6  # no setting fitted twice
