"""The ETL commands end to end through the CLI, against a real database."""

from click.testing import CliRunner

from graphrec.app.cli import cli
from graphrec.core.artifacts import latest_graph_dir, load_graph


def _run(args, url, artifacts):
    env = {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_PATHS__ARTIFACTS": str(artifacts)}
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    return result


def test_init_demo_build_audit(db_url, artifacts):
    r = _run(["db", "init"], db_url, artifacts)
    assert r.exit_code == 0 and "applied 0001_source_tables" in r.output
    r = _run(
        [
            "--set",
            "graph.embedding_dim=32",
            "--set",
            "demo.styles=5",
            "--set",
            "demo.domains=20",
            "demo-data",
            "--users",
            "60",
            "--goods",
            "500",
            "--seed",
            "1",
        ],
        db_url,
        artifacts,
    )
    assert r.exit_code == 0, r.output
    assert "60 users, 500 goods" in r.output
    r = _run(["demo-data", "--users", "60", "--goods", "500"], db_url, artifacts)
    assert r.exit_code != 0 and "pass --replace" in r.output
    r = _run(["--set", "graph.embedding_dim=32", "build-graph"], db_url, artifacts)
    assert r.exit_code == 0, r.output
    assert "nodes: 60 users" in r.output and "bad input: none found" in r.output
    data, ids, manifest = load_graph(latest_graph_dir(artifacts))
    assert manifest["counts"]["user"] == 60 and len(ids.user_ids) == 60
    assert manifest["schema_version"] >= 1 and len(manifest["source_fingerprint"]) == 16
    r = _run(["audit"], db_url, artifacts)
    assert r.exit_code == 0 and "goods saved by more than one user" in r.output
    r = _run(["db", "status"], db_url, artifacts)
    assert "saves:" in r.output and "PENDING" not in r.output


def test_build_graph_dimension_mismatch_is_a_clear_error(db_url, artifacts):
    _run(["--set", "graph.embedding_dim=32", "demo-data", "--users", "30", "--goods", "200"], db_url, artifacts)
    r = CliRunner().invoke(
        cli,
        ["build-graph"],
        env={"GRAPHREC_DATABASE_URL": db_url, "GRAPHREC_PATHS__ARTIFACTS": str(artifacts)},
    )
    assert r.exit_code != 0
    assert "every embedding is 32-d but graph.embedding_dim is 512" in str(r.exception) + r.output


def test_bad_as_of_names_the_option(db_url, artifacts):
    r = _run(["build-graph", "--as-of", "yesterday"], db_url, artifacts)
    assert r.exit_code == 2 and "'yesterday' is not an ISO date" in r.output
