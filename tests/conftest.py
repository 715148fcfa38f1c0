"""Shared fixtures: a fresh PostgreSQL database per test, on the embedded server and, when
GRAPHREC_TEST_DATABASE_URL is set, on that server too."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from graphrec.core import db

# As graphrec's CLI does (graphrec/app/cli.py): OpenMP threads wait passively, so in-process fits on 2 threads
# do not crawl while other tests' servers and subprocesses share the cores. Set before any test imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SERVER_URL = os.environ.get("GRAPHREC_TEST_DATABASE_URL")
BACKENDS = ["embedded"] + (["server"] if SERVER_URL else [])


@pytest.fixture(scope="session")
def embedded_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded server for the whole session, in a temporary data directory, stopped at the end."""
    data_dir = tmp_path_factory.mktemp("pg") / "data"
    yield db.embedded_server_url(data_dir)
    db.stop_embedded_server(data_dir)


def _with_database(admin_url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a new, empty database that is dropped after the test."""
    admin = SERVER_URL if request.param == "server" else request.getfixturevalue("embedded_admin_url")
    assert admin is not None
    name = f"graphrec_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def migrated_url(db_url: str) -> str:
    """A fresh database with graphrec's schema applied."""
    with db.connect(db_url) as conn:
        db.migrate(conn)
    return db_url


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    path = tmp_path / "artifacts"
    path.mkdir()
    return path
