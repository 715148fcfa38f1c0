"""The health route: the database answers, and which run is current."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.web.dependencies import Pool
from serving.web.queries import fetch
from serving.web.schemas import ERRORS, Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: ERRORS[503]})
async def healthz(pool: Pool) -> Any:
    """{"status": "ok", "run_id": the current run} when the database answers; 503 when it does not."""
    rows = await fetch(pool, "current_run", {})
    return {"status": "ok", "run_id": rows[0]["run_id"] if rows else None}
