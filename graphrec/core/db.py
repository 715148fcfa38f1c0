"""Database access: which PostgreSQL to use, connections, and the migration runner.

`GRAPHREC_DATABASE_URL` names any server. Unset, graphrec starts (or reuses) an embedded PostgreSQL 16
with pgvector from the `pgserver` package, in a data directory it owns.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from graphrec.core.config import DatabaseConfig
from graphrec.core.sql import load_queries

log = logging.getLogger(__name__)

URL_ENV = "GRAPHREC_DATABASE_URL"

Q = load_queries("graphrec.core", "queries.sql")

# graphrec's connections hand out rows as dicts.
Connection = psycopg.Connection[dict[str, Any]]


def embedded_server_url(data_dir: str | Path, database: str = "postgres") -> str:
    """Start the embedded server in `data_dir` if it is not running, create `database`, return its URL."""
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, cron); pgserver then uses /tmp, which is fine.
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: only the embedded path needs it

    path = Path(data_dir).absolute()
    path.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None leaves the server running after this process, so the next run reuses it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(path, cleanup_mode=None)
    if database != "postgres":
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute(Q["database_exists"], {"name": database}).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return server.get_uri(database)


def stop_embedded_server(data_dir: str | Path) -> None:
    """Stop the embedded server in `data_dir` (tests use a throwaway one per session)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(Path(data_dir).absolute(), cleanup_mode=None)
        server.cleanup_mode = "stop"
        server.cleanup()


def database_url(cfg: DatabaseConfig) -> str:
    """The database graphrec works on: $GRAPHREC_DATABASE_URL, else the embedded server."""
    url = os.environ.get(URL_ENV)
    if url:
        return url
    return embedded_server_url(cfg.embedded_dir, cfg.embedded_database)


def connect(url: str, autocommit: bool = False) -> Connection:
    return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row)


# A password in a connection string: `user:pass@` in a URL, `password=` (or `sslpassword=`) as a URL query
# parameter, or as a keyword in the key=value form, bare or single-quoted (with \' and \\ escapes).
_URL_USERINFO = re.compile(r"(://[^:/@?#]*):[^/?#]*@")
_URL_PARAM = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)
_KEYWORD = re.compile(r"(\b(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE)


def redact(url: str) -> str:
    """The connection string (URL or key=value form) without its password, for logs and messages."""
    if "://" in url.split("=", 1)[0]:  # a URL (an '=' before '://' means a key=value string)
        return _URL_PARAM.sub(r"\1***", _URL_USERINFO.sub(r"\1:***@", url))
    return _KEYWORD.sub(r"\1***", url)


# --- migrations -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def why(self) -> str:
        """The opening `--` comment of the file, which says why the migration exists."""
        first = self.sql.lstrip().splitlines()[0] if self.sql.strip() else ""
        return first.removeprefix("--").strip()


def migrations() -> list[Migration]:
    """The numbered plain-SQL files in graphrec/core/migrations, in order."""
    found = []
    for entry in resources.files("graphrec.core.migrations").iterdir():
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


# Any fixed number works; it only has to be the same for every graphrec process.
_MIGRATION_LOCK = 7_350_001


def applied_versions(conn: Connection) -> dict[int, str]:
    exists = conn.execute(Q["migration_ledger_exists"]).fetchone()
    if not exists or exists["t"] is None:
        return {}
    rows = conn.execute(Q["applied_migrations"]).fetchall()
    return {r["version"]: r["name"] for r in rows}


def migrate(conn: Connection) -> list[Migration]:
    """Apply the migrations not yet recorded, each in its own transaction. Returns those applied."""
    applied: list[Migration] = []
    with conn.transaction():
        conn.execute(Q["create_migration_ledger"])
    for mig in migrations():
        with conn.transaction():
            # Serialise concurrent `db init`s: the second waits, then sees the version recorded.
            conn.execute(Q["migration_lock"], {"key": _MIGRATION_LOCK})
            done = conn.execute(Q["migration_applied"], {"version": mig.version})
            if done.fetchone():
                continue
            log.info("applying migration %04d_%s", mig.version, mig.name)
            conn.execute(mig.sql.encode())
            conn.execute(Q["record_migration"], {"version": mig.version, "name": mig.name})
            applied.append(mig)
    return applied


def has_pgvector(conn: Connection) -> bool:
    row = conn.execute(Q["has_pgvector"]).fetchone()
    return row is not None
