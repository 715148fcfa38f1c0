"""The web layer's SQL (queries.sql, loaded once at import) and the one helper that runs a read through the pool."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from graphrec.core import rules
from graphrec.core.sql import load_queries

QUERIES = load_queries(__package__ or "serving.web", "queries.sql")


async def fetch(pool: AsyncConnectionPool, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the named query, as dicts, a "title" column cut to rules.MAX_TITLE_CHARS. Raises KeyError for
    an unknown name, psycopg errors as they come."""
    sql = QUERIES[name]
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    # Titles (of goods and collections) leave the API at most rules.MAX_TITLE_CHARS long.
    for row in rows:
        if isinstance(row.get("title"), str):
            row["title"] = rules.short_title(row["title"])
    return rows
