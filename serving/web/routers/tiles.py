"""The tile route: the generated SVG of a good (public: a title, a domain and a colour), drawn by serving.web.tiles."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from serving.web.dependencies import Pool
from serving.web.queries import fetch
from serving.web.tiles import TILE_PATH, tile_svg

router = APIRouter(include_in_schema=False)


@router.get(TILE_PATH, name="tile")
async def tile(good_id: int, pool: Pool) -> Response:
    rows = await fetch(pool, "tile", {"good_id": good_id})
    if not rows:
        return Response("unknown good", status_code=404, media_type="text/plain")
    r = rows[0]
    return Response(
        tile_svg(good_id, r["title"], r["domain"], embedding=r["embedding"]),
        media_type="image/svg+xml",
        headers={
            "Cache-Control": "public, max-age=86400",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )
