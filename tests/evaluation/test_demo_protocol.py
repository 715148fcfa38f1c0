"""The protocol on generated demo data in a real database: where the rows fall, and no leakage past T."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from etl.demo_data import DemoParams, generate
from etl.write import write_tables
from evaluation.baselines import BASELINES, oracle
from evaluation.evaluator import Recommender, evaluate
from evaluation.models import graph_model
from evaluation.run import load_database
from graphrec.core import db
from graphrec.core.config import Config, EvaluateConfig, GraphConfig, TrainConfig
from graphrec.core.metrics import topk

PARAMS = DemoParams(users=300, goods=3000, styles=12, domains=60, seed=0)
# Tiny training: the point here is the protocol, not the model's quality.
TINY_TRAIN = TrainConfig(max_epochs=1, steps_per_epoch=3, time_budget_s=60, seed=0)
CFG = Config(graph=GraphConfig(min_goods=10), evaluate=EvaluateConfig(test_share=0.15), train=TINY_TRAIN)


@pytest.fixture
def demo_url(migrated_url: str) -> str:
    tables, truth = generate(PARAMS)
    with db.connect(migrated_url) as conn:
        write_tables(conn, tables, truth, replace=False)
    return migrated_url


def _baselines() -> list[Recommender]:
    return [Recommender(b.name, b.what, b.fit) for b in BASELINES.values()]


def test_test_set_is_after_T_and_candidates_are_as_of_T(demo_url: str) -> None:
    es = load_database(demo_url, CFG)
    c = es.counts
    assert c["evaluated_users"] == len(es.users) > 30
    assert c["test_saves_candidates"] == es.test.nnz
    # No test save is a good the user saved before T (those are masked and could never be hit).
    overlap = es.test.multiply(es.train.saves[es.users])
    assert overlap.nnz == 0
    # Evaluated users are eligible at T: more than min_goods goods saved before T.
    assert (np.diff(es.train.saves[es.users].indptr) > CFG.graph.min_goods).all()
    # Everything the recommenders see predates T.
    assert es.train.save_time.data.max() <= es.train.split_time
    data, _, _ = es.graph
    assert int(data["good"].created_at.max()) <= es.train.split_time
    # Goods created after T are scored softly, and their share is reported.
    assert c["test_saves_new_goods"] > 0 and len(es.soft.rows) == c["soft_scored_saves"]
    assert c["test_saves_all"] >= c["test_saves_candidates"] + c["test_saves_new_goods"]


def test_oracle_beats_random_and_baselines_fall_between(demo_url: str) -> None:
    es = load_database(demo_url, CFG)
    rows = _baselines() + [Recommender("oracle", "planted truth", oracle(es.truth), "reference")]
    result = evaluate(es, rows, ks=(5, 10, 20))
    recall = {r.name: r.metrics["recall@20"] for r in result.rows}
    assert not any(r.error for r in result.rows)
    assert recall["oracle"] > 5 * recall["random"] + 0.05
    for name in ("popularity", "mean_clip", "multi_interest", "item_knn", "svd"):
        assert recall["random"] < recall[name] < recall["oracle"], (name, recall)
    # Every list is full, so every user gets the promised 5 picks.
    assert all(r.metrics["users_with_5_picks"] == 1.0 for r in result.rows)


def test_changing_saves_after_T_moves_nothing_but_the_test_set(demo_url: str) -> None:
    before = load_database(demo_url, CFG)
    T = int(before.train.split_time)
    split_at = f"{np.datetime64(T, 's')}"
    cfg = dataclasses.replace(CFG, evaluate=dataclasses.replace(CFG.evaluate, split_at=split_at))
    before = load_database(demo_url, cfg)
    with db.connect(demo_url) as conn:
        # Move, redirect and delete saves after T; add one for every evaluated user.
        conn.execute(
            "UPDATE saves SET good_id = good_id %% 500 + 1 WHERE saved_at > to_timestamp(%s) AND user_id %% 3 = 0",
            (T,),
        )
        conn.execute("DELETE FROM saves WHERE saved_at > to_timestamp(%s) AND user_id %% 3 = 1", (T,))
        conn.execute(
            "INSERT INTO saves (user_id, good_id, saved_at) SELECT user_id, max(good_id), "
            "to_timestamp(%s) + interval '1 hour' FROM saves GROUP BY user_id",
            (T,),
        )
        conn.commit()
    after = load_database(demo_url, cfg)
    test_keys = ("test_saves_all", "test_saves_candidates", "test_saves_new_goods", "test_saves_resaved")
    assert [before.counts[k] for k in test_keys] != [after.counts[k] for k in test_keys]
    for a, b in [(before.train.saves, after.train.saves), (before.train.save_time, after.train.save_time)]:
        assert (a != b).nnz == 0
    np.testing.assert_array_equal(before.train.content, after.train.content)
    users = np.intersect1d(before.users, after.users)
    assert len(users) > 10
    models = [(r.name, r.fit(before.train), r.fit(after.train)) for r in _baselines()]
    models.append(
        (
            "pinsage",
            graph_model("pinsage", before.graph, TINY_TRAIN).fit(before.train),
            graph_model("pinsage", after.graph, TINY_TRAIN).fit(after.train),
        )
    )
    for name, fa, fb in models:
        pa = topk(fa, users, 20, exclude=before.train.saves)
        pb = topk(fb, users, 20, exclude=after.train.saves)
        np.testing.assert_array_equal(pa, pb, err_msg=name)


def test_split_time_from_a_share_or_a_date() -> None:
    from evaluation.split import split_time

    times = np.arange(1, 11) * 100
    assert split_time(times, "", 0.2) == 800  # the saves at 900 and 1000 are the newest 20%
    assert split_time(times, "", 0.05) == 900  # at least one save is held out
    assert split_time(times, "1970-01-01T00:05:00", 0.5) == 300
    with pytest.raises(ValueError, match="not an ISO date"):
        split_time(times, "last tuesday")
    with pytest.raises(ValueError, match="test_share"):
        split_time(times, "", 1.5)
