"""The vibe page labels each pick with the user's interest it serves and lists those interests."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from seeded_app import TOKEN, Seeded

from graphrec.core import db
from serving.web.main import create_app
from serving.web.routers.vibe import RunColumn, pick_interest


def _interest(good_id: int, title: str, weight: float) -> dict[str, object]:
    return {"good_id": good_id, "good_title": title, "domain": "shop1.example", "weight": weight}


def test_picks_are_grouped_under_their_interests_heaviest_first() -> None:
    red, blue = _interest(2, "Red thing 2", 0.3), _interest(13, "Red thing 13", 0.7)
    column = RunColumn(
        None,
        [
            {"interest": red, "domain": "a", "is_fallback": False},
            {"interest": blue, "domain": "a", "is_fallback": False},
            {"interest": None, "domain": "b", "is_fallback": True},
            {"interest": blue, "domain": "a", "is_fallback": False},
        ],
    )
    column.label_interests()
    assert [(g["good_id"], g["picks"]) for g in column.interests] == [(13, 2), (2, 1)]
    assert [p["interest_index"] for p in column.picks] == [2, 1, None, 1]
    assert pick_interest({"kind": "good", "interest": red}) == red
    assert pick_interest({"kind": "good"}) is None and pick_interest("junk") is None
    assert pick_interest({"interest": {"good_id": True}}) is None


def test_the_user_page_shows_each_picks_interest(migrated_url: str, artifacts: Path, seeded: Seeded) -> None:
    detail = json.dumps({"kind": "good", "good_id": 1, "interest": _interest(13, "Red thing 13", 0.6)})
    with db.connect(migrated_url) as conn:
        conn.execute(
            "UPDATE graphrec_picks SET reason_detail = %s WHERE run_id = %s AND user_id = 1 AND rank <= 2",
            (detail, seeded.run_new),
        )
    with TestClient(create_app(migrated_url, artifacts, TOKEN), follow_redirects=False) as client:
        client.cookies.set("graphrec_token", TOKEN)
        html = client.get("/vibe/users/1").text
    legend = re.search(r'<ul class="interests">(.*?)</ul>', html, re.S)
    assert legend is not None
    assert "Red thing 13, shop1.example" in legend.group(1) and "2 picks · 60%" in legend.group(1)
    assert 'src="/tiles/13.svg"' in legend.group(1)
    assert len(re.findall(r'class="itag i1"[^>]*>interest 1<', html)) == 2
    # A run whose reasons name no interest shows no legend.
    with TestClient(create_app(migrated_url, artifacts, TOKEN), follow_redirects=False) as client:
        client.cookies.set("graphrec_token", TOKEN)
        old = client.get(f"/vibe/users/1?run={seeded.run_old}").text
    assert 'class="interests"' not in old
