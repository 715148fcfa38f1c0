"""The For You fast path: ASGI middleware that answers well-formed For You requests without FastAPI's routing."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from psycopg_pool import AsyncConnectionPool

from graphrec.core import rules
from serving.web.dependencies import MAX_LIMIT
from serving.web.errors import DATABASE_DOWN, DATABASE_ERRORS
from serving.web.routers.for_you import for_you_body

log = logging.getLogger(__name__)

_FOR_YOU_PATH = re.compile(r"/v1/users/(\d{1,18})/for-you")
_LIMIT_QUERY = re.compile(rb"(?:limit=(\d{1,3}))?")
_JSON = [(b"content-type", b"application/json")]


def _json_error(error: str, detail: str) -> bytes:
    return json.dumps({"error": error, "detail": detail}).encode()


class ForYouFastPath:
    """Pure ASGI middleware that answers well-formed For You requests itself, skipping FastAPI's routing and
    per-request validation (most of the app's CPU per request, measured by benchmarks/serve.py).

    Same function (routers.for_you.for_you_body), body and errors as the documented route; anything it does
    not recognise as well-formed (a bad id or limit, other parameters) goes on to FastAPI, which answers it,
    with 400 where due.
    """

    def __init__(self, app: Any, pool: AsyncConnectionPool) -> None:
        self.app, self.pool = app, pool

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = _FOR_YOU_PATH.fullmatch(scope["path"])
            query = _LIMIT_QUERY.fullmatch(scope["query_string"])
            limit = int(query.group(1) or 20) if query else 0
            if path and 1 <= limit <= MAX_LIMIT and rules.valid_id(int(path.group(1))):
                user_id = int(path.group(1))
                try:
                    body = await for_you_body(self.pool, user_id, limit)
                    status = 200 if body is not None else 404
                    if body is None:
                        body = _json_error("not_found", f"unknown user {user_id}")
                except DATABASE_ERRORS as exc:
                    log.warning("database unavailable on %s: %s", scope["path"], exc)
                    status, body = 503, _json_error("database_unavailable", DATABASE_DOWN)
                headers = [*_JSON, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
