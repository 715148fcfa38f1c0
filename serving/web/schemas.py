"""Response schemas of the JSON API, for its OpenAPI description (bodies are built without re-validation)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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


# The error answers every JSON route documents beside its 200.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "Bad parameter"},
    404: {"model": Error, "description": "Unknown id"},
    503: {"model": Error, "description": "Database or embeddings unavailable"},
}
