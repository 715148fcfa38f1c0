"""The daily job end to end through the CLI: a real `graphrec recommend` subprocess killed with SIGKILL at
several stages, the lock's exit status, rollback and the one-user rescore, on the planted serving world."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from graphrec.app.cli import cli
from graphrec.app.commands.serving_commands import LOCKED_EXIT
from graphrec.app.jobs import compare_validation
from graphrec.core import db, runs
from serving import reads

sys.path.insert(0, str(Path(__file__).parent.parent / "serving"))
from world import NEW_USER, World, build_world, for_you_all  # noqa: E402

USERS = list(range(1, 21)) + [NEW_USER]
GRAPHREC = str(Path(sys.executable).parent / "graphrec")


@pytest.fixture
def setup(migrated_url: str, artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[World, Path]:
    world = build_world(migrated_url)
    emb_file = tmp_path / "emb.npz"
    world.emb.save(emb_file)
    monkeypatch.setenv("GRAPHREC_DATABASE_URL", migrated_url)
    monkeypatch.setenv("GRAPHREC_PATHS__ARTIFACTS", str(artifacts))
    for var in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"):
        monkeypatch.delenv(var, raising=False)
    return world, emb_file


def _start(emb_file: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [GRAPHREC, "recommend", "--embeddings", str(emb_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )


def _state(url: str) -> tuple[list, list, list]:
    """Everything a kill must leave alone: the served feeds, the run rows, all picks."""
    with db.connect(url, autocommit=True) as conn:
        feeds = [(r["user_id"], r["rank"], r["good_id"], r["run_id"]) for r in for_you_all(conn, USERS)]
        runs = conn.execute("SELECT id, status, finished_at FROM graphrec_runs ORDER BY id").fetchall()
        picks = conn.execute("SELECT count(*) AS n, max(run_id) AS r FROM graphrec_picks").fetchall()
    return feeds, runs, picks


def _kill_at(proc: subprocess.Popen, stage: str) -> None:
    """SIGKILL the run as soon as it logs the start of `stage`."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{") and json.loads(line).get("stage") == stage and json.loads(line).get("event") == "start":
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
    raise AssertionError(f"run ended (status {proc.wait()}) without reaching stage {stage}")


def _kill_inside_publish(proc: subprocess.Popen, url: str) -> None:
    """Hold graphrec_current's row lock so the run blocks inside its publish transaction (picks inserted,
    pointer not yet moved), SIGKILL it there, then let go."""
    with psycopg.connect(url) as blocker:
        blocker.execute("SELECT * FROM graphrec_current FOR UPDATE")
        deadline = time.monotonic() + 60
        while True:
            with psycopg.connect(url, autocommit=True) as probe:
                waiting = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name LIKE 'graphrec recommend run %%' "
                    "AND wait_event_type = 'Lock'"
                ).fetchone()
            if waiting and waiting[0]:
                break
            assert proc.poll() is None and time.monotonic() < deadline, "run never blocked in publish"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        blocker.rollback()


def test_sigkill_at_any_stage_leaves_everything_as_it_was(setup: tuple[World, Path], artifacts: Path) -> None:
    world, emb_file = setup
    first = subprocess.run([GRAPHREC, "recommend", "--embeddings", str(emb_file)], capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    before = _state(world.url)
    assert before[0], "the first run serves picks"
    for stage in ("save_embeddings", "retrieve", "render", "stage_copy", "publish"):
        proc = _start(emb_file)
        if stage == "publish":
            _kill_inside_publish(proc, world.url)
        else:
            _kill_at(proc, stage)
        assert proc.returncode == -signal.SIGKILL
        assert _state(world.url) == before, f"a run killed at {stage} changed the database"
    # The next run succeeds (the lock died with the killed sessions) and cleans up the killed runs' files.
    after = subprocess.run([GRAPHREC, "recommend", "--embeddings", str(emb_file)], capture_output=True, text=True)
    assert after.returncode == 0, after.stdout + after.stderr
    feeds, runs, _ = _state(world.url)
    assert {f[3] for f in feeds} == {runs[-1]["id"]} and len(runs) == 2
    assert sorted(p.name for p in (artifacts / "runs").iterdir()) == sorted(str(r["id"]) for r in runs)
    logs = [json.loads(x) for x in after.stdout.splitlines()]  # stdout is JSON lines only
    summary = [x for x in logs if x.get("summary") == "recommend"]
    assert len(summary) == 1 and summary[0]["users_served"] == len(USERS)


def test_second_concurrent_run_exits_at_once_with_its_own_status(setup: tuple[World, Path]) -> None:
    world, emb_file = setup
    with runs.job_lock(world.url, "recommend"):
        result = CliRunner().invoke(cli, ["recommend", "--embeddings", str(emb_file)])
        assert result.exit_code == LOCKED_EXIT
        assert "another graphrec recommend is running" in result.output
        rollback = CliRunner().invoke(cli, ["rollback"])
        assert rollback.exit_code == LOCKED_EXIT
    with db.connect(world.url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM graphrec_runs").fetchone()["n"] == 0


def test_rollback_and_one_user_through_the_cli(setup: tuple[World, Path]) -> None:
    world, emb_file = setup
    runner = CliRunner()
    for _ in range(2):
        assert runner.invoke(cli, ["recommend", "--embeddings", str(emb_file)]).exit_code == 0
    with db.connect(world.url, autocommit=True) as conn:
        runs = [r["id"] for r in conn.execute("SELECT id FROM graphrec_runs ORDER BY id").fetchall()]
        out = runner.invoke(cli, ["rollback"])
        assert out.exit_code == 0 and f"run {runs[0]} is current (was {runs[1]})" in out.output
        assert {r["run_id"] for r in reads.for_you(conn, 1)} == {runs[0]}
        assert runner.invoke(cli, ["rollback", "--run", "12345"]).exit_code == 1

        before = [r["good_id"] for r in reads.for_you(conn, 3)]
        dry = runner.invoke(cli, ["recommend", "--user", "3", "--dry-run"])
        assert dry.exit_code == 0 and "not written" in dry.output
        assert [r["good_id"] for r in reads.for_you(conn, 3)] == before
        live = runner.invoke(cli, ["recommend", "--user", "3"])
        assert live.exit_code == 0 and f"written into run {runs[0]}" in live.output
        after = [r["good_id"] for r in reads.for_you(conn, 3)]
        assert len(after) == 20 and not set(after) & set(before), "today's picks are not repeated"
        few = runner.invoke(cli, ["recommend", "--user", "21"])
        assert "has 3 saved goods" in few.output


def test_compare_validation_tolerance() -> None:
    current = {"recall@20": 0.20, "ndcg@20": 0.10, "val_users": 50}
    assert compare_validation({"recall@20": 0.197, "ndcg@20": 0.099}, current, 0.02)[0]
    ok, why = compare_validation({"recall@20": 0.19, "ndcg@20": 0.12}, current, 0.02)
    assert not ok and "recall@20 0.1900 < 0.2000" in why
    assert compare_validation({"recall@20": 0.0}, None, 0.02) == (True, "no current model to compare with")


def test_retrain_promotes_only_when_validation_allows(
    migrated_url: str, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPHREC_DATABASE_URL", migrated_url)
    monkeypatch.setenv("GRAPHREC_PATHS__ARTIFACTS", str(artifacts))
    runner = CliRunner()
    assert runner.invoke(cli, ["demo-data", "--users", "80", "--goods", "600", "--seed", "1"]).exit_code == 0
    quick = ["--set", "train.max_epochs=1", "--set", "train.steps_per_epoch=3", "--set", "graph.min_goods=3"]
    first = runner.invoke(cli, [*quick, "retrain"])
    assert first.exit_code == 0, first.output
    # With nothing to keep it is promoted even if it loses to the baselines (the reason then says so).
    assert "promoted to CURRENT (no current model to compare with" in first.output
    models = artifacts / "models"
    current = (models / "CURRENT").read_text().strip()
    # A tolerance below -100% asks the new model to be twice as good as the current one on every figure.
    second = runner.invoke(cli, [*quick, "--set", "recommend.promote_tolerance=-1.0", "retrain"])
    assert second.exit_code == 0, second.output
    assert "not promoted (new model is worse on validation" in second.output
    assert (models / "CURRENT").read_text().strip() == current
    with db.connect(migrated_url) as conn:
        runs = conn.execute(
            "SELECT status, counts, metrics FROM graphrec_runs WHERE kind = 'retrain' ORDER BY id"
        ).fetchall()
    assert [r["counts"]["promoted"] for r in runs] == [1, 0]
    assert runs[1]["metrics"]["current_version"] == current and runs[1]["metrics"]["current_val"]
    # The recommend job then uses the model that stayed CURRENT.
    rec = runner.invoke(cli, ["--set", "graph.min_goods=3", "recommend"])
    assert rec.exit_code == 0, rec.output
    assert f"model {current}" in rec.output
