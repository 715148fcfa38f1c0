"""Damaging a file the way a bad disk or a partial copy does, and what every such test then checks: the daily
job refuses the file by name, the picks served so far stay, and the failed run is recorded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from graphrec.app.cli import cli
from graphrec.core import db, runs


def flip_middle(path: Path, n_bytes: int) -> None:
    """Invert `n_bytes` bytes in the middle of `path`, in place (the file keeps its size)."""
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + n_bytes] = bytes(b ^ 0xFF for b in raw[middle : middle + n_bytes])
    path.write_bytes(bytes(raw))


def recommend_refuses(runner: CliRunner, args: Sequence[str], url: str, name: str) -> list[Any]:
    """Run `graphrec recommend` and check it fails naming `name` ("<name>: SHA-256 does not match"), leaves
    the current run served and records exactly one failed run naming it; returns that run's rows."""
    with db.connect(url) as conn:
        current_before = runs.current_run(conn)
    result = runner.invoke(cli, [*args, "recommend"])
    assert result.exit_code != 0
    assert f"{name}: SHA-256 does not match" in result.output
    with db.connect(url) as conn:
        current_after = runs.current_run(conn)
        failed = conn.execute("SELECT error, metrics FROM graphrec_runs WHERE status = 'failed'").fetchall()
    assert current_before is not None and current_after is not None and current_after.id == current_before.id
    assert len(failed) == 1 and name in failed[0]["error"]
    return failed
