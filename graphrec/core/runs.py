"""The jobs' lock and ledger: one advisory lock per job kind, one row per run in graphrec_runs, and `job()`,
the scaffold every scheduled job runs in (hold the lock, record a failure naming its stage, alert).

A run's row is written when the run ends, never while it runs: a job killed half way leaves no row behind
(the recommend job writes its row in the same transaction as its picks, see serving.store).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphrec.core import alerts, db
from graphrec.core.sql import load_queries
from graphrec.core.stages import Stages

log = logging.getLogger(__name__)

Q = load_queries("graphrec.core", "queries.sql")

# Advisory lock keys, one per job kind; any fixed numbers shared by every graphrec process.
LOCK_KEYS = {"recommend": 7_350_101, "retrain": 7_350_102}


class JobLocked(RuntimeError):
    """Another process holds this job's lock."""


@contextmanager
def job_lock(url: str, kind: str) -> Iterator[db.Connection]:
    """A connection (autocommit) holding the `kind` job's advisory lock for the whole `with` block.

    Raises JobLocked at once if another session holds it. The lock is a session lock: a killed process
    drops its connection and PostgreSQL releases the lock with it.
    """
    key = LOCK_KEYS[kind]
    conn = db.connect(url, autocommit=True)
    locked = False
    try:
        row = conn.execute(Q["try_lock"], {"key": key}).fetchone()
        locked = bool(row and row["ok"])
        if not locked:
            holder = conn.execute(Q["lock_holder"], {"objid": key & 0xFFFFFFFF}).fetchone()
            who = f" (backend pid {holder['pid']}, {holder['application_name'] or 'no name'})" if holder else ""
            raise JobLocked(f"another graphrec {kind} is running{who}; this one exits without doing anything")
        yield conn
    finally:
        # Unlock before closing: the server ends a closed session asynchronously, and until its backend
        # exits the lock is still held, so a job started right after this one would be refused.
        if locked and not conn.closed:
            try:
                conn.execute(Q["unlock"], {"key": key})
            except Exception:  # a broken connection: closing it releases the lock anyway
                log.warning("could not unlock the %s job lock; it goes with its session", kind, exc_info=True)
        conn.close()


def set_activity(conn: db.Connection, text: str) -> None:
    """Shown in pg_stat_activity.application_name, so an operator sees what a run is doing."""
    conn.execute(Q["set_activity"], {"text": text[:63]})


# --- the ledger ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """One row of graphrec_runs."""

    id: int
    kind: str
    model_version: str | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, Any]
    metrics: dict[str, Any]
    error: str | None
    current: bool = False


def new_run_id(conn: db.Connection) -> int:
    """A fresh run id. No row yet: the run row is written when the run ends."""
    row = conn.execute(Q["new_run_id"]).fetchone()
    assert row is not None
    return int(row["id"])


def record_run(
    conn: db.Connection,
    kind: str,
    model_version: str | None,
    started_at: float,
    status: str,
    counts: dict[str, Any],
    metrics: dict[str, Any],
    error: str | None = None,
    run_id: int | None = None,
) -> int:
    """A finished run's row (`started_at` in unix seconds, finished now); `run_id` None takes a new id.
    Returns the run id. Runs in the caller's transaction, so a caller can make it atomic with other writes."""
    row = conn.execute(
        Q["record_run"],
        {
            "id": run_id,
            "kind": kind,
            "model_version": model_version,
            "started_at": started_at,
            "status": status,
            "counts": json.dumps(counts),
            "metrics": json.dumps(metrics, default=str),
            "error": error,
        },
    ).fetchone()
    assert row is not None
    return int(row["id"])


def record_failure(
    url: str,
    run_id: int | None,
    kind: str,
    model_version: str | None,
    started_at: float,
    stage: str,
    error: str,
) -> None:
    """A failed run's row, naming the stage it failed at (on a fresh connection: the run's own may be
    broken). Never touches graphrec_current."""
    with db.connect(url, autocommit=True) as conn:
        record_run(conn, kind, model_version, started_at, "failed", {}, {"stage": stage}, error=error, run_id=run_id)


def current_run(conn: db.Connection) -> RunInfo | None:
    """The run whose picks the app serves (graphrec_current), or None before the first one."""
    row = conn.execute(Q["current_run"]).fetchone()
    return RunInfo(**row, current=True) if row else None


def list_runs(conn: db.Connection, kind: str) -> list[RunInfo]:
    """Runs of `kind`, newest first, the current one marked."""
    return [RunInfo(**r) for r in conn.execute(Q["list_runs"], {"kind": kind}).fetchall()]


# --- the job scaffold ----------------------------------------------------------------------------------


@dataclass
class Job:
    """A job inside `job()`: its lock-holding connection and stage timer, and what a failure row would say.

    The job sets `run_id` and `model_version` as it learns them (a failure is recorded with them), and
    `summary`, the alert text sent once it has finished and let go of the lock.
    """

    kind: str
    conn: db.Connection
    stages: Stages
    started: float  # unix seconds
    run_id: int | None = None
    model_version: str | None = None
    summary: str | None = None

    def succeed(self, model_version: str | None, counts: dict[str, Any], metrics: dict[str, Any]) -> int:
        """Record this run as succeeded (for jobs whose row is not written with their output). Returns its id."""
        return record_run(self.conn, self.kind, model_version, self.started, "succeeded", counts, metrics)


@contextmanager
def job(url: str, kind: str, stages: Stages | None = None) -> Iterator[Job]:
    """Run the block as the `kind` job: holding its lock (JobLocked, raised at once, is the only error not
    recorded), timed by `stages`. An exception inside is logged, recorded as a failed run naming the stage
    that was running, alerted, and raised again. After a clean exit, `Job.summary` (if set) is alerted."""
    stages = stages if stages is not None else Stages()
    started = time.time()
    current: Job | None = None
    try:
        with job_lock(url, kind) as conn:
            current = Job(kind=kind, conn=conn, stages=stages, started=started)
            yield current
    except JobLocked:
        raise
    except BaseException as e:
        run_id = current.run_id if current else None
        log.exception("%s failed at stage %s", kind, stages.current, extra={"stage": stages.current, "run_id": run_id})
        try:
            record_failure(
                url,
                run_id,
                kind,
                current.model_version if current else None,
                started,
                stages.current,
                f"{type(e).__name__}: {e}",
            )
        except Exception:  # the database may be what failed
            log.exception("could not record the failed run")
        alerts.notify_failure(kind, stages.current, e, run_id)
        raise
    if current is not None and current.summary:
        alerts.notify_summary(current.summary)
