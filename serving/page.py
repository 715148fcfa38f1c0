"""The vibe-check page: a user's saves and collections beside the picks of one run, or of two side by side.

Routes (HTML, behind the token from $GRAPHREC_SERVE_TOKEN, given once as ?token=, then kept in a cookie;
an `Authorization: Bearer` or `X-Graphrec-Token` header also works):

    GET /vibe                         search by id or name, sample users, the runs
    GET /vibe/random                  a random eligible user (one with picks in the current run)
    GET /vibe/users/{user_id}?run=&compare=   saves, collections, picks of `run` (default: current) and,
                                      with `compare`, the picks of that run beside them
    GET /tiles/{good_id}.svg          the generated image of a good (public: a title and a colour)

Pages are rendered by Jinja2 with autoescaping on: every title, collection name and URL is escaped, and
the Content-Security-Policy allows scripts from this app only.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from psycopg_pool import AsyncConnectionPool

from serving.tiles import tile_svg

HERE = Path(__file__).parent
COOKIE = "graphrec_token"
RECENT_SAVES = 24
COLLECTIONS = 8
COLLECTION_TILES = 6
SAMPLE_USERS = 12
CSP = (
    "default-src 'none'; img-src 'self' https: http: data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

# --- queries ----------------------------------------------------------------------------------------------

USER_SQL = """
SELECT u.id, u.name, u.created_at,
       (SELECT count(DISTINCT good_id) FROM saves WHERE user_id = u.id) AS goods,
       (SELECT count(*) FROM collections WHERE owner_id = u.id) AS collections,
       (SELECT count(*) FROM follows WHERE follower_id = u.id) AS following,
       (SELECT count(*) FROM follows WHERE followee_id = u.id) AS followers
FROM users u WHERE u.id = %(user_id)s
"""

RECENT_SAVES_SQL = """
SELECT s.good_id, s.saved_at, g.title, g.domain, g.image_url, g.deleted_at IS NOT NULL AS deleted
FROM (SELECT good_id, max(saved_at) AS saved_at FROM saves WHERE user_id = %(user_id)s
      GROUP BY good_id ORDER BY saved_at DESC LIMIT %(n)s) s
LEFT JOIN goods g ON g.id = s.good_id
ORDER BY s.saved_at DESC
"""

SAVED_DOMAINS_SQL = """
SELECT DISTINCT g.domain FROM saves s JOIN goods g ON g.id = s.good_id
WHERE s.user_id = %(user_id)s AND g.domain IS NOT NULL
"""

COLLECTIONS_SQL = """
SELECT c.id, c.title, count(cg.good_id) AS goods,
       (array_agg(cg.good_id ORDER BY cg.added_at DESC) FILTER (WHERE cg.good_id IS NOT NULL))[1:%(tiles)s]
           AS good_ids
FROM collections c LEFT JOIN collection_goods cg ON cg.collection_id = c.id
WHERE c.owner_id = %(user_id)s
GROUP BY c.id, c.title
ORDER BY max(cg.added_at) DESC NULLS LAST, c.id
LIMIT %(n)s
"""

GOODS_SQL = "SELECT id, title, domain, image_url FROM goods WHERE id = ANY(%(ids)s)"

RUNS_SQL = """
SELECT r.id, r.model_version, r.started_at, r.finished_at, r.status, r.counts,
       r.id = (SELECT run_id FROM graphrec_current) AS current
FROM graphrec_runs r
WHERE r.kind = 'recommend' AND EXISTS (SELECT 1 FROM graphrec_picks p WHERE p.run_id = r.id)
ORDER BY r.id DESC LIMIT 30
"""

# Picks of any kept run, not only the current one: that is what makes two runs comparable.
RUN_PICKS_SQL = """
SELECT p.rank, p.good_id, g.title, g.domain, g.image_url, g.deleted_at IS NOT NULL AS deleted,
       p.score, p.reason, p.reason_detail, p.is_fallback
FROM graphrec_picks p LEFT JOIN goods g ON g.id = p.good_id
WHERE p.run_id = %(run_id)s AND p.user_id = %(user_id)s
ORDER BY p.rank LIMIT 100
"""

# Eligible users are those the current run picked for; before any run, those with enough saves.
RANDOM_USERS_SQL = """
SELECT user_id FROM (
    SELECT p.user_id FROM graphrec_picks p
    WHERE p.run_id = (SELECT run_id FROM graphrec_current) AND p.rank = 1
    UNION ALL
    SELECT user_id FROM saves
    WHERE NOT EXISTS (SELECT 1 FROM graphrec_current WHERE run_id IS NOT NULL)
    GROUP BY user_id HAVING count(DISTINCT good_id) > %(min_goods)s
) eligible
ORDER BY random() LIMIT %(n)s
"""

USERS_BY_NAME_SQL = """
SELECT id, name FROM users WHERE name ILIKE '%%' || %(q)s || '%%' ESCAPE '\\' ORDER BY name, id LIMIT 30
"""

USER_NAMES_SQL = "SELECT id, name FROM users WHERE id = ANY(%(ids)s) ORDER BY name, id"

# Each sample user's newest saved goods, for the strip beside their name.
SAMPLE_SAVES_SQL = """
SELECT u.id AS user_id, g.id, g.title, g.image_url
FROM unnest(%(ids)s::bigint[]) AS u(id)
CROSS JOIN LATERAL (
    SELECT s.good_id, max(s.saved_at) AS saved_at FROM saves s WHERE s.user_id = u.id
    GROUP BY s.good_id ORDER BY saved_at DESC LIMIT %(n)s
) s
JOIN goods g ON g.id = s.good_id
ORDER BY u.id, s.saved_at DESC
"""

TILE_SQL = """
SELECT g.title, g.domain, s.style,
       CASE WHEN s.style IS NULL THEN g.embedding::real[] END AS embedding
FROM goods g LEFT JOIN demo_good_styles s ON s.good_id = g.id
WHERE g.id = %(good_id)s
"""


# --- view models ------------------------------------------------------------------------------------------


def image_src(good_id: int, image_url: str | None) -> str:
    """The good's own image when it has an http(s) URL, else the app's generated tile."""
    if image_url and re.match(r"(?i)^https?://", image_url):
        return image_url
    return f"/tiles/{good_id}.svg"


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


def _reason_good_id(detail: Any) -> int | None:
    """The saved good a pick's reason points at, if its structured reason names one."""
    if isinstance(detail, dict):
        for key in ("good_id", "saved_good_id", "via_good_id"):
            value = detail.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


# --- routes -----------------------------------------------------------------------------------------------


def install(app: FastAPI, pool: AsyncConnectionPool, token: str | None, *, min_goods: int = 10) -> None:
    """Add the page, its static files and the tiles to `app`, reading through `pool`."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(image_src=image_src, ago=ago)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})

    def gate(request: Request) -> Response | None:
        """None when the request carries the token; else the response to send (login form, redirect)."""
        if not token:
            return render(
                "message.html",
                503,
                title="Page disabled",
                message="Set GRAPHREC_SERVE_TOKEN in the server's environment to enable the vibe check.",
            )
        given = request.query_params.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), token.encode()):
                return render("login.html", 401, failed=True, next=request.url.path)
            # Keep the token out of the address bar and history: set the cookie, reload without it.
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            resp = RedirectResponse(target, status_code=303)
            resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
            return resp
        auth = request.headers.get("authorization", "")
        candidates = [
            request.cookies.get(COOKIE),
            request.headers.get("x-graphrec-token"),
            auth[7:] if auth.lower().startswith("bearer ") else None,
        ]
        if any(c and hmac.compare_digest(c.encode(), token.encode()) for c in candidates):
            return None
        return render("login.html", 401, failed=False, next=request.url.path)

    async def fetch(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with pool.connection() as conn:
            cur = conn.cursor()
            await cur.execute(sql, params)
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]

    async def runs_and_current() -> tuple[list[dict[str, Any]], int | None]:
        runs = await fetch(RUNS_SQL, {})
        current = next((r["id"] for r in runs if r["current"]), None)
        return runs, current

    async def sample_users(n: int) -> list[dict[str, Any]]:
        ids = [r["user_id"] for r in await fetch(RANDOM_USERS_SQL, {"min_goods": min_goods, "n": n})]
        if not ids:
            return []
        users = await fetch(USER_NAMES_SQL, {"ids": ids})
        recent: dict[int, list[dict[str, Any]]] = {}
        for row in await fetch(SAMPLE_SAVES_SQL, {"ids": ids, "n": 5}):
            recent.setdefault(row["user_id"], []).append(row)
        for user in users:
            user["recent"] = recent.get(user["id"], [])
        return users

    @app.get("/tiles/{good_id}.svg", include_in_schema=False)
    async def tile(good_id: int) -> Response:
        rows = await fetch(TILE_SQL, {"good_id": good_id})
        if not rows:
            return Response("unknown good", status_code=404, media_type="text/plain")
        r = rows[0]
        svg = tile_svg(good_id, r["title"], r["domain"], r["style"], r["embedding"])
        return Response(
            svg,
            media_type="image/svg+xml",
            headers={
                "Cache-Control": "public, max-age=86400",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            },
        )

    @app.get("/vibe", include_in_schema=False)
    async def home(request: Request, q: str = "") -> Response:
        if (denied := gate(request)) is not None:
            return denied
        q = q.strip()
        matches: list[dict[str, Any]] = []
        if q:
            if q.isdigit() and await fetch("SELECT id FROM users WHERE id = %(id)s", {"id": int(q)}):
                return RedirectResponse(f"/vibe/users/{int(q)}", status_code=303)
            pattern = re.sub(r"([%_\\])", r"\\\1", q)
            matches = await fetch(USERS_BY_NAME_SQL, {"q": pattern})
            if len(matches) == 1:
                return RedirectResponse(f"/vibe/users/{matches[0]['id']}", status_code=303)
        runs, current = await runs_and_current()
        return render(
            "home.html",
            q=q,
            matches=matches,
            runs=runs,
            current=current,
            samples=[] if q else await sample_users(SAMPLE_USERS),
        )

    @app.get("/vibe/random", include_in_schema=False)
    async def random_user(request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        picked = await fetch(RANDOM_USERS_SQL, {"min_goods": min_goods, "n": 1})
        if not picked:
            return render(
                "message.html",
                404,
                title="No eligible users",
                message="No user has picks in the current run or enough saves yet.",
            )
        keep = {k: v for k, v in request.query_params.items() if k in ("compare",)}
        suffix = f"?{urlencode(keep)}" if keep else ""
        return RedirectResponse(f"/vibe/users/{picked[0]['user_id']}{suffix}", status_code=303)

    @app.get("/vibe/users/{user_id}", include_in_schema=False)
    async def user_page(request: Request, user_id: int, run: str = "", compare: str = "") -> Response:
        if (denied := gate(request)) is not None:
            return denied
        # The run pickers send "" for "nothing chosen"; anything else must be a run id.
        if not re.fullmatch(r"\d*", run.strip()) or not re.fullmatch(r"\d*", compare.strip()):
            return render("message.html", 400, title="Bad run", message="run and compare must be run ids.")
        run_id_a = int(run) if run.strip() else None
        compare_id = int(compare) if compare.strip() else None
        users = await fetch(USER_SQL, {"user_id": user_id})
        if not users:
            return render("message.html", 404, title="Unknown user", message=f"There is no user {user_id}.")
        user = users[0]
        runs, current = await runs_and_current()
        by_id = {r["id"]: r for r in runs}
        run_a = run_id_a if run_id_a is not None else current
        columns = []
        for run_id in [run_a, compare_id] if compare_id is not None else [run_a]:
            column = RunColumn(by_id.get(run_id) if run_id is not None else None)
            if run_id is not None:
                column.picks = await fetch(RUN_PICKS_SQL, {"run_id": run_id, "user_id": user_id})
                if column.run is None:
                    column.run = {
                        "id": run_id,
                        "model_version": None,
                        "started_at": None,
                        "current": False,
                        "missing": True,
                    }
            columns.append(column)

        saves = await fetch(RECENT_SAVES_SQL, {"user_id": user_id, "n": RECENT_SAVES})
        saved_domains = {r["domain"] for r in await fetch(SAVED_DOMAINS_SQL, {"user_id": user_id})}
        collections = await fetch(COLLECTIONS_SQL, {"user_id": user_id, "n": COLLECTIONS, "tiles": COLLECTION_TILES})

        # Goods shown small: collection strips and the saved goods the reasons point at.
        wanted = {g for c in collections for g in (c["good_ids"] or [])}
        for column in columns:
            for p in column.picks:
                p["reason_good_id"] = _reason_good_id(p["reason_detail"])
                if p["reason_good_id"] is not None:
                    wanted.add(p["reason_good_id"])
        goods = {g["id"]: g for g in await fetch(GOODS_SQL, {"ids": sorted(wanted)})} if wanted else {}

        # Where the two runs agree: rank of each good in the other column.
        if len(columns) == 2:
            ranks = [{p["good_id"]: p["rank"] for p in c.picks} for c in columns]
            for i, column in enumerate(columns):
                for p in column.picks:
                    p["other_rank"] = ranks[1 - i].get(p["good_id"])
            shared = len(set(ranks[0]) & set(ranks[1]))
        else:
            shared = None
        return render(
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
            eligible=user["goods"] > min_goods,
            min_goods=min_goods,
        )
