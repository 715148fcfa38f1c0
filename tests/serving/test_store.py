"""Write-back against a real PostgreSQL: the atomic swap seen by a polling reader, rollback, pruning and the
one-user rescore (the job lock's own test is in tests/core/test_runs.py)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from world import NEW_USER, World, for_you_all

from graphrec.core import db, runs
from graphrec.core.artifacts import run_embeddings_path
from graphrec.core.config import RecommendConfig
from serving import picks as P
from serving import reads, store

USERS = list(range(1, 21)) + [NEW_USER]
CFG = RecommendConfig(picks_per_user=10)


def _daily(world: World, artifacts: Path | None = None) -> int:
    """One recommend run's write-back (what the pipeline does after the model), returning its run id."""
    with runs.job_lock(world.url, "recommend") as conn:
        rows = reads.read_rows(conn, CFG.repeat_days)
        p = P.make_picks(world.emb, rows, CFG, min_goods=10)
        pr = P.to_rows(p, rows, reads.read_labels(conn, *P.label_ids(p, rows)), CFG)
        run_id = runs.new_run_id(conn)
        if artifacts is not None:
            world.emb.save(run_embeddings_path(artifacts, run_id))
        store.stage_picks(conn, pr)
        store.publish(conn, run_id, "v-test", time.time(), p.counts(CFG.min_picks, rows.num_goods), {})
        if artifacts is not None:
            store.prune(conn, artifacts, keep_runs=1, repeat_days=0)
    return run_id


def test_reader_never_sees_a_mix_or_an_empty_feed(world: World) -> None:
    first = _daily(world)
    seen: list[tuple[set[int], dict[int, int]]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            with db.connect(world.url, autocommit=True) as conn:
                while not stop.is_set():
                    rows = for_you_all(conn, USERS)
                    per_user: dict[int, int] = {}
                    for r in rows:
                        per_user[r["user_id"]] = per_user.get(r["user_id"], 0) + 1
                    seen.append(({r["run_id"] for r in rows}, per_user))
        except BaseException as e:  # surfaced in the main thread
            errors.append(e)

    reader = threading.Thread(target=poll)
    reader.start()
    runs = [first] + [_daily(world) for _ in range(3)]
    time.sleep(0.2)
    stop.set()
    reader.join()
    assert not errors
    assert len(seen) > 3
    for run_ids, per_user in seen:
        assert len(run_ids) == 1, f"a mix of runs {run_ids}"
        assert set(per_user) == set(USERS), "every user has picks in every read"
        assert all(n == 10 for n in per_user.values())
    observed = [next(iter(r)) for r, _ in seen]
    assert observed == sorted(observed), "runs only move forward"
    assert observed[0] in runs and observed[-1] == runs[-1]


def test_rollback_and_back(world: World) -> None:
    a, b = _daily(world), _daily(world)
    with db.connect(world.url, autocommit=True) as conn:
        picks_b = [r["good_id"] for r in reads.for_you(conn, 1)]
        assert store.rollback(conn) == (b, a)
        feed = reads.for_you(conn, 1)
        assert {r["run_id"] for r in feed} == {a} and [r["good_id"] for r in feed] != picks_b
        assert store.rollback(conn, b) == (a, b)
        assert [r["good_id"] for r in reads.for_you(conn, 1)] == picks_b
        with pytest.raises(LookupError, match="does not exist"):
            store.rollback(conn, 999)
        store.rollback(conn, a)
        with pytest.raises(LookupError, match="no earlier recommend run"):
            store.rollback(conn)


def test_prune_keeps_current_and_newest(world: World, artifacts: Path) -> None:
    runs = [_daily(world, artifacts) for _ in range(3)]
    with db.connect(world.url, autocommit=True) as conn:
        left = [r["id"] for r in conn.execute("SELECT id FROM graphrec_runs ORDER BY id").fetchall()]
        assert left == runs[-1:]
        assert conn.execute("SELECT count(DISTINCT run_id) AS n FROM graphrec_picks").fetchone()["n"] == 1
    assert sorted(p.name for p in (artifacts / "runs").iterdir()) == [str(runs[-1])]


def test_rescore_one_user_replaces_only_their_picks(world: World) -> None:
    run_id = _daily(world)
    with db.connect(world.url, autocommit=True) as conn:
        before_other = reads.for_you(conn, 2)
        before = {r["good_id"] for r in reads.for_you(conn, 1)}
        rows = reads.read_rows(conn, CFG.repeat_days, user_ids=[1])
        p = P.make_picks(world.emb, rows, CFG, 10, users=rows.user_idx(np.array([1])))
        pr = P.to_rows(p, rows, reads.read_labels(conn, *P.label_ids(p, rows)), CFG)
        assert store.replace_user_picks(conn, pr, 1) == run_id
        feed = reads.for_you(conn, 1)
        assert [r["good_id"] for r in feed] == pr.good_id.tolist()
        # The repeat filter saw today's picks, so the rescored feed is all new; other users are untouched.
        assert not before & {r["good_id"] for r in feed} and len(feed) == 10
        assert reads.for_you(conn, 2) == before_other


def test_for_you_seeks_the_index_on_run_and_user(world: World) -> None:
    _daily(world)
    _daily(world)
    with db.connect(world.url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")  # tiny tables: ask whether the index can serve it
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute("EXPLAIN SELECT * FROM for_you(1, 20)").fetchall())
    assert "graphrec_picks_pkey" in plan
    # Both key columns in the index condition: one seek, not a scan over every stored run's picks.
    assert re.search(r"Index Cond: \(\(run_id = .*\) AND \(user_id = '1'::bigint\)\)", plan), plan
