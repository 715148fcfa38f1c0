"""The For You API against a real PostgreSQL, over the app planted by seeded_app.seed()."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from seeded_app import TOKEN, XSS_TITLE, Seeded

from graphrec.core import db
from graphrec.core.artifacts import run_embeddings_path
from serving.web.main import APP_ENV, create_app


@pytest.fixture
def client(migrated_url: str, artifacts: Path, seeded: Seeded) -> TestClient:
    with TestClient(create_app(migrated_url, artifacts, TOKEN)) as c:
        yield c


def _assert_error(resp, status: int, error: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["error"] == error and body["detail"]
    return body


def test_for_you_serves_the_current_runs_picks_in_rank_order(client: TestClient, seeded: Seeded) -> None:
    body = client.get("/v1/users/1/for-you").json()
    assert body["user_id"] == 1
    assert body["run_id"] == seeded.run_new and body["model_version"] == "lightgcn-v2"
    assert [p["good_id"] for p in body["picks"]] == seeded.picks_new
    first = body["picks"][0]
    assert first == {
        "rank": 1,
        "good_id": 15,
        "title": "Red thing 15",
        "domain": "shop3.example",
        "image_url": None,
        "tile_url": "/tiles/15.svg",
        "score": pytest.approx(0.9),
        "reason": "because you saved Red thing 1",
        "reason_detail": {"kind": "good", "good_id": 1},
        "is_fallback": False,
    }
    assert body["picks"][1]["title"] == XSS_TITLE  # JSON carries the title as data; the page escapes it
    assert body["picks"][-1]["is_fallback"] is True
    assert [p["rank"] for p in client.get("/v1/users/1/for-you?limit=3").json()["picks"]] == [1, 2, 3]


def test_for_you_follows_a_swap_of_the_current_run(client: TestClient, seeded: Seeded, migrated_url: str) -> None:
    with db.connect(migrated_url, autocommit=True) as conn:
        conn.execute("UPDATE graphrec_current SET run_id = %s", (seeded.run_old,))
    body = client.get("/v1/users/1/for-you").json()
    assert body["run_id"] == seeded.run_old and body["model_version"] == "pinsage-v1"
    assert [p["good_id"] for p in body["picks"]] == seeded.picks_old


def test_for_you_of_a_user_without_picks_is_empty_and_of_an_unknown_user_404(client: TestClient) -> None:
    body = client.get("/v1/users/2/for-you").json()
    assert body["picks"] == [] and body["user_id"] == 2
    _assert_error(client.get("/v1/users/999/for-you"), 404, "not_found")


BAD_PATHS = {
    "/v1/users/1/for-you?limit=0": "limit",
    "/v1/users/1/for-you?limit=101": "limit",
    "/v1/users/1/for-you?limit=ten": "limit",
    "/v1/users/abc/for-you": "user_id",
    "/v1/users/-1/for-you": "user_id",
    "/v1/goods/1/similar?limit=-5": "limit",
    "/v1/goods/x/audience": "good_id",
}


def test_bad_parameters_give_400_with_a_json_error_naming_the_parameter(client: TestClient) -> None:
    for path, name in BAD_PATHS.items():
        body = _assert_error(client.get(path), 400, "bad_request")
        assert body["detail"].startswith(f"{name}:"), (path, body)


def test_similar_goods_come_from_the_current_runs_embeddings(client: TestClient, seeded: Seeded) -> None:
    body = client.get("/v1/goods/3/similar?limit=5").json()
    assert body["run_id"] == seeded.run_new and body["model_version"] == "lightgcn-v2"
    ids = [g["good_id"] for g in body["goods"]]
    # Nearest by inner product: red goods with the largest third coordinate, deleted good 20 left out.
    assert ids == [19, 18, 17, 16, 15]
    assert all(g["score"] >= h["score"] for g, h in zip(body["goods"], body["goods"][1:], strict=False))
    assert body["goods"][0]["tile_url"] == "/tiles/19.svg" and body["goods"][0]["domain"] == "shop3.example"
    blue = [g["good_id"] for g in client.get("/v1/goods/25/similar?limit=19").json()["goods"]]
    assert 25 not in blue and set(blue) == set(range(21, 41)) - {25}


def test_similar_and_audience_404_for_unknown_deleted_or_unembedded_goods(client: TestClient, seeded: Seeded) -> None:
    for good in (999, seeded.deleted_good, seeded.new_good, 41):
        for what in ("similar", "audience"):
            _assert_error(client.get(f"/v1/goods/{good}/{what}"), 404, "not_found")


def test_audience_is_the_best_scored_users_who_have_not_saved_the_good(client: TestClient) -> None:
    body = client.get("/v1/goods/21/audience?limit=10").json()
    # Users 2 and 3 saved good 21 (and 3 has it in a collection): left out. Blue-leaning users first.
    assert [u["user_id"] for u in body["users"]] == [4, 5, 6, 1]
    assert body["users"][0] == {"user_id": 4, "name": "Di", "score": pytest.approx(0.9)}
    assert [u["user_id"] for u in client.get("/v1/goods/21/audience?limit=2").json()["users"]] == [4, 5]
    # Good 5 is red and user 1 saved it: the user leaning a little red comes first, the rest tie at 0.
    red = [u["user_id"] for u in client.get("/v1/goods/5/audience?limit=10").json()["users"]]
    assert red[0] == 6 and sorted(red[1:]) == [2, 3, 4, 5]


def test_similar_without_embeddings_for_the_current_run_is_503(
    client: TestClient, seeded: Seeded, artifacts: Path
) -> None:
    run_embeddings_path(artifacts, seeded.run_old).unlink()
    client.app.state.runs._index = None
    with db.connect(client.app.state.pool.conninfo, autocommit=True) as conn:
        conn.execute("UPDATE graphrec_current SET run_id = %s", (seeded.run_old,))
    _assert_error(client.get("/v1/goods/3/similar"), 503, "unavailable")
    assert client.get("/v1/users/1/for-you").status_code == 200  # picks do not need the embeddings


def test_healthz_and_openapi(client: TestClient, seeded: Seeded) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "run_id": seeded.run_new}
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/users/{user_id}/for-you",
        "/v1/goods/{good_id}/similar",
        "/v1/goods/{good_id}/audience",
    ):
        assert set(spec["paths"][path]["get"]["responses"]) >= {"200", "400", "404", "503"}
    assert "/vibe" not in spec["paths"]


def test_a_database_outage_gives_503_not_a_stack_trace(artifacts: Path) -> None:
    # Nothing listens on port 9 of loopback: every connection attempt is refused.
    app = create_app("postgresql://graphrec@127.0.0.1:9/none?connect_timeout=1", artifacts, TOKEN, pool_timeout_s=0.3)
    with TestClient(app, raise_server_exceptions=False) as client:
        for path in ("/v1/users/1/for-you", "/v1/goods/1/similar", "/v1/goods/1/audience", "/healthz"):
            body = _assert_error(client.get(path), 503, "database_unavailable")
            assert "Traceback" not in body["detail"]


def test_the_api_recovers_when_its_connections_are_killed(client: TestClient, migrated_url: str) -> None:
    assert client.get("/v1/users/1/for-you").status_code == 200
    with db.connect(migrated_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    statuses = [client.get("/v1/users/1/for-you").status_code for _ in range(6)]
    # A request on a killed connection may get a 503; the pool then replaces it and requests succeed again.
    assert set(statuses) <= {200, 503} and statuses[-1] == 200


def test_serve_command_runs_uvicorn_with_the_resolved_settings(
    monkeypatch: pytest.MonkeyPatch, migrated_url: str
) -> None:
    import json

    import uvicorn

    from graphrec.app.cli import cli
    from graphrec.core.logs import uvicorn_log_config

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setenv("GRAPHREC_DATABASE_URL", migrated_url)
    monkeypatch.delenv(APP_ENV, raising=False)
    result = CliRunner().invoke(cli, ["--set", "serve.pool_max=3", "serve", "--port", "8123", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert calls == [
        (
            "serving.web.main:app_from_env",
            {
                "factory": True,
                "host": "127.0.0.1",
                "port": 8123,
                "workers": 2,
                "access_log": False,
                "log_level": "warning",
                "log_config": uvicorn_log_config("warning"),
            },
        )
    ]
    settings = json.loads(__import__("os").environ[APP_ENV])
    assert settings["database_url"] == migrated_url and settings["pool_max"] == 3


def test_the_fast_path_answers_exactly_as_the_documented_route(
    migrated_url: str, artifacts: Path, seeded: Seeded
) -> None:
    paths = [
        "/v1/users/1/for-you",
        "/v1/users/1/for-you?limit=2",
        "/v1/users/3/for-you?limit=100",
        "/v1/users/2/for-you",
        "/v1/users/999/for-you",
        "/v1/users/1/for-you?limit=0",
        "/v1/users/1/for-you?limit=101",
        "/v1/users/1/for-you?limit=2&other=x",
        "/v1/users/99999999999999999999/for-you",
    ]
    answers = []
    for fast_path in (True, False):
        with TestClient(create_app(migrated_url, artifacts, TOKEN, fast_path=fast_path)) as c:
            answers.append([(r.status_code, r.json()) for r in map(c.get, paths)])
    assert answers[0] == answers[1]
    assert [status for status, _ in answers[0]] == [200, 200, 200, 200, 404, 400, 400, 200, 400]
