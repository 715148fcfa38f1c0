"""Helpers shared by the benchmarks: a fresh database, and commands timed with their peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graphrec.core import db  # noqa: E402
from graphrec.core.config import load_config  # noqa: E402


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database on $GRAPHREC_DATABASE_URL's server or the embedded one, dropped afterwards."""
    admin = os.environ.get("GRAPHREC_DATABASE_URL") or db.embedded_server_url(load_config().database.embedded_dir)
    name = f"graphrec_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**info)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_measured(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run a command in a child process: (wall seconds, peak RSS in MB of that child, its stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    # wait4 (not Popen.wait) so the peak RSS is this child's alone.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed with exit code {proc.returncode}:\n{out}")
    return wall, usage.ru_maxrss / 1024, out


def graphrec(*args: str) -> list[str]:
    return [str(ROOT / ".venv" / "bin" / "graphrec"), *args]


def report(figures: dict[str, float | int | str]) -> None:
    """The benchmark's last lines: one `key: value` per figure."""
    for key, value in figures.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")


__all__ = ["fresh_database", "run_measured", "graphrec", "report", "ROOT"]
