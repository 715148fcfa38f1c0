"""How the vibe-check page renders: its Jinja2 templates (autoescaped), its CSP header and the helpers they use."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from serving.web.tiles import tile_url

HERE = Path(__file__).parent
# Scripts and styles from this app only; images may come from the goods' own hosts.
CSP = (
    "default-src 'none'; img-src 'self' https: http: data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def image_src(good_id: int, image_url: str | None) -> str:
    """The good's own image when it has an http(s) URL, else the app's generated tile."""
    if image_url and re.match(r"(?i)^https?://", image_url):
        return image_url
    return tile_url(good_id)


def ago(ts: datetime | None, now: datetime | None = None) -> str:
    """'3 h ago', '2 d ago': how long before `now` a timestamp is."""
    if ts is None:
        return ""
    now = now or datetime.now(UTC)
    s = max(0, int((now - ts).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return "just now"


_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    # Every title, collection name and URL is escaped, in files and in strings alike.
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals.update(image_src=image_src, ago=ago, tile_url=tile_url)
templates = Jinja2Templates(env=_env)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The template `name` rendered with `context`, under the page's Content-Security-Policy."""
    return templates.TemplateResponse(
        request, name, context, status_code=status, headers={"Content-Security-Policy": CSP}
    )
