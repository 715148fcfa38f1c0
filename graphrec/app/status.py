"""`graphrec db status`: which migrations are applied and what the database holds."""

from __future__ import annotations

from psycopg import sql

from graphrec.core import db

_TABLES = (
    "users",
    "goods",
    "collections",
    "collection_goods",
    "saves",
    "follows",
    "graphrec_runs",
    "graphrec_picks",
)


def database_status(conn: db.Connection, url: str) -> str:
    applied = db.applied_versions(conn)
    lines = [f"database: {db.redact(url)}"]
    lines.append(f"pgvector: {'yes' if db.has_pgvector(conn) else 'no (embeddings stored as real[])'}")
    for mig in db.migrations():
        mark = "applied" if mig.version in applied else "PENDING"
        lines.append(f"  {mig.version:04d}_{mig.name}: {mark}")
    for table in _TABLES:
        exists = conn.execute("SELECT to_regclass(%s) AS t", (table,)).fetchone()
        if exists and exists["t"] is not None:
            n = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()
            lines.append(f"  {table}: {n['n'] if n else 0} rows")
    return "\n".join(lines)
