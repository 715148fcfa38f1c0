"""A job lock let go is free at once: the next job, started right after, always gets it (CI once saw
JobLocked there, because closing a session releases its advisory locks only when its backend exits)."""

from __future__ import annotations

from graphrec.core import db, runs


def _holders(conn: db.Connection, kind: str) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted",
        (runs.LOCK_KEYS[kind] & 0xFFFFFFFF,),
    ).fetchone()
    return int(row["n"]) if row else 0


def test_a_released_lock_can_be_taken_again_at_once_many_times(migrated_url: str) -> None:
    with db.connect(migrated_url, autocommit=True) as observer:
        for _ in range(200):
            with runs.job_lock(migrated_url, "recommend"):
                assert _holders(observer, "recommend") == 1
            assert _holders(observer, "recommend") == 0  # gone the moment the block ends, not later


def test_the_lock_is_released_when_the_job_fails(migrated_url: str) -> None:
    with db.connect(migrated_url, autocommit=True) as observer:
        for _ in range(20):
            try:
                with runs.job_lock(migrated_url, "retrain"):
                    raise RuntimeError("the job failed")
            except RuntimeError:
                pass
            assert _holders(observer, "retrain") == 0
