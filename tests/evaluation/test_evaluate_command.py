"""`graphrec evaluate` end to end on demo data in a real database: report files and the recorded run."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from graphrec.app.cli import cli
from graphrec.core import db


def test_evaluate_writes_report_and_records_run(migrated_url: str, artifacts: Path) -> None:
    env = {"GRAPHREC_DATABASE_URL": migrated_url, "GRAPHREC_PATHS__ARTIFACTS": str(artifacts)}
    runner = CliRunner()
    r = runner.invoke(cli, ["demo-data", "--users", "150", "--goods", "1500", "--seed", "2"], env=env)
    assert r.exit_code == 0, r.output
    out = artifacts / "report"
    r = runner.invoke(
        cli,
        [
            "--set",
            "graph.min_goods=5",
            "evaluate",
            "--models",
            "random,popularity,mean_clip,oracle",
            "--test-share",
            "0.2",
            "--out",
            str(out),
        ],
        env=env,
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    names = {p.name for p in out.iterdir()}
    assert {
        "report.md",
        "metrics.json",
        "demo_metrics_by_model.png",
        "demo_recall_curve.png",
        "demo_pick_popularity.png",
        "demo_domains_per_list.png",
    } <= names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "| oracle | reference |" in report and "recall@20" in report
    figures = json.loads((out / "metrics.json").read_text())
    rows = {row["name"]: row for row in figures["datasets"]["demo"]["rows"]}
    assert set(rows) == {"random", "popularity", "mean_clip", "oracle"}
    assert rows["oracle"]["metrics"]["recall@20"] > rows["random"]["metrics"]["recall@20"]
    with db.connect(migrated_url) as conn:
        run = conn.execute("SELECT status, metrics, counts FROM graphrec_runs WHERE kind = 'evaluate'").fetchone()
    assert run["status"] == "succeeded"
    assert run["metrics"]["demo_oracle_recall@20"] == rows["oracle"]["metrics"]["recall@20"]
    assert run["counts"]["demo"]["evaluated_users"] == figures["datasets"]["demo"]["counts"]["evaluated_users"]
    # A row that does not exist is a clear error.
    r = runner.invoke(cli, ["evaluate", "--models", "nope", "--out", str(out)], env=env)
    assert r.exit_code != 0 and "none of the models nope" in r.output
