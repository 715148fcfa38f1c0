"""The vibe-check page over HTTP (no browser): token gate, escaping, search, random user, comparison."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from seeded_app import TOKEN, XSS_TITLE, Seeded

from graphrec.core import db
from serving.web.main import create_app
from serving.web.queries import QUERIES
from serving.web.tiles import tile_svg


@pytest.fixture
def anonymous(migrated_url: str, artifacts: Path, seeded: Seeded) -> TestClient:
    with TestClient(create_app(migrated_url, artifacts, TOKEN), follow_redirects=False) as c:
        yield c


@pytest.fixture
def client(anonymous: TestClient) -> TestClient:
    anonymous.cookies.set("graphrec_token", TOKEN)
    return anonymous


def test_the_page_needs_the_token_and_keeps_it_in_a_cookie_not_the_url(anonymous: TestClient) -> None:
    assert anonymous.get("/vibe/users/1").status_code == 401
    assert anonymous.get("/vibe/users/1?token=wrong").status_code == 401
    assert "Ada" not in anonymous.get("/vibe/users/1?token=wrong").text
    resp = anonymous.get(f"/vibe/users/1?token={TOKEN}&compare=1")
    assert resp.status_code == 303 and resp.headers["location"] == "/vibe/users/1?compare=1"
    assert "httponly" in resp.headers["set-cookie"].lower()
    assert anonymous.get("/vibe/users/1").status_code == 200  # the cookie from the redirect
    anonymous.cookies.clear()
    assert anonymous.get("/vibe/users/1", headers={"X-Graphrec-Token": TOKEN}).status_code == 200
    assert anonymous.get("/vibe/users/1", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert anonymous.get("/vibe/users/1", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_without_a_configured_token_the_page_is_disabled(migrated_url: str, artifacts: Path, seeded: Seeded) -> None:
    with TestClient(create_app(migrated_url, artifacts, None)) as c:
        resp = c.get("/vibe/users/1?token=")
        assert resp.status_code == 503 and "GRAPHREC_SERVE_TOKEN" in resp.text
        assert c.get("/v1/users/1/for-you").status_code == 200  # the API does not depend on it


def test_the_user_page_shows_saves_collections_and_todays_picks(client: TestClient, seeded: Seeded) -> None:
    resp = client.get("/vibe/users/1")
    assert resp.status_code == 200
    html = resp.text
    assert "Ada Lovelace" in html and "eligible" in html
    saves = re.findall(r'<figure class="save[^"]*" data-good="(\d+)"', html)
    assert [int(g) for g in saves] == list(range(12, 0, -1))  # newest first
    picks = re.findall(r'<li class="pick[^"]*" data-good="(\d+)"', html)
    assert [int(g) for g in picks] == seeded.picks_new
    assert "because you saved Red thing 1" in html and "shop3.example" in html
    assert f"run #{seeded.run_new} · lightgcn-v2" in html
    assert 'src="/tiles/15.svg"' in html


def test_every_title_collection_name_and_url_is_escaped(client: TestClient, seeded: Seeded) -> None:
    html = client.get(f"/vibe/users/1?compare={seeded.run_old}").text
    assert "<script>window.__xss" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in html
    assert "Summer &lt;b&gt;fits&lt;/b&gt; &amp; &#34;more&#34;" in html
    # Good 14's image URL is javascript:...: never used as an image source.
    assert 'data-good="14"' in html and "javascript:" not in html and 'src="/tiles/14.svg"' in html
    assert "script-src 'self'" in client.get("/vibe/users/1").headers["content-security-policy"]
    # Only the page's own script is loaded.
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/vibe.js" defer>']


def test_two_runs_side_by_side_with_what_they_share(client: TestClient, seeded: Seeded) -> None:
    html = client.get(f"/vibe/users/1?run={seeded.run_new}&compare={seeded.run_old}").text
    columns = re.split(r'<section class="picks" id="picks-\d"', html)[1:]
    assert len(columns) == 2
    first = [int(g) for g in re.findall(r'<li class="pick[^"]*" data-good="(\d+)"', columns[0])]
    second = [int(g) for g in re.findall(r'<li class="pick[^"]*" data-good="(\d+)"', columns[1])]
    assert first == seeded.picks_new and second == seeded.picks_old
    shared = set(first) & set(second)
    assert f"<b>{len(shared)}</b> shared with the other run" in html
    # Good 15 is #1 in the new run and #3 in the old one: each column says where it is in the other.
    assert "#3 there" in columns[0] and "#1 there" in columns[1]
    assert columns[0].count("only here") == len(first) - len(shared)
    assert client.get("/vibe/users/1?compare=").status_code == 200
    assert client.get("/vibe/users/1?compare=abc").status_code == 400


def test_search_by_id_or_name_and_random_eligible_user(client: TestClient) -> None:
    assert client.get("/vibe?q=3").headers["location"] == "/vibe/users/3"
    assert client.get("/vibe?q=lovelace").headers["location"] == "/vibe/users/1"
    html = client.get("/vibe?q=o").text
    assert all(f"/vibe/users/{u}" in html for u in (1, 2, 3, 6)) and "/vibe/users/4" not in html
    assert "/vibe/users/" not in client.get("/vibe?q=%25").text  # a literal %, not a wildcard
    # Eligible: the users the current run picked for (1 and 3).
    targets = {client.get("/vibe/random").headers["location"] for _ in range(12)}
    assert targets <= {"/vibe/users/1", "/vibe/users/3"} and targets
    assert client.get("/vibe/users/999").status_code == 404


def test_tiles_are_generated_svg_with_the_title_as_text(client: TestClient, seeded: Seeded) -> None:
    resp = client.get(f"/tiles/{seeded.xss_good}.svg")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(resp.text)
    tags = {el.tag.split("}")[1] for el in root.iter()}
    assert "script" not in tags and "img" not in tags
    text = "".join(el.text or "" for el in root.iter() if el.tag.endswith("text"))
    assert text.replace(" ", "").startswith("<script>window.__xss=1</script>")  # as text, wrapped over lines
    assert resp.text == client.get(f"/tiles/{seeded.xss_good}.svg").text
    assert XSS_TITLE not in resp.text
    assert client.get("/tiles/999.svg").status_code == 404


def test_tiles_come_from_the_goods_own_columns_never_the_demos_planted_truth(
    client: TestClient, seeded: Seeded, migrated_url: str
) -> None:
    before = {g: client.get(f"/tiles/{g}.svg").text for g in range(1, 42)}
    assert len(set(before.values())) == 41  # every good its own tile
    vec = np.random.default_rng(5).standard_normal(8).astype(np.float32)
    with db.connect(migrated_url, autocommit=True) as conn:
        # Planted styles must not reach the tiles; the good's own embedding must.
        conn.execute("INSERT INTO demo_good_styles (good_id, style) SELECT id, id % 7 FROM goods")
        vec_type = conn.execute(
            "SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute"
            " WHERE attrelid = 'goods'::regclass AND attname = 'embedding'"
        ).fetchone()["t"]
        conn.execute(f"UPDATE goods SET embedding = %s::real[]::{vec_type} WHERE id = 3", (vec.tolist(),))
    after = {g: client.get(f"/tiles/{g}.svg").text for g in range(1, 42)}
    assert {g: t for g, t in after.items() if g != 3} == {g: t for g, t in before.items() if g != 3}
    assert after[3] != before[3]
    assert after[3] == tile_svg(3, "Red thing 3", "shop3.example", embedding=vec.tolist())
    assert before[3] == tile_svg(3, "Red thing 3", "shop3.example")
    assert not [name for name, sql in QUERIES.items() if "demo_" in sql]  # no web query reads the demo's tables
