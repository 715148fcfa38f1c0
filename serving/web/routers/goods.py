"""The goods routes: similar goods and a good's audience, from the current run's embeddings (FAISS)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from psycopg_pool import AsyncConnectionPool

from serving.web.dependencies import Id, Limit, Pool, Runs
from serving.web.errors import Unavailable
from serving.web.index_cache import RunIndex, RunIndexCache
from serving.web.queries import fetch
from serving.web.schemas import ERRORS, Audience, Similar
from serving.web.tiles import tile_url

router = APIRouter(prefix="/v1/goods/{good_id}", tags=["goods"])


async def current_index(good_id: int, pool: AsyncConnectionPool, runs: RunIndexCache) -> RunIndex:
    """The current run's index, once the good is known, not deleted and has a vector in that run (else 404).

    Called by the handlers rather than declared as a dependency, so bad parameters get their 400 before any
    lookup (FastAPI runs dependencies before it validates the route's own parameters).
    """
    (row,) = await fetch(pool, "good_and_run", {"good_id": good_id})
    if not row["known"]:
        raise HTTPException(404, f"unknown good {good_id}")
    if row["run_id"] is None:
        raise Unavailable("no recommend run is current yet; run `graphrec recommend`")
    index = await runs.get(row["run_id"])
    if index.good_vector(good_id) is None:
        raise HTTPException(404, f"good {good_id} has no embedding in run {index.run_id} (added since, or unseen)")
    return index


@router.get("/similar", response_model=Similar, responses=ERRORS)
async def similar(good_id: Id, pool: Pool, runs: Runs, limit: Limit = 20) -> Any:
    """Goods nearest to a good in the current run's embeddings (inner product), deleted goods left out."""
    index = await current_index(good_id, pool, runs)
    # Ask for a few more than needed: goods deleted since the run are dropped below.
    hits = index.similar(good_id, limit + 10)
    goods = {r["id"]: r for r in await fetch(pool, "live_goods", {"ids": [g for g, _ in hits]})}
    out = [
        {
            "good_id": g,
            "title": goods[g]["title"],
            "domain": goods[g]["domain"],
            "image_url": goods[g]["image_url"],
            "tile_url": tile_url(g),
            "score": s,
        }
        for g, s in hits
        if g in goods
    ][:limit]
    emb = index.embeddings
    return {"good_id": good_id, "run_id": index.run_id, "model_version": emb.model_version, "goods": out}


@router.get("/audience", response_model=Audience, responses=ERRORS)
async def audience(good_id: Id, pool: Pool, runs: Runs, limit: Limit = 20) -> Any:
    """Users most likely to save a good who have not saved it nor collected it: whom to show it to."""
    index = await current_index(good_id, pool, runs)
    holders = {r["user_id"] for r in await fetch(pool, "holders", {"good_id": good_id})}
    hits = index.audience(good_id, limit, holders)
    names = {r["id"]: r["name"] for r in await fetch(pool, "user_names", {"ids": [u for u, _ in hits]})}
    out = [{"user_id": u, "name": names.get(u, ""), "score": s} for u, s in hits]
    emb = index.embeddings
    return {"good_id": good_id, "run_id": index.run_id, "model_version": emb.model_version, "users": out}
