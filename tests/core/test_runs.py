"""The job lock, the run ledger and the job() scaffold against a real PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from graphrec.core import db, runs
from graphrec.core.stages import Stages


@pytest.fixture
def alerts_sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """What the job scaffold would send to Telegram, captured instead of sent."""
    sent: list[tuple[str, ...]] = []
    monkeypatch.setattr(
        runs.alerts, "notify_failure", lambda job, stage, e, run_id=None: sent.append(("failure", job, stage, str(e)))
    )
    monkeypatch.setattr(runs.alerts, "notify_summary", lambda text: sent.append(("summary", text)))
    return sent


def _runs(url: str) -> list[dict]:
    with db.connect(url) as conn:
        return conn.execute("SELECT * FROM graphrec_runs ORDER BY id").fetchall()


def test_second_run_is_refused_while_the_lock_is_held(migrated_url: str) -> None:
    with runs.job_lock(migrated_url, "recommend") as conn:
        runs.set_activity(conn, "graphrec recommend run 7")
        with pytest.raises(runs.JobLocked, match=r"another graphrec recommend is running \(backend pid \d+, graphrec"):
            with runs.job_lock(migrated_url, "recommend"):
                pass
        with runs.job_lock(migrated_url, "retrain"):  # other jobs have their own lock
            pass
    with runs.job_lock(migrated_url, "recommend"):  # released with its session
        pass


def test_record_run_and_failure_share_one_row_shape(migrated_url: str) -> None:
    t0 = time.time() - 60
    with db.connect(migrated_url, autocommit=True) as conn:
        reserved = runs.new_run_id(conn)
        ok = runs.record_run(
            conn, "evaluate", None, t0, "succeeded", {"users": 3}, {"recall@20": 0.5, "report": Path("r/x")}
        )
    runs.record_failure(migrated_url, reserved, "recommend", "v1", t0, "retrieve", "ValueError: bad")
    rows = {r["id"]: r for r in _runs(migrated_url)}
    assert ok != reserved and set(rows) == {ok, reserved}
    assert rows[ok]["status"] == "succeeded" and rows[ok]["counts"] == {"users": 3}
    assert rows[ok]["metrics"]["recall@20"] == 0.5 and rows[ok]["metrics"]["report"] == "r/x"
    failed = rows[reserved]
    assert (failed["kind"], failed["status"], failed["model_version"]) == ("recommend", "failed", "v1")
    assert failed["metrics"] == {"stage": "retrieve"} and failed["error"] == "ValueError: bad"
    assert abs(failed["started_at"].timestamp() - t0) < 1 and failed["finished_at"] > failed["started_at"]


def test_current_run_and_listing(migrated_url: str) -> None:
    with db.connect(migrated_url, autocommit=True) as conn:
        assert runs.current_run(conn) is None and runs.list_runs(conn, "recommend") == []
        a = runs.record_run(conn, "recommend", "v1", time.time(), "succeeded", {}, {})
        b = runs.record_run(conn, "recommend", "v2", time.time(), "succeeded", {}, {})
        runs.record_run(conn, "retrain", "v2", time.time(), "succeeded", {}, {})
        conn.execute("UPDATE graphrec_current SET run_id = %s", (a,))
        current = runs.current_run(conn)
        listed = runs.list_runs(conn, "recommend")
    assert current is not None and (current.id, current.model_version, current.current) == (a, "v1", True)
    assert [(r.id, r.current) for r in listed] == [(b, False), (a, True)]


def test_job_records_a_failure_at_its_stage_and_alerts(migrated_url: str, alerts_sent: list) -> None:
    stages = Stages()
    with pytest.raises(RuntimeError, match="boom"):
        with runs.job(migrated_url, "recommend", stages) as job:
            job.run_id = runs.new_run_id(job.conn)
            job.model_version = "v-test"
            with stages.stage("retrieve"):
                raise RuntimeError("boom")
    (row,) = _runs(migrated_url)
    assert (row["id"], row["status"], row["model_version"]) == (job.run_id, "failed", "v-test")
    assert row["metrics"] == {"stage": "retrieve"} and row["error"] == "RuntimeError: boom"
    assert alerts_sent == [("failure", "recommend", "retrieve", "boom")]
    with runs.job_lock(migrated_url, "recommend"):  # the failed job let go of its lock
        pass


def test_job_succeeds_records_and_sends_its_summary_after_the_lock(migrated_url: str, alerts_sent: list) -> None:
    with runs.job(migrated_url, "retrain") as job:
        run_id = job.succeed("v2", {"promoted": 1}, {"reason": "better"})
        job.summary = "graphrec retrain ok"
        assert alerts_sent == [], "the summary goes out once the job is done"
    (row,) = _runs(migrated_url)
    assert (row["id"], row["kind"], row["status"], row["counts"]) == (run_id, "retrain", "succeeded", {"promoted": 1})
    assert alerts_sent == [("summary", "graphrec retrain ok")]


def test_a_locked_job_records_nothing_and_alerts_nothing(migrated_url: str, alerts_sent: list) -> None:
    with runs.job_lock(migrated_url, "retrain"):
        with pytest.raises(runs.JobLocked):
            with runs.job(migrated_url, "retrain"):
                raise AssertionError("the body never runs")
    assert _runs(migrated_url) == [] and alerts_sent == []
