"""What routes ask for with Depends: the pool, the run index cache, the id/limit parameters and the page token."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from graphrec.core import rules
from serving.web.index_cache import RunIndexCache
from serving.web.pages import render

MAX_LIMIT = 100
COOKIE = "graphrec_token"


@dataclass(frozen=True)
class PageSettings:
    """The page's settings: its token (None or empty: the page is disabled) and the eligibility threshold the
    random user uses before any run exists (GraphConfig.min_goods)."""

    token: str | None
    min_goods: int = 10


def get_pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool  # type: ignore[no-any-return]


def get_runs(request: Request) -> RunIndexCache:
    return request.app.state.runs  # type: ignore[no-any-return]


def get_page_settings(request: Request) -> PageSettings:
    return request.app.state.page  # type: ignore[no-any-return]


Pool = Annotated[AsyncConnectionPool, Depends(get_pool)]
Runs = Annotated[RunIndexCache, Depends(get_runs)]
Page = Annotated[PageSettings, Depends(get_page_settings)]
Id = Annotated[
    int, PathParam(ge=rules.MIN_ID, le=rules.MAX_ID, description="database id (positive: graphrec.core.rules)")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"how many, 1 to {MAX_LIMIT}")]


# --- the page token ---------------------------------------------------------------------------------------

token_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="set by signing in with ?token=")
token_header = APIKeyHeader(name="X-Graphrec-Token", auto_error=False)
token_bearer = HTTPBearer(auto_error=False)


class PageDenied(Exception):
    """The page answers with `response` instead of the route: page disabled, sign-in form, or the sign-in redirect."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def page_denied(request: Request, exc: Exception) -> Response:
    """Exception handler: send the response a PageDenied carries."""
    assert isinstance(exc, PageDenied)
    return exc.response


def _same(given: str | None, token: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), token.encode())


async def require_page_token(
    request: Request,
    page: Page,
    cookie: Annotated[str | None, Security(token_cookie)],
    header: Annotated[str | None, Security(token_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(token_bearer)],
    token: Annotated[str | None, Query(description="signing in: the token, once; then kept in a cookie")] = None,
) -> None:
    """Let the request through when it carries the page token (cookie, X-Graphrec-Token or Bearer header).

    `?token=` signs in: right, it sets the cookie and reloads the page without it (out of the address bar
    and history); wrong (or empty), the sign-in form says so. Raises PageDenied with the page to send.
    """
    if not page.token:
        raise PageDenied(
            render(
                request,
                "message.html",
                503,
                title="Page disabled",
                message="Set GRAPHREC_SERVE_TOKEN in the server's environment to enable the vibe check.",
            )
        )
    if token is not None:
        if not _same(token, page.token):
            raise PageDenied(render(request, "login.html", 401, failed=True, next=request.url.path))
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        response = RedirectResponse(request.url.path + (f"?{urlencode(rest)}" if rest else ""), status_code=303)
        response.set_cookie(COOKIE, page.token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        raise PageDenied(response)
    if any(_same(given, page.token) for given in (cookie, header, bearer.credentials if bearer else None)):
        return
    raise PageDenied(render(request, "login.html", 401, failed=False, next=request.url.path))
