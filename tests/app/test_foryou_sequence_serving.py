"""`graphrec train` with the sequence source on fits the sequence model and saves it with the ranker; `graphrec
recommend` serves its picks with the reason "next after <the user's newest save>"; a damaged sequence checkpoint
is refused like a damaged weights.pt, and the picks served so far stay; `recommend --user` serves it too. Through
the real CLI and database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from graphrec.app.cli import cli
from graphrec.core import db, runs
from tests.damage import flip_middle, recommend_refuses


@pytest.fixture
def alerts_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    monkeypatch.setattr(runs.alerts, "notify_failure", lambda job, stage, e, run_id=None: sent.append(str(e)))
    monkeypatch.setattr(runs.alerts, "notify_summary", lambda text: None)
    return sent


def test_the_sequence_source_is_trained_served_and_refused_when_damaged(
    migrated_url: str, artifacts: Path, monkeypatch: pytest.MonkeyPatch, alerts_sent: list[str]
) -> None:
    monkeypatch.setenv("GRAPHREC_DATABASE_URL", migrated_url)
    monkeypatch.setenv("GRAPHREC_PATHS__ARTIFACTS", str(artifacts))
    runner = CliRunner()
    quick = ["--set", "train.max_epochs=1", "--set", "train.steps_per_epoch=2", "--set", "graph.min_goods=3"]
    # The sequence source alone, so every For You pick (but the popularity top-up) is its own.
    quick += ["--set", "foryou.sources=sequence", "--set", "foryou.sequence_epochs=2", "--set", "foryou.clusters=4"]
    assert runner.invoke(cli, ["demo-data", "--users", "60", "--goods", "400", "--seed", "1"]).exit_code == 0
    built = runner.invoke(cli, [*quick, "build-graph"])
    assert built.exit_code == 0, built.output
    trained = runner.invoke(cli, [*quick, "train", "--promote"])
    assert trained.exit_code == 0, trained.output + repr(trained.exception)
    version = (artifacts / "models" / "CURRENT").read_text().strip()
    sequence = artifacts / "models" / version / "sequence"
    ranker_meta = json.loads((artifacts / "models" / version / "ranker.json").read_text())
    assert ranker_meta["sources"] == ["sequence"]
    seq_meta = json.loads((sequence / "checkpoint.json").read_text())
    assert seq_meta["kind"] == "sasrec" and seq_meta["version"] == ranker_meta["sequence"]
    assert seq_meta["graph_manifest"]["sequence_cut"] == ranker_meta["cut"] and "weights_sha256" in seq_meta

    first = runner.invoke(cli, [*quick, "recommend"])
    assert first.exit_code == 0, first.output + repr(first.exception)
    with db.connect(migrated_url) as conn:
        rows = conn.execute("SELECT reason, reason_detail, is_fallback FROM graphrec_picks").fetchall()
    nexts = [r for r in rows if r["reason_detail"]["kind"] == "next"]
    assert len(nexts) >= len(rows) // 2
    assert all(r["reason"].startswith("next after ") and not r["is_fallback"] for r in nexts)
    assert all(isinstance(r["reason_detail"]["good_id"], int) for r in nexts)

    # `recommend --user` runs the same sequence model over the rows around one user.
    with db.connect(migrated_url) as conn:
        user = conn.execute(
            "SELECT user_id FROM graphrec_picks WHERE reason LIKE 'next after %' ORDER BY user_id LIMIT 1"
        ).fetchone()["user_id"]
    one = runner.invoke(cli, [*quick, "recommend", "--user", str(user), "--dry-run"])
    assert one.exit_code == 0, one.output + repr(one.exception)
    listed = [line for line in one.output.splitlines() if line.strip()[:3].rstrip(".").strip().isdigit()]
    assert listed and sum("next after " in line for line in listed) >= len(listed) // 2, one.output

    flip_middle(sequence / "weights.pt", 512)
    recommend_refuses(runner, quick, migrated_url, "sequence/weights.pt")
    assert len(alerts_sent) == 1 and "sequence/weights.pt" in alerts_sent[0]
