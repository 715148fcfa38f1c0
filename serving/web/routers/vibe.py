"""The vibe-check page's routes: a user's saves and collections beside the picks of one run, or of two side by side.

HTML, behind the page token (dependencies.require_page_token):

    GET /vibe                                 search by id or name, sample users, the runs
    GET /vibe/random                          a random eligible user (one with picks in the current run)
    GET /vibe/users/{user_id}?run=&compare=   saves, collections, picks of `run` (default: current) and,
                                              with `compare`, the picks of that run beside them
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from serving.web.dependencies import Page, Pool, require_page_token
from serving.web.pages import render
from serving.web.queries import fetch

RECENT_SAVES = 24
COLLECTIONS = 8
COLLECTION_TILES = 6
SAMPLE_USERS = 12

router = APIRouter(prefix="/vibe", include_in_schema=False, dependencies=[Depends(require_page_token)])


@dataclass
class RunColumn:
    """One run's picks for the user, as the page shows them."""

    run: dict[str, Any] | None
    picks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def domains(self) -> int:
        return len({p["domain"] for p in self.picks if p["domain"]})

    @property
    def fallbacks(self) -> int:
        return sum(1 for p in self.picks if p["is_fallback"])

    @property
    def interests(self) -> list[dict[str, Any]]:
        """The user's interests these picks serve (from each reason's `interest`), heaviest first, each with
        its picks counted; `label_interests` numbers the picks' interests to match."""
        seen: dict[int, dict[str, Any]] = {}
        for p in self.picks:
            it = p.get("interest")
            if it is not None:
                group = seen.setdefault(it["good_id"], {**it, "picks": 0})
                group["picks"] += 1
        return sorted(seen.values(), key=lambda g: (-(g.get("weight") or 0.0), g["good_id"]))

    def label_interests(self) -> None:
        """Give each pick the place of its interest in `interests` (p["interest_index"], 1-based; None)."""
        index = {g["good_id"]: i + 1 for i, g in enumerate(self.interests)}
        for p in self.picks:
            it = p.get("interest")
            p["interest_index"] = index.get(it["good_id"]) if it is not None else None


def reason_good_id(detail: Any) -> int | None:
    """The saved good a pick's reason points at, if its structured reason names one."""
    if isinstance(detail, dict):
        for key in ("good_id", "saved_good_id", "via_good_id"):
            value = detail.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def pick_interest(detail: Any) -> dict[str, Any] | None:
    """The interest a pick's structured reason names (serving.reasons: detail["interest"]), or None."""
    it = detail.get("interest") if isinstance(detail, dict) else None
    if isinstance(it, dict) and isinstance(it.get("good_id"), int) and not isinstance(it.get("good_id"), bool):
        return it
    return None


async def runs_and_current(pool: AsyncConnectionPool) -> tuple[list[dict[str, Any]], int | None]:
    runs = await fetch(pool, "runs", {})
    return runs, next((r["id"] for r in runs if r["current"]), None)


async def sample_users(pool: AsyncConnectionPool, n: int, min_goods: int) -> list[dict[str, Any]]:
    """Up to n random eligible users, each with their newest saves."""
    ids = [r["user_id"] for r in await fetch(pool, "random_users", {"min_goods": min_goods, "n": n})]
    if not ids:
        return []
    users = await fetch(pool, "user_names", {"ids": ids})
    recent: dict[int, list[dict[str, Any]]] = {}
    for row in await fetch(pool, "sample_saves", {"ids": ids, "n": 5}):
        recent.setdefault(row["user_id"], []).append(row)
    for user in users:
        user["recent"] = recent.get(user["id"], [])
    return users


@router.get("")
async def home(request: Request, pool: Pool, page: Page, q: str = "") -> Response:
    q = q.strip()
    matches: list[dict[str, Any]] = []
    if q:
        if q.isdigit() and await fetch(pool, "user_exists", {"id": int(q)}):
            return RedirectResponse(f"/vibe/users/{int(q)}", status_code=303)
        pattern = re.sub(r"([%_\\])", r"\\\1", q)
        matches = await fetch(pool, "users_by_name", {"q": pattern})
        if len(matches) == 1:
            return RedirectResponse(f"/vibe/users/{matches[0]['id']}", status_code=303)
    runs, current = await runs_and_current(pool)
    return render(
        request,
        "home.html",
        q=q,
        matches=matches,
        runs=runs,
        current=current,
        samples=[] if q else await sample_users(pool, SAMPLE_USERS, page.min_goods),
    )


@router.get("/random")
async def random_user(request: Request, pool: Pool, page: Page) -> Response:
    picked = await fetch(pool, "random_users", {"min_goods": page.min_goods, "n": 1})
    if not picked:
        return render(
            request,
            "message.html",
            404,
            title="No eligible users",
            message="No user has picks in the current run or enough saves yet.",
        )
    keep = {k: v for k, v in request.query_params.items() if k in ("compare",)}
    suffix = f"?{urlencode(keep)}" if keep else ""
    return RedirectResponse(f"/vibe/users/{picked[0]['user_id']}{suffix}", status_code=303)


@router.get("/users/{user_id}")
async def user_page(
    request: Request, user_id: int, pool: Pool, page: Page, run: str = "", compare: str = ""
) -> Response:
    # The run pickers send "" for "nothing chosen"; anything else must be a run id.
    if not re.fullmatch(r"\d*", run.strip()) or not re.fullmatch(r"\d*", compare.strip()):
        return render(request, "message.html", 400, title="Bad run", message="run and compare must be run ids.")
    run_id_a = int(run) if run.strip() else None
    compare_id = int(compare) if compare.strip() else None
    users = await fetch(pool, "user", {"user_id": user_id})
    if not users:
        return render(request, "message.html", 404, title="Unknown user", message=f"There is no user {user_id}.")
    user = users[0]
    runs, current = await runs_and_current(pool)
    by_id = {r["id"]: r for r in runs}
    run_a = run_id_a if run_id_a is not None else current
    columns = []
    for run_id in [run_a, compare_id] if compare_id is not None else [run_a]:
        column = RunColumn(by_id.get(run_id) if run_id is not None else None)
        if run_id is not None:
            column.picks = await fetch(pool, "run_picks", {"run_id": run_id, "user_id": user_id})
            if column.run is None:
                column.run = {
                    "id": run_id,
                    "model_version": None,
                    "started_at": None,
                    "current": False,
                    "missing": True,
                }
        columns.append(column)

    saves = await fetch(pool, "recent_saves", {"user_id": user_id, "n": RECENT_SAVES})
    saved_domains = {r["domain"] for r in await fetch(pool, "saved_domains", {"user_id": user_id})}
    collections = await fetch(pool, "collections", {"user_id": user_id, "n": COLLECTIONS, "tiles": COLLECTION_TILES})

    # Goods shown small: collection strips and the saved goods the reasons point at.
    wanted = {g for c in collections for g in (c["good_ids"] or [])}
    for column in columns:
        for p in column.picks:
            p["reason_good_id"] = reason_good_id(p["reason_detail"])
            if p["reason_good_id"] is not None:
                wanted.add(p["reason_good_id"])
            p["interest"] = pick_interest(p["reason_detail"])
            if p["interest"] is not None:
                wanted.add(p["interest"]["good_id"])
        column.label_interests()
    goods = {g["id"]: g for g in await fetch(pool, "goods", {"ids": sorted(wanted)})} if wanted else {}

    # Where the two runs agree: rank of each good in the other column.
    shared = None
    if len(columns) == 2:
        ranks = [{p["good_id"]: p["rank"] for p in c.picks} for c in columns]
        for i, column in enumerate(columns):
            for p in column.picks:
                p["other_rank"] = ranks[1 - i].get(p["good_id"])
        shared = len(set(ranks[0]) & set(ranks[1]))
    return render(
        request,
        "user.html",
        user=user,
        runs=runs,
        current=current,
        run_a=run_a,
        compare=compare_id,
        columns=columns,
        shared=shared,
        saves=saves,
        saved_domains=saved_domains,
        collections=collections,
        goods=goods,
        eligible=user["goods"] > page.min_goods,
        min_goods=page.min_goods,
    )
