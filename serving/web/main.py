"""The app factory: create_app builds the FastAPI app of the API, the page and the tiles over one connection pool.

JSON endpoints (ids are database ids, never graph indices):

    GET /v1/users/{user_id}/for-you?limit=   today's picks, via the SQL function for_you(user_id, limit)
    GET /v1/goods/{good_id}/similar?limit=   nearest goods in the current run's embeddings (FAISS IP)
    GET /v1/goods/{good_id}/audience?limit=  users most likely to save the good who have not saved it
    GET /healthz                             the database answers and a run is current
    GET /openapi.json                        the OpenAPI description

Errors are JSON `{"error": <code>, "detail": <words>}` (errors.py). The vibe-check page (routers/vibe.py),
its static files and the generated tiles (routers/tiles.py) are served by the same app. `app_from_env()` is
the factory the uvicorn workers of `graphrec serve` import (APP_FACTORY).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from psycopg_pool import AsyncConnectionPool

from serving.web.dependencies import PageDenied, PageSettings, page_denied
from serving.web.errors import install_error_handlers
from serving.web.fast_path import ForYouFastPath
from serving.web.index_cache import RunIndexCache
from serving.web.routers import for_you, goods, health, tiles, vibe

HERE = Path(__file__).parent
APP_FACTORY = "serving.web.main:app_from_env"
# Environment variable through which `graphrec serve` hands its resolved settings to uvicorn workers.
APP_ENV = "GRAPHREC_SERVE_APP"
TOKEN_ENV = "GRAPHREC_SERVE_TOKEN"


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
    app.state.runs = RunIndexCache(Path(artifacts_dir))
    app.state.page = PageSettings(token=token, min_goods=min_goods)
    install_error_handlers(app)
    app.add_exception_handler(PageDenied, page_denied)
    for module in (health, for_you, goods, vibe, tiles):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    if fast_path:
        app.add_middleware(ForYouFastPath, pool=pool)
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
