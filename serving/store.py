"""The write-back of a run's picks: staging, the atomic publish, rollback, one user's rescore and pruning.

Publish: a run's picks are COPYed into a session-private staging table, then one transaction inserts them
into graphrec_picks, records the run as succeeded and points graphrec_current at it. Until that commit a
reader sees the previous run's picks; after it, the new run's; never a mix and never nothing. A run that dies
before the commit leaves no row behind: its id comes from the sequence, its run row is written with its
picks, and the staging table vanishes with its session.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from graphrec.core import artifacts as art
from graphrec.core import db, runs
from graphrec.core.copy import copy_rows
from graphrec.core.sql import load_queries
from serving.picks import PickRows

Q = load_queries("serving", "queries.sql")

_STAGING = "pg_temp.graphrec_picks_staging"
_COLUMNS = ("user_id", "rank", "good_id", "score", "reason", "reason_detail", "is_fallback")
_TYPES = ("int8", "int4", "int8", "float4", "text", "text", "bool")


def _copy_picks(conn: db.Connection, table: str, picks: PickRows, run_id: int | None = None) -> None:
    """COPY the picks into `table`; with `run_id`, into a table that has a run_id column first."""
    values: list[list[Any]] = [
        picks.user_id.tolist(),
        picks.rank.tolist(),
        picks.good_id.tolist(),
        picks.score.tolist(),
        list(picks.reason),
        list(picks.reason_detail),
        picks.is_fallback.tolist(),
    ]
    if run_id is None:
        copy_rows(conn, table, _COLUMNS, values, _TYPES)
    else:
        copy_rows(conn, table, ("run_id", *_COLUMNS), [[run_id] * len(picks), *values], ("int8", *_TYPES))


def stage_picks(conn: db.Connection, picks: PickRows) -> None:
    """COPY the picks into this session's staging table (invisible to everyone else)."""
    conn.execute(Q["drop_staging"])
    conn.execute(Q["create_staging"])
    _copy_picks(conn, _STAGING, picks)


def publish(
    conn: db.Connection,
    run_id: int,
    model_version: str,
    started_at: float,
    counts: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    """In one transaction: the run row, the staged picks into graphrec_picks, graphrec_current -> this run."""
    with conn.transaction():
        runs.record_run(conn, "recommend", model_version, started_at, "succeeded", counts, metrics, run_id=run_id)
        conn.execute(Q["publish_staged"], {"run": run_id})
        conn.execute(Q["set_current"], {"run": run_id})
    conn.execute(Q["drop_staging"])


def rollback(conn: db.Connection, run_id: int | None = None) -> tuple[int | None, int]:
    """Point graphrec_current at `run_id`, or at the newest succeeded run older than the current one.
    Returns (previous run id, new run id)."""
    with conn.transaction():
        cur = conn.execute(Q["lock_current"]).fetchone()
        previous = cur["run_id"] if cur else None
        if run_id is None:
            row = conn.execute(Q["previous_run"], {"before": previous}).fetchone()
            if not row:
                raise LookupError(f"no earlier recommend run with picks to roll back to (current: {previous})")
            run_id = int(row["id"])
        else:
            row = conn.execute(Q["run_to_serve"], {"run": run_id}).fetchone()
            if not row or row["kind"] != "recommend" or row["status"] != "succeeded" or not row["has_picks"]:
                why = (
                    "does not exist"
                    if not row
                    else f"is a {row['status']} {row['kind']} run"
                    + ("" if row["has_picks"] else " whose picks are gone")
                )
                raise LookupError(f"cannot roll back to run {run_id}: it {why}")
        conn.execute(Q["set_current"], {"run": run_id})
    return previous, run_id


def replace_user_picks(conn: db.Connection, picks: PickRows, user_id: int) -> int:
    """Swap one user's picks inside the current run, in one transaction. Returns the run id."""
    with conn.transaction():
        cur = conn.execute(Q["share_current"]).fetchone()
        if not cur or cur["run_id"] is None:
            raise LookupError("no current run: run `graphrec recommend` first")
        run_id = int(cur["run_id"])
        conn.execute(Q["delete_user_picks"], {"run": run_id, "user": user_id})
        _copy_picks(conn, "graphrec_picks", picks, run_id=run_id)
    return run_id


def prune(conn: db.Connection, artifacts: Path, keep_runs: int, repeat_days: int) -> list[int]:
    """Delete recommend runs (and their picks and embeddings files) that are not current, not among the
    newest `keep_runs` succeeded runs, and older than `repeat_days` (the repeat filter still reads those)."""
    with conn.transaction():
        rows = conn.execute(Q["prune_runs"], {"days": repeat_days, "keep": keep_runs}).fetchall()
        kept = {r["id"] for r in conn.execute(Q["succeeded_runs"]).fetchall()}
    # Embeddings of pruned runs, and of runs that died before writing their row.
    runs_dir = art.run_embeddings_path(artifacts, 0).parent.parent
    if runs_dir.is_dir():
        for d in runs_dir.iterdir():
            if d.is_dir() and d.name.isdigit() and int(d.name) not in kept:
                shutil.rmtree(d, ignore_errors=True)
    return [r["id"] for r in rows]
