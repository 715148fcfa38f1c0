"""The vibe-check page in headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

The app runs under uvicorn in a background thread on a free loopback port. Screenshots go to test-output/.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from click.testing import CliRunner
from seeded_app import TOKEN, XSS_TITLE, Seeded, seed

from graphrec.app.cli import cli
from graphrec.core import db
from graphrec.core.artifacts import Embeddings
from serving.web.main import create_app

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
OUTPUT = Path(__file__).resolve().parents[3] / "test-output"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1500,1100",
    "--hide-scrollbars",
]

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        "headless Chromium is not installed: apt-get install chromium chromium-driver (`make browser-deps`)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(url: str, artifacts: Path) -> Iterator[str]:
    """The app under uvicorn in a background thread; yields its base URL."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(url, artifacts, TOKEN),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(migrated_url: str, artifacts: Path) -> Iterator[tuple[str, Seeded]]:
    """Base URL of the app serving the planted database of seeded_app.seed, and what was seeded."""
    seeded = seed(migrated_url, artifacts)
    with serving(migrated_url, artifacts) as base:
        yield base, seeded


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _texts(driver, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [el.text for el in driver.find_elements(By.CSS_SELECTOR, css)]


def _images_loaded(driver) -> bool:
    """Every image on the page loaded (lazy ones are asked for first): none failed, none pending."""
    return driver.execute_script(
        "document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; });"
        "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    )


def test_the_page_shows_saves_and_picks_and_does_not_run_a_hostile_title(server, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, seeded = server
    browser.get(f"{base}/vibe/users/1?token={TOKEN}")
    assert browser.current_url == f"{base}/vibe/users/1"  # the token went into a cookie
    assert browser.find_element(By.ID, "user-name").text == "Ada Lovelace"
    saves = browser.find_elements(By.CSS_SELECTOR, "#saves figure")
    assert len(saves) == 12
    picks = browser.find_elements(By.CSS_SELECTOR, "#picks-1 li.pick")
    assert [int(p.get_attribute("data-good")) for p in picks] == seeded.picks_new
    titles = _texts(browser, "#picks-1 li.pick .title")
    assert titles[0] == "Red thing 15"
    assert titles[1] == XSS_TITLE  # shown as text ...
    assert browser.execute_script("return window.__xss") is None  # ... never run
    assert "because you saved Red thing 1" in _texts(browser, "#picks-1 .reason")[0]
    assert "Summer <b>fits</b>" in browser.find_element(By.ID, "collections").text
    WebDriverWait(browser, 10).until(_images_loaded)  # every tile came from the app itself
    sources = browser.execute_script("return [...document.images].map(i => i.src)")
    assert sources and all(s.startswith(f"{base}/tiles/") for s in sources)
    OUTPUT.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(OUTPUT / "vibe-user.png"))


def test_choosing_a_second_run_puts_its_picks_beside_the_first(server, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, seeded = server
    browser.get(f"{base}/vibe/users/1?token={TOKEN}")
    assert not browser.find_elements(By.ID, "picks-2")
    Select(browser.find_element(By.ID, "run-b")).select_by_value(str(seeded.run_old))  # submits on change
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "picks-2"))
    assert browser.current_url.endswith(f"compare={seeded.run_old}")
    second = browser.find_elements(By.CSS_SELECTOR, "#picks-2 li.pick")
    assert [int(p.get_attribute("data-good")) for p in second] == seeded.picks_old
    assert "pinsage-v1" in browser.find_element(By.CSS_SELECTOR, "#picks-2 h2").text
    assert "lightgcn-v2" in browser.find_element(By.CSS_SELECTOR, "#picks-1 h2").text
    shared = len(set(seeded.picks_new) & set(seeded.picks_old))
    assert f"{shared} shared with the other run" in browser.find_element(By.CSS_SELECTOR, "#picks-1 .summary").text
    assert browser.execute_script("return window.__xss") is None
    WebDriverWait(browser, 10).until(_images_loaded)
    OUTPUT.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(OUTPUT / "vibe-compare.png"))


def test_sign_in_search_and_random_user(server, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = server
    browser.get(f"{base}/vibe")
    assert "Enter the token" in browser.page_source and "Ada" not in browser.page_source
    box = browser.find_element(By.NAME, "token")
    box.send_keys(TOKEN, Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "q"))
    assert "Look at someone" in browser.page_source
    search = browser.find_element(By.ID, "q")
    search.send_keys("cy you", Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/vibe/users/3"))
    assert browser.find_element(By.ID, "user-name").text == "Cy Young"
    browser.find_element(By.ID, "random").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#picks-1 li.pick"))
    assert browser.current_url.rsplit("/", 1)[1] in {"1", "3"}  # users with picks in the current run


def content_embeddings(url: str, recent: int, version: str) -> Embeddings:
    """A stand-in model from the demo's CLIP vectors: a user is the mean of their `recent` newest saves."""
    with db.connect(url) as conn:
        goods = conn.execute(
            "SELECT id, embedding::real[] AS e FROM goods WHERE deleted_at IS NULL AND embedding IS NOT NULL"
            " ORDER BY id"
        ).fetchall()
        saves = conn.execute("SELECT user_id, good_id FROM saves ORDER BY user_id, saved_at").fetchall()
        users = [r["id"] for r in conn.execute("SELECT id FROM users ORDER BY id").fetchall()]
    good_ids = np.array([g["id"] for g in goods], dtype=np.int64)
    good_vecs = np.array([g["e"] for g in goods], dtype=np.float32)
    good_vecs /= np.linalg.norm(good_vecs, axis=1, keepdims=True) + 1e-9
    row = {g: i for i, g in enumerate(good_ids.tolist())}
    saved: dict[int, list[int]] = {}
    for r in saves:
        if r["good_id"] in row:
            saved.setdefault(r["user_id"], []).append(row[r["good_id"]])
    user_vecs = np.zeros((len(users), good_vecs.shape[1]), dtype=np.float32)
    for i, u in enumerate(users):
        if saved.get(u):
            v = good_vecs[saved[u][-recent:]].mean(axis=0)
            user_vecs[i] = v / (np.linalg.norm(v) + 1e-9)
    known = np.ones(len(good_ids), dtype=bool)
    return Embeddings("content", version, np.array(users, dtype=np.int64), user_vecs, good_ids, good_vecs, known)


def test_a_demo_user_with_two_real_recommend_runs(migrated_url: str, artifacts: Path, browser) -> None:
    """`graphrec demo-data` and two `graphrec recommend` runs (from stand-in embeddings), then the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    env = {"GRAPHREC_DATABASE_URL": migrated_url, "GRAPHREC_PATHS__ARTIFACTS": str(artifacts)}
    runner = CliRunner()
    result = runner.invoke(cli, ["demo-data", "--users", "120", "--goods", "2000", "--seed", "3"], env=env)
    assert result.exit_code == 0, result.output
    for recent, version in ((1000, "content-all-v1"), (8, "content-recent-v2")):
        path = artifacts / f"{version}.npz"
        content_embeddings(migrated_url, recent, version).save(path)
        result = runner.invoke(cli, ["recommend", "--embeddings", str(path)], env=env)
        assert result.exit_code == 0, result.output
    with db.connect(migrated_url) as conn:
        old, new = (r["id"] for r in conn.execute("SELECT id FROM graphrec_runs ORDER BY id").fetchall())
        user = conn.execute(
            "SELECT p.user_id, u.name, count(*) AS n FROM graphrec_picks p JOIN users u ON u.id = p.user_id"
            " WHERE p.run_id = %s GROUP BY 1, 2 ORDER BY 1 LIMIT 1",
            (new,),
        ).fetchone()
        newest = conn.execute(
            "SELECT good_id FROM saves WHERE user_id = %s ORDER BY saved_at DESC LIMIT 1", (user["user_id"],)
        ).fetchone()["good_id"]

    with serving(migrated_url, artifacts) as base:
        browser.get(f"{base}/vibe?token={TOKEN}")
        samples = browser.find_elements(By.CSS_SELECTOR, "#samples a")
        assert samples and browser.find_elements(By.CSS_SELECTOR, "#samples img.tile")
        browser.get(f"{base}/vibe/users/{user['user_id']}")
        assert browser.find_element(By.ID, "user-name").text == user["name"]
        assert browser.find_element(By.CSS_SELECTOR, "#saves figure").get_attribute("data-good") == str(newest)
        picks = browser.find_elements(By.CSS_SELECTOR, "#picks-1 li.pick")
        assert len(picks) == user["n"] >= 5
        reasons = _texts(browser, "#picks-1 .reason")
        assert all(r.strip() for r in reasons)  # every pick says why
        Select(browser.find_element(By.ID, "run-b")).select_by_value(str(old))
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "picks-2"))
        assert "content-all-v1" in browser.find_element(By.CSS_SELECTOR, "#picks-2 h2").text
        assert "content-recent-v2" in browser.find_element(By.CSS_SELECTOR, "#picks-1 h2").text
        assert browser.find_elements(By.CSS_SELECTOR, "#picks-2 li.pick")
        WebDriverWait(browser, 20).until(_images_loaded)
        OUTPUT.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(OUTPUT / "vibe-demo-compare.png"))
