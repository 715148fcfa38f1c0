"""The vibe-check page in headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

The app runs under uvicorn in a background thread on a free loopback port. Screenshots go to test-output/.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from test_api import TOKEN, XSS_TITLE, Seeded, seed

from serving.api import create_app

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
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


@pytest.fixture
def server(migrated_url: str, artifacts: Path) -> Iterator[tuple[str, Seeded]]:
    """Base URL of the app serving a seeded database, and what was seeded."""
    seeded = seed(migrated_url, artifacts)
    port = _free_port()
    config = uvicorn.Config(
        create_app(migrated_url, artifacts, TOKEN),
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
        yield f"http://127.0.0.1:{port}", seeded
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


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
    return driver.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)")


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
    assert (
        f"{shared} shared with the other run"
        in browser.find_element(By.CSS_SELECTOR, "#picks-1 .summary").text
    )
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
