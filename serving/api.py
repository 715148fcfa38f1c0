"""The For You API and the vibe-check page: a read-only FastAPI app over Postgres.

JSON endpoints (ids are database ids, never graph indices):

    GET /v1/users/{user_id}/for-you?limit=   today's picks, via the SQL function for_you(user_id, limit)
    GET /v1/goods/{good_id}/similar?limit=   nearest goods in the current run's embeddings (FAISS IP)
    GET /v1/goods/{good_id}/audience?limit=  users most likely to save the good who have not saved it
    GET /healthz                             the database answers and a run is current
    GET /openapi.json                        the OpenAPI description

Errors are JSON `{"error": <code>, "detail": <words>}`: 400 for bad parameters, 404 for unknown ids,
503 when the database (or the current run's embeddings) cannot be reached. The page (serving/page.py)
and the generated image tiles (serving/tiles.py) are served by the same app.

`create_app(database_url, artifacts_dir, token)` builds the app; `app_from_env()` is the factory the
uvicorn workers of `graphrec serve` import.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import faiss
import numpy as np
import psycopg
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from graphrec.core.artifacts import Embeddings, run_embeddings_path

log = logging.getLogger(__name__)

MAX_LIMIT = 100
DATABASE_DOWN = "the database cannot be reached; try again shortly"
# Environment variable through which `graphrec serve` hands its resolved settings to uvicorn workers.
APP_ENV = "GRAPHREC_SERVE_APP"
TOKEN_ENV = "GRAPHREC_SERVE_TOKEN"


def tile_url(good_id: int) -> str:
    return f"/tiles/{good_id}.svg"


# --- the For You query ------------------------------------------------------------------------------------
# Postgres builds the response body itself: one round trip, one text value, no per-row work in Python.
# for_you() and the graphrec_current lookups run in one statement, so they see one snapshot: the body
# holds one run's picks, whichever side of a swap the statement started on.
FOR_YOU_SQL = """
SELECT EXISTS (SELECT 1 FROM users WHERE id = %(user_id)s) AS known,
       json_build_object(
           'user_id', %(user_id)s::bigint,
           'run_id', (SELECT run_id FROM graphrec_current),
           'model_version', (SELECT r.model_version FROM graphrec_current c
                             JOIN graphrec_runs r ON r.id = c.run_id),
           'picks', coalesce((
               SELECT json_agg(json_build_object(
                   'rank', f.rank, 'good_id', f.good_id, 'title', f.title, 'domain', f.domain,
                   'image_url', f.image_url, 'tile_url', '/tiles/' || f.good_id || '.svg',
                   'score', f.score, 'reason', f.reason, 'reason_detail', f.reason_detail,
                   'is_fallback', f.is_fallback) ORDER BY f.rank)
               FROM for_you(%(user_id)s, %(limit)s) f), '[]'::json)
       )::text AS body
"""

GOOD_AND_RUN_SQL = """
SELECT (SELECT run_id FROM graphrec_current) AS run_id,
       EXISTS (SELECT 1 FROM goods WHERE id = %(good_id)s AND deleted_at IS NULL) AS known
"""

GOODS_SQL = """
SELECT id, title, domain, image_url FROM goods WHERE id = ANY(%(ids)s) AND deleted_at IS NULL
"""

USERS_SQL = "SELECT id, name FROM users WHERE id = ANY(%(ids)s)"

# Who already has the good: its savers and the owners of collections holding it.
HOLDERS_SQL = """
SELECT user_id FROM saves WHERE good_id = %(good_id)s
UNION
SELECT c.owner_id FROM collection_goods cg JOIN collections c ON c.id = cg.collection_id
WHERE cg.good_id = %(good_id)s
"""


# --- response shapes (for the OpenAPI description; bodies are built without re-validation) ----------------


class Error(BaseModel):
    error: str
    detail: str


class Pick(BaseModel):
    rank: int
    good_id: int
    title: str
    domain: str | None
    image_url: str | None
    tile_url: str
    score: float
    reason: str
    reason_detail: dict[str, Any]
    is_fallback: bool


class ForYou(BaseModel):
    user_id: int
    run_id: int | None
    model_version: str | None
    picks: list[Pick]


class SimilarGood(BaseModel):
    good_id: int
    title: str
    domain: str | None
    image_url: str | None
    tile_url: str
    score: float


class Similar(BaseModel):
    good_id: int
    run_id: int
    model_version: str
    goods: list[SimilarGood]


class AudienceUser(BaseModel):
    user_id: int
    name: str
    score: float


class Audience(BaseModel):
    good_id: int
    run_id: int
    model_version: str
    users: list[AudienceUser]


class Health(BaseModel):
    status: str
    run_id: int | None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "Bad parameter"},
    404: {"model": Error, "description": "Unknown id"},
    503: {"model": Error, "description": "Database or embeddings unavailable"},
}


Id = Annotated[int, PathParam(ge=0, le=2**63 - 1, description="database id")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"how many, 1 to {MAX_LIMIT}")]


class Unavailable(Exception):
    """Something the API needs (the database, a run's embeddings) cannot be reached right now."""


# --- the current run's embeddings, indexed once per run ---------------------------------------------------


@dataclass(frozen=True)
class RunIndex:
    """FAISS inner-product indexes over one run's good and user vectors, keyed by database id."""

    run_id: int
    embeddings: Embeddings
    good_row: dict[int, int]  # good_id -> row of embeddings.good_vecs
    goods: faiss.IndexFlatIP  # rows of goods the model knows (good_known), in `good_rows` order
    good_rows: np.ndarray  # int64: index position -> row of embeddings.good_vecs
    users: faiss.IndexFlatIP  # all rows of embeddings.user_vecs

    @classmethod
    def load(cls, artifacts: Path, run_id: int) -> RunIndex:
        path = run_embeddings_path(artifacts, run_id)
        if not path.exists():
            raise Unavailable(f"run {run_id} has no embeddings file at {path}")
        emb = Embeddings.load(path)
        known = np.flatnonzero(emb.good_known).astype(np.int64)
        goods = faiss.IndexFlatIP(emb.good_vecs.shape[1])
        goods.add(np.ascontiguousarray(emb.good_vecs[known], dtype=np.float32))
        users = faiss.IndexFlatIP(emb.user_vecs.shape[1])
        users.add(np.ascontiguousarray(emb.user_vecs, dtype=np.float32))
        good_row = {int(g): i for i, g in enumerate(emb.good_ids.tolist())}
        log.info(
            "indexed embeddings of run %s: %d goods (%d known), %d users",
            run_id,
            len(good_row),
            len(known),
            len(emb.user_ids),
        )
        return cls(run_id, emb, good_row, goods, known, users)

    def good_vector(self, good_id: int) -> np.ndarray | None:
        """The good's vector [1, d], or None when the run has no (known) vector for it."""
        row = self.good_row.get(good_id)
        if row is None or not self.embeddings.good_known[row]:
            return None
        return self.embeddings.good_vecs[row : row + 1].astype(np.float32)

    def similar(self, good_id: int, k: int) -> list[tuple[int, float]]:
        """(good_id, inner product) of up to k goods nearest to `good_id`, itself excluded, best first."""
        vec = self.good_vector(good_id)
        if vec is None:
            return []
        scores, pos = self.goods.search(vec, min(k + 1, self.goods.ntotal))
        ids = self.embeddings.good_ids[self.good_rows[pos[0][pos[0] >= 0]]]
        out = [(int(g), float(s)) for g, s in zip(ids.tolist(), scores[0].tolist(), strict=False) if g != good_id]
        return out[:k]

    def audience(self, good_id: int, k: int, exclude: set[int]) -> list[tuple[int, float]]:
        """(user_id, inner product) of up to k users scoring the good highest, users in `exclude` left out."""
        vec = self.good_vector(good_id)
        if vec is None:
            return []
        scores, pos = self.users.search(vec, min(k + len(exclude), self.users.ntotal))
        ids = self.embeddings.user_ids[pos[0][pos[0] >= 0]]
        out = [(int(u), float(s)) for u, s in zip(ids.tolist(), scores[0].tolist(), strict=False) if u not in exclude]
        return out[:k]


class RunIndexCache:
    """The index of the current run, rebuilt (once, off the event loop) when the current run changes."""

    def __init__(self, artifacts: Path) -> None:
        self.artifacts = Path(artifacts)
        self._index: RunIndex | None = None
        self._lock = asyncio.Lock()

    async def get(self, run_id: int) -> RunIndex:
        index = self._index
        if index is not None and index.run_id == run_id:
            return index
        async with self._lock:
            if self._index is None or self._index.run_id != run_id:
                self._index = await asyncio.to_thread(RunIndex.load, self.artifacts, run_id)
            return self._index


# --- For You: one implementation, reached through the documented route or the fast path -------------------


async def for_you_body(pool: AsyncConnectionPool, user_id: int, limit: int) -> bytes | None:
    """The JSON body of a user's picks (ForYou), or None for an unknown user. Raises psycopg errors."""
    async with pool.connection() as conn:
        cur = await conn.execute(FOR_YOU_SQL, {"user_id": user_id, "limit": limit})
        known, body = await cur.fetchone()  # type: ignore[misc]
    return body.encode() if known else None


_FOR_YOU_PATH = re.compile(r"/v1/users/(\d{1,18})/for-you")
_LIMIT_QUERY = re.compile(rb"(?:limit=(\d{1,3}))?")
_JSON = [(b"content-type", b"application/json")]


def _json_error(error: str, detail: str) -> bytes:
    return json.dumps({"error": error, "detail": detail}).encode()


class ForYouFastPath:
    """Pure ASGI middleware that answers well-formed For You requests itself, skipping FastAPI's routing and
    per-request validation (most of the app's CPU per request, measured by benchmarks/serve.py).

    Same function, body and errors as the documented route; anything it does not recognise as well-formed
    (a bad id or limit, other parameters) goes on to FastAPI, which answers it, with 400 where due.
    """

    def __init__(self, app: Any, pool: AsyncConnectionPool) -> None:
        self.app, self.pool = app, pool

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = _FOR_YOU_PATH.fullmatch(scope["path"])
            query = _LIMIT_QUERY.fullmatch(scope["query_string"])
            limit = int(query.group(1) or 20) if query else 0
            if path and 1 <= limit <= MAX_LIMIT:
                user_id = int(path.group(1))
                try:
                    body = await for_you_body(self.pool, user_id, limit)
                    status = 200 if body is not None else 404
                    if body is None:
                        body = _json_error("not_found", f"unknown user {user_id}")
                except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
                    log.warning("database unavailable on %s: %s", scope["path"], exc)
                    status, body = 503, _json_error("database_unavailable", DATABASE_DOWN)
                headers = [*_JSON, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


# --- the app ----------------------------------------------------------------------------------------------


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


_HTTP_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}


def create_app(
    database_url: str,
    artifacts_dir: str | Path,
    token: str | None,
    *,
    pool_min: int = 1,
    pool_max: int = 4,
    pool_timeout_s: float = 2.0,
    min_goods: int = 10,
    fast_path: bool = True,
) -> FastAPI:
    """The API and the vibe-check page over the database at `database_url`.

    `artifacts_dir` holds runs/<run_id>/embeddings.npz (similar, audience). `token` guards the page
    (None or empty: the page answers 503 and says how to enable it); the JSON API is read-only and open,
    meant for the app's backend on a private network. `min_goods`: the eligibility threshold the page's
    random user uses before any run exists (GraphConfig.min_goods). `fast_path`: answer well-formed For You
    requests in ForYouFastPath rather than through FastAPI (same body; off only to compare the two).
    """

    async def configure(conn: psycopg.AsyncConnection) -> None:
        # Every statement here is a few primary-key lookups, good for any parameter: plan once per connection.
        await conn.execute("SET plan_cache_mode = force_generic_plan")

    pool = AsyncConnectionPool(
        database_url,
        configure=configure,
        min_size=pool_min,
        max_size=pool_max,
        timeout=pool_timeout_s,
        open=False,
        # Read-only statements: autocommit saves a BEGIN/COMMIT round trip; prepare from the first use.
        kwargs={"autocommit": True, "prepare_threshold": 0, "application_name": "graphrec-serve"},
        name="graphrec-serve",
    )
    runs = RunIndexCache(Path(artifacts_dir))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # wait=False: the app starts (and answers 503) while the database is down, and connects when it is up.
        await pool.open(wait=False)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="graphrec",
        description="For You picks, similar goods and audiences for Goodsend, from graphrec's daily runs.",
        version="1",
        lifespan=lifespan,
        # The interactive docs pages load their scripts from a CDN; the description itself is served.
        docs_url=None,
        redoc_url=None,
    )
    app.state.pool = pool
    app.state.runs = runs

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("path", "query"))
            parts.append(f"{where}: {err.get('msg')}")
        return _error(400, "bad_request", "; ".join(parts) or "bad request")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = _HTTP_ERROR_CODES.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(psycopg.InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s: %s", request.url.path, str(exc).splitlines()[0] if str(exc) else exc)
        return _error(503, "database_unavailable", DATABASE_DOWN)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        log.warning("unavailable on %s: %s", request.url.path, exc)
        return _error(503, "unavailable", str(exc))

    @app.get("/healthz", response_model=Health, responses={503: ERRORS[503]})
    async def healthz() -> Any:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT run_id FROM graphrec_current")).fetchone()
        return {"status": "ok", "run_id": row[0] if row else None}

    @app.get("/v1/users/{user_id}/for-you", response_model=ForYou, responses=ERRORS)
    async def for_you(user_id: Id, limit: Limit = 20) -> Response:
        """Today's picks for a user, best first, each with its reason, and the run and model behind them."""
        body = await for_you_body(pool, user_id, limit)
        if body is None:
            raise HTTPException(404, f"unknown user {user_id}")
        return Response(body, media_type="application/json")

    if fast_path:
        app.add_middleware(ForYouFastPath, pool=pool)

    async def _good_and_index(conn: psycopg.AsyncConnection, good_id: int) -> RunIndex:
        row = await (await conn.execute(GOOD_AND_RUN_SQL, {"good_id": good_id})).fetchone()
        run_id, known = row  # type: ignore[misc]
        if not known:
            raise HTTPException(404, f"unknown good {good_id}")
        if run_id is None:
            raise Unavailable("no recommend run is current yet; run `graphrec recommend`")
        index = await runs.get(run_id)
        if index.good_vector(good_id) is None:
            raise HTTPException(404, f"good {good_id} has no embedding in run {run_id} (added since, or unseen)")
        return index

    @app.get("/v1/goods/{good_id}/similar", response_model=Similar, responses=ERRORS)
    async def similar(good_id: Id, limit: Limit = 20) -> Any:
        """Goods nearest to a good in the current run's embeddings (inner product), deleted goods left out."""
        async with pool.connection() as conn:
            index = await _good_and_index(conn, good_id)
            # Ask for a few more than needed: goods deleted since the run are dropped below.
            hits = index.similar(good_id, limit + 10)
            rows = await (await conn.execute(GOODS_SQL, {"ids": [g for g, _ in hits]})).fetchall()
        goods = {r[0]: r for r in rows}
        out = [
            {
                "good_id": g,
                "title": goods[g][1],
                "domain": goods[g][2],
                "image_url": goods[g][3],
                "tile_url": tile_url(g),
                "score": s,
            }
            for g, s in hits
            if g in goods
        ][:limit]
        emb = index.embeddings
        return {"good_id": good_id, "run_id": index.run_id, "model_version": emb.model_version, "goods": out}

    @app.get("/v1/goods/{good_id}/audience", response_model=Audience, responses=ERRORS)
    async def audience(good_id: Id, limit: Limit = 20) -> Any:
        """Users most likely to save a good who have not saved it nor collected it: whom to show it to."""
        async with pool.connection() as conn:
            index = await _good_and_index(conn, good_id)
            holders = {r[0] for r in await (await conn.execute(HOLDERS_SQL, {"good_id": good_id})).fetchall()}
            hits = index.audience(good_id, limit, holders)
            rows = await (await conn.execute(USERS_SQL, {"ids": [u for u, _ in hits]})).fetchall()
        names = {r[0]: r[1] for r in rows}
        out = [{"user_id": u, "name": names.get(u, ""), "score": s} for u, s in hits]
        emb = index.embeddings
        return {"good_id": good_id, "run_id": index.run_id, "model_version": emb.model_version, "users": out}

    from serving.page import install

    install(app, pool, token, min_goods=min_goods)
    return app


def app_from_env() -> FastAPI:
    """The app as `graphrec serve` configures it for its uvicorn workers (settings in $GRAPHREC_SERVE_APP)."""
    settings = json.loads(os.environ[APP_ENV])
    return create_app(
        settings["database_url"],
        settings["artifacts"],
        os.environ.get(TOKEN_ENV),
        pool_min=settings["pool_min"],
        pool_max=settings["pool_max"],
        pool_timeout_s=settings["pool_timeout_s"],
        min_goods=settings["min_goods"],
        fast_path=settings.get("fast_path", True),
    )
