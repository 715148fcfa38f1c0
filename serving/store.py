"""Serving's SQL: the rows the picks need, the job lock, and the atomic write-back of a run's picks.

Write-back: a run's picks are COPYed into a session-private staging table, then one transaction inserts them
into graphrec_picks, records the run as succeeded and points graphrec_current at it. Until that commit a
reader sees the previous run's picks; after it, the new run's; never a mix and never nothing. A run that dies
before the commit leaves no row behind: its id comes from the sequence, its run row is written with its
picks, and the staging table vanishes with its session.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from graphrec.core import artifacts as art
from graphrec.core import db
from serving.picks import PickRows
from serving.reasons import Labels
from serving.rows import ServingRows

log = logging.getLogger(__name__)

# Connections from graphrec.core.db.connect, whose rows are dicts.
Conn = psycopg.Connection[Any]

# Advisory lock keys, one per job kind; any fixed numbers shared by every graphrec process.
LOCK_KEYS = {"recommend": 7_350_101, "retrain": 7_350_102}


class JobLocked(RuntimeError):
    """Another process holds this job's lock."""


@contextmanager
def job_lock(url: str, job: str) -> Iterator[Conn]:
    """A connection (autocommit) holding the job's advisory lock for the whole `with` block.

    Raises JobLocked at once if another session holds it. The lock is a session lock: a killed process
    drops its connection and PostgreSQL releases the lock with it.
    """
    conn: Conn = db.connect(url, autocommit=True)
    try:
        row = conn.execute("SELECT pg_try_advisory_lock(%(k)s) AS ok", {"k": LOCK_KEYS[job]}).fetchone()
        if not row or not row["ok"]:
            holder = conn.execute(
                "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.objid = %(k)s AND l.granted",
                {"k": LOCK_KEYS[job] & 0xFFFFFFFF},
            ).fetchone()
            who = f" (backend pid {holder['pid']}, {holder['application_name'] or 'no name'})" if holder else ""
            raise JobLocked(f"another graphrec {job} is running{who}; this one exits without doing anything")
        yield conn
    finally:
        conn.close()


def set_activity(conn: Conn, text: str) -> None:
    """Shown in pg_stat_activity.application_name, so an operator sees what a run is doing."""
    conn.execute("SELECT set_config('application_name', %(t)s, false)", {"t": text[:63]})


# --- reading --------------------------------------------------------------------------------------------


def _copy_int64(conn: Conn, query: str, ncols: int, params: dict[str, Any] | None = None) -> np.ndarray:
    """Run `query` (every column bigint NOT NULL) through binary COPY; int64 [rows, ncols]."""
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", params) as copy:
        buf = b"".join(bytes(chunk) for chunk in copy)
    # Header: 11-byte signature, int32 flags, int32 extension length (+ extension); trailer: int16 -1.
    (ext,) = struct.unpack(">i", buf[15:19])
    body = buf[19 + ext : -2]
    fields = [("n", ">i2")] + [x for i in range(ncols) for x in ((f"l{i}", ">i4"), (f"v{i}", ">i8"))]
    rec = np.frombuffer(body, dtype=np.dtype(fields))
    if len(rec) and (np.any(rec["n"] != ncols) or any(np.any(rec[f"l{i}"] != 8) for i in range(ncols))):
        raise ValueError(f"unexpected row layout from: {query}")
    return (
        np.stack([rec[f"v{i}"].astype(np.int64) for i in range(ncols)], axis=1)
        if len(rec)
        else np.zeros((0, ncols), np.int64)
    )


def read_rows(
    conn: Conn, repeat_days: int, user_ids: Sequence[int] | None = None, recent_days: int = 60
) -> ServingRows:
    """Everything the picks need from the database, read in one consistent snapshot.

    With `user_ids`, only those users' saves, collections and recent picks are read (plus everyone's saves
    of the last `recent_days` days, which the fallbacks need): the on-demand path for one user.
    """
    one = user_ids is not None
    p = {"days": repeat_days, "users": list(user_ids or []), "recent": recent_days}
    user_filter = "AND {col} = ANY(%(users)s)" if one else ""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        now = conn.execute("SELECT extract(epoch FROM now())::bigint AS t").fetchone()
        domains = conn.execute(
            "SELECT DISTINCT domain FROM goods WHERE deleted_at IS NULL AND domain IS NOT NULL ORDER BY domain"
        ).fetchall()
        goods = _copy_int64(
            conn,
            "SELECT g.id::bigint, coalesce(d.code, -1)::bigint FROM goods g LEFT JOIN ("
            "  SELECT domain, row_number() OVER (ORDER BY domain) - 1 AS code FROM ("
            "    SELECT DISTINCT domain FROM goods WHERE deleted_at IS NULL AND domain IS NOT NULL) x"
            ") d ON d.domain = g.domain WHERE g.deleted_at IS NULL ORDER BY g.id",
            2,
        )
        users = _copy_int64(conn, "SELECT id::bigint FROM users ORDER BY id", 1)
        saves = _copy_int64(
            conn,
            "SELECT user_id::bigint, good_id::bigint, extract(epoch FROM saved_at)::bigint FROM saves"
            + (
                " WHERE user_id = ANY(%(users)s) OR saved_at >= now() - make_interval(days => %(recent)s)"
                if one
                else ""
            ),
            3,
            p,
        )
        owned = _copy_int64(
            conn,
            "SELECT c.owner_id::bigint, cg.collection_id::bigint, cg.good_id::bigint "
            "FROM collection_goods cg "
            "JOIN collections c ON c.id = cg.collection_id WHERE true "
            + user_filter.format(col="c.owner_id")
            + " ORDER BY cg.added_at, cg.collection_id",
            3,
            p,
        )
        follows = _copy_int64(
            conn,
            "SELECT follower_id::bigint, followee_id::bigint FROM follows WHERE true "
            + user_filter.format(col="follower_id"),
            2,
            p,
        )
        picked = _copy_int64(
            conn,
            "SELECT p.user_id, p.good_id FROM graphrec_picks p JOIN graphrec_runs r ON r.id = p.run_id "
            "WHERE r.kind = 'recommend' AND r.status = 'succeeded' "
            "AND r.started_at >= now() - make_interval(days => %(days)s) " + user_filter.format(col="p.user_id"),
            2,
            p,
        )
    user_id = np.unique(np.concatenate([users[:, 0], saves[:, 0]]))  # a saver missing from users still counts
    return ServingRows(
        user_id=user_id,
        good_id=goods[:, 0],
        good_domain=goods[:, 1],
        domain_names=np.array([r["domain"] for r in domains], dtype=str),
        save_user=saves[:, 0],
        save_good=saves[:, 1],
        save_time=saves[:, 2],
        owned_user=owned[:, 0],
        owned_collection=owned[:, 1],
        owned_good=owned[:, 2],
        follower=follows[:, 0],
        followee=follows[:, 1],
        picked_user=picked[:, 0],
        picked_good=picked[:, 1],
        now=int(now["t"]) if now else int(time.time()),
    )


def read_labels(conn: Conn, good_ids: np.ndarray, collection_ids: np.ndarray, user_ids: np.ndarray) -> Labels:
    """Titles and names the reasons' words need."""
    goods = conn.execute("SELECT id, title FROM goods WHERE id = ANY(%(ids)s)", {"ids": good_ids.tolist()}).fetchall()
    colls = conn.execute(
        "SELECT id, title FROM collections WHERE id = ANY(%(ids)s)", {"ids": collection_ids.tolist()}
    ).fetchall()
    users = conn.execute("SELECT id, name FROM users WHERE id = ANY(%(ids)s)", {"ids": user_ids.tolist()}).fetchall()
    return Labels(
        good_titles={r["id"]: r["title"] for r in goods},
        collection_titles={r["id"]: r["title"] for r in colls},
        user_names={r["id"]: r["name"] for r in users},
    )


# --- runs and write-back --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
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


def new_run_id(conn: Conn) -> int:
    """A fresh run id. No row yet: the run row is written when the run ends (see the module docstring)."""
    row = conn.execute("SELECT nextval(pg_get_serial_sequence('graphrec_runs', 'id')) AS id").fetchone()
    assert row is not None
    return int(row["id"])


_STAGING = "graphrec_picks_staging"
_COLUMNS = ("user_id", "rank", "good_id", "score", "reason", "reason_detail", "is_fallback")


def stage_picks(conn: Conn, picks: PickRows) -> None:
    """COPY the picks into this session's staging table (invisible to everyone else)."""
    conn.execute(f"DROP TABLE IF EXISTS pg_temp.{_STAGING}")
    conn.execute(
        f"CREATE TEMP TABLE {_STAGING} (user_id bigint NOT NULL, rank integer NOT NULL, "
        "good_id bigint NOT NULL, score real NOT NULL, reason text NOT NULL, reason_detail jsonb NOT NULL, "
        "is_fallback boolean NOT NULL)"
    )
    with conn.cursor() as cur, cur.copy(f"COPY {_STAGING} ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
        copy.set_types(["int8", "int4", "int8", "float4", "text", "text", "bool"])
        for row in zip(
            picks.user_id.tolist(),
            picks.rank.tolist(),
            picks.good_id.tolist(),
            picks.score.tolist(),
            picks.reason,
            picks.reason_detail,
            picks.is_fallback.tolist(),
            strict=True,
        ):
            copy.write_row(row)


def publish(
    conn: Conn,
    run_id: int,
    model_version: str,
    started_at: float,
    counts: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    """In one transaction: the staged picks into graphrec_picks, the run row, graphrec_current -> this run."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO graphrec_runs "
            "(id, kind, model_version, started_at, finished_at, status, counts, metrics) "
            "VALUES (%(id)s, 'recommend', %(mv)s, to_timestamp(%(t0)s), now(), 'succeeded', %(c)s, %(m)s)",
            {
                "id": run_id,
                "mv": model_version,
                "t0": started_at,
                "c": json.dumps(counts),
                "m": json.dumps(metrics),
            },
        )
        conn.execute(
            f"INSERT INTO graphrec_picks (run_id, {', '.join(_COLUMNS)}) "
            f"SELECT %(id)s, {', '.join(_COLUMNS)} FROM pg_temp.{_STAGING}",
            {"id": run_id},
        )
        conn.execute("UPDATE graphrec_current SET run_id = %(id)s, switched_at = now()", {"id": run_id})
    conn.execute(f"DROP TABLE IF EXISTS pg_temp.{_STAGING}")


def record_failure(
    url: str,
    run_id: int | None,
    kind: str,
    model_version: str | None,
    started_at: float,
    stage: str,
    error: str,
) -> None:
    """A failed run's row (on a fresh connection: the run's own may be broken). Never touches current."""
    with db.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO graphrec_runs "
            "(id, kind, model_version, started_at, finished_at, status, error, metrics) "
            "VALUES (coalesce(%(id)s, nextval(pg_get_serial_sequence('graphrec_runs', 'id'))), "
            "%(k)s, %(mv)s, "
            "to_timestamp(%(t0)s), now(), 'failed', %(e)s, %(m)s)",
            {
                "id": run_id,
                "k": kind,
                "mv": model_version,
                "t0": started_at,
                "e": error,
                "m": json.dumps({"stage": stage}),
            },
        )


def record_run(
    conn: Conn,
    kind: str,
    model_version: str | None,
    started_at: float,
    status: str,
    counts: dict[str, Any],
    metrics: dict[str, Any],
    error: str | None = None,
) -> int:
    """A finished job's row (retrain and the like, which write no picks)."""
    row = conn.execute(
        "INSERT INTO graphrec_runs "
        "(kind, model_version, started_at, finished_at, status, counts, metrics, error) "
        "VALUES (%(k)s, %(mv)s, to_timestamp(%(t0)s), now(), %(s)s, %(c)s, %(m)s, %(e)s) RETURNING id",
        {
            "k": kind,
            "mv": model_version,
            "t0": started_at,
            "s": status,
            "c": json.dumps(counts),
            "m": json.dumps(metrics, default=str),
            "e": error,
        },
    ).fetchone()
    assert row is not None
    return int(row["id"])


def current_run(conn: Conn) -> RunInfo | None:
    row = conn.execute("SELECT r.* FROM graphrec_current c JOIN graphrec_runs r ON r.id = c.run_id").fetchone()
    return RunInfo(**row, current=True) if row else None


def recommend_runs(conn: Conn) -> list[RunInfo]:
    """Recommend runs, newest first, marking the current one."""
    rows = conn.execute(
        "SELECT r.*, (r.id = c.run_id) IS TRUE AS current FROM graphrec_runs r CROSS JOIN graphrec_current c "
        "WHERE r.kind = 'recommend' ORDER BY r.id DESC"
    ).fetchall()
    return [RunInfo(**r) for r in rows]


def rollback(conn: Conn, run_id: int | None = None) -> tuple[int | None, int]:
    """Point graphrec_current at `run_id`, or at the newest succeeded run older than the current one.
    Returns (previous run id, new run id)."""
    with conn.transaction():
        cur = conn.execute("SELECT run_id FROM graphrec_current FOR UPDATE").fetchone()
        previous = cur["run_id"] if cur else None
        if run_id is None:
            row = conn.execute(
                "SELECT id FROM graphrec_runs r WHERE kind = 'recommend' AND status = 'succeeded' "
                "AND id < coalesce(%(cur)s, 9223372036854775807) "
                "AND EXISTS (SELECT 1 FROM graphrec_picks p WHERE p.run_id = r.id) ORDER BY id DESC LIMIT 1",
                {"cur": previous},
            ).fetchone()
            if not row:
                raise LookupError(f"no earlier recommend run with picks to roll back to (current: {previous})")
            run_id = int(row["id"])
        else:
            row = conn.execute(
                "SELECT status, kind, "
                "EXISTS (SELECT 1 FROM graphrec_picks p WHERE p.run_id = r.id) AS has_picks "
                "FROM graphrec_runs r WHERE id = %(id)s",
                {"id": run_id},
            ).fetchone()
            if not row or row["kind"] != "recommend" or row["status"] != "succeeded" or not row["has_picks"]:
                why = (
                    "does not exist"
                    if not row
                    else f"is a {row['status']} {row['kind']} run"
                    + ("" if row["has_picks"] else " whose picks are gone")
                )
                raise LookupError(f"cannot roll back to run {run_id}: it {why}")
        conn.execute("UPDATE graphrec_current SET run_id = %(id)s, switched_at = now()", {"id": run_id})
    return previous, run_id


def replace_user_picks(conn: Conn, picks: PickRows, user_id: int) -> int:
    """Swap one user's picks inside the current run, in one transaction. Returns the run id."""
    with conn.transaction():
        cur = conn.execute("SELECT run_id FROM graphrec_current FOR SHARE").fetchone()
        if not cur or cur["run_id"] is None:
            raise LookupError("no current run: run `graphrec recommend` first")
        run_id = int(cur["run_id"])
        conn.execute("DELETE FROM graphrec_picks WHERE run_id = %(r)s AND user_id = %(u)s", {"r": run_id, "u": user_id})
        with (
            conn.cursor() as c,
            c.copy(f"COPY graphrec_picks (run_id, {', '.join(_COLUMNS)}) FROM STDIN") as copy,
        ):
            copy.set_types(["int8", "int8", "int4", "int8", "float4", "text", "text", "bool"])
            for i in range(len(picks)):
                copy.write_row(
                    (
                        run_id,
                        int(picks.user_id[i]),
                        int(picks.rank[i]),
                        int(picks.good_id[i]),
                        float(picks.score[i]),
                        picks.reason[i],
                        picks.reason_detail[i],
                        bool(picks.is_fallback[i]),
                    )
                )
    return run_id


def prune(conn: Conn, artifacts: Path, keep_runs: int, repeat_days: int) -> list[int]:
    """Delete recommend runs (and their picks and embeddings files) that are not current, not among the
    newest `keep_runs` succeeded runs, and older than `repeat_days` (the repeat filter still reads those)."""
    with conn.transaction():
        rows = conn.execute(
            "DELETE FROM graphrec_runs r WHERE kind = 'recommend' "
            "AND id IS DISTINCT FROM (SELECT run_id FROM graphrec_current) "
            "AND started_at < now() - make_interval(days => %(days)s) "
            "AND id NOT IN (SELECT id FROM graphrec_runs WHERE kind = 'recommend' AND status = 'succeeded' "
            "               ORDER BY id DESC LIMIT %(keep)s) RETURNING id",
            {"days": repeat_days, "keep": keep_runs},
        ).fetchall()
        kept = {
            r["id"]
            for r in conn.execute(
                "SELECT id FROM graphrec_runs WHERE kind = 'recommend' AND status = 'succeeded'"
            ).fetchall()
        }
    # Embeddings of pruned runs, and of runs that died before writing their row.
    runs_dir = art.run_embeddings_path(artifacts, 0).parent.parent
    if runs_dir.is_dir():
        for d in runs_dir.iterdir():
            if d.is_dir() and d.name.isdigit() and int(d.name) not in kept:
                shutil.rmtree(d, ignore_errors=True)
    return [r["id"] for r in rows]


def for_you(conn: Conn, user_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The app's read: the current run's picks for one user (the SQL function for_you)."""
    return conn.execute("SELECT * FROM for_you(%(u)s, %(n)s)", {"u": user_id, "n": limit}).fetchall()
