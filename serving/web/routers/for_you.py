"""The For You route: a user's picks of the current run, built as JSON by Postgres (also served by fast_path)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool

from graphrec.core import rules
from serving.web.dependencies import Id, Limit, Pool
from serving.web.queries import QUERIES
from serving.web.schemas import ERRORS, ForYou
from serving.web.tiles import TILE_PATH

router = APIRouter(tags=["for you"])
FOR_YOU_SQL = QUERIES["for_you"]
_PARAMS = {"tile_url": TILE_PATH, "max_title": rules.MAX_TITLE_CHARS, "ellipsis": rules.ELLIPSIS}


async def for_you_body(pool: AsyncConnectionPool, user_id: int, limit: int) -> bytes | None:
    """The JSON body of a user's picks (schemas.ForYou), or None for an unknown user. Raises psycopg errors."""
    async with pool.connection() as conn:
        cur = await conn.execute(FOR_YOU_SQL, {"user_id": user_id, "limit": limit, **_PARAMS})
        known, body = await cur.fetchone()  # type: ignore[misc]
    return body.encode() if known else None


@router.get("/v1/users/{user_id}/for-you", response_model=ForYou, responses=ERRORS)
async def for_you(user_id: Id, pool: Pool, limit: Limit = 20) -> Response:
    """Today's picks for a user, best first, each with its reason, and the run and model behind them."""
    body = await for_you_body(pool, user_id, limit)
    if body is None:
        raise HTTPException(404, f"unknown user {user_id}")
    return Response(body, media_type="application/json")
