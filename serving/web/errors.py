"""The API's errors: JSON `{"error": <code>, "detail": <words>}` for bad parameters, unknown ids and outages."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

DATABASE_DOWN = "the database cannot be reached; try again shortly"
# What counts as "the database is down" (503), wherever it is raised.
DATABASE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
_HTTP_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}


class Unavailable(Exception):
    """Something the API needs (the database, a run's embeddings) cannot be reached right now."""


def error_response(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("path", "query"))
        parts.append(f"{where}: {err.get('msg')}")
    return error_response(400, "bad_request", "; ".join(parts) or "bad request")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, _HTTP_ERROR_CODES.get(exc.status_code, "error"), str(exc.detail))


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable on %s: %s", request.url.path, str(exc).splitlines()[0] if str(exc) else exc)
    return error_response(503, "database_unavailable", DATABASE_DOWN)


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("unavailable on %s: %s", request.url.path, exc)
    return error_response(503, "unavailable", str(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Answer validation errors with 400, HTTP errors with their status, outages with 503: all as JSON."""
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(HTTPException, _http_error)
    for exc in DATABASE_ERRORS:
        app.add_exception_handler(exc, _database_down)
    app.add_exception_handler(Unavailable, _unavailable)
