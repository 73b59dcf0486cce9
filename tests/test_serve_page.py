"""The search page in a real browser: headless Chromium (Debian's chromium + chromium-driver) through Selenium,
against the real server. Skipped where Chromium is missing, except in CI (CI=true), where it must run. The
screenshot goes to $OPENBIND_SCREENSHOTS when set."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(module: str):
    if IN_CI:
        return __import__(module)
    return pytest.importorskip(module)


for _module in ("faiss", "av", "fastapi", "uvicorn", "multipart", "prometheus_client", "httpx", "selenium"):
    _require(_module)

import httpx  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from openbind.serve import BatchSettings, ServeSettings, create_app  # noqa: E402
from openbind.serve.server import running  # noqa: E402
from serve_world import build_world  # noqa: E402


def _executables() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = "headless Chromium is absent (apt-get install chromium chromium-driver)"
    if IN_CI:
        pytest.fail(f"{reason}: .ci/run installs them, so CI must run this test")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    binary, driver_path = _executables()
    options = Options()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _tiles(driver) -> list[tuple[int, str, float]]:
    """(id, kind, score) of every result tile, in page order."""
    found = []
    for tile in driver.find_elements(By.CSS_SELECTOR, ".tile"):
        kind = tile.find_element(By.CSS_SELECTOR, ".kind").text.strip().lower()
        found.append((int(tile.get_attribute("data-id")), kind, float(tile.find_element(By.CSS_SELECTOR, ".score").text)))
    return found


def _settled(driver, test) -> None:
    """Wait until the page says how many results it found and `test(tiles)` holds."""
    WebDriverWait(driver, 30).until(
        lambda d: "results in" in d.find_element(By.ID, "message").text and test(_tiles(d))
    )


def test_page_text_files_filter_and_minus_term(browser, tmp_path):
    world = build_world(tmp_path / "world")
    data = world / "data"
    settings = ServeSettings(batching=BatchSettings(max_wait_ms=2))
    with running(create_app(world / "index", settings=settings)) as url:
        browser.get(url + "/")
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#filter input"))
        box = browser.find_element(By.ID, "text")
        box.send_keys("a dog barking\n")
        _settled(browser, lambda tiles: len(tiles) >= 8)
        scores = [score for _, _, score in _tiles(browser)]
        assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)

        browser.find_element(By.ID, "pick").send_keys(f"{data / 'red.jpg'}\n{data / 'bark.wav'}")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#basket .term")) == 3
        for kind in [box.get_attribute("value") for box in browser.find_elements(By.CSS_SELECTOR, "#filter input")]:
            if kind != "audio":
                browser.find_element(By.CSS_SELECTOR, f"#filter input[value={kind}]").click()
        box.send_keys("engine")
        browser.find_element(By.ID, "minus-text").click()
        _settled(browser, lambda tiles: tiles and {kind for _, kind, _ in tiles} == {"audio"})
        assert len(browser.find_elements(By.CSS_SELECTOR, "#basket .term.negative")) == 1
        assert "only=audio" in browser.current_url and "engine" in browser.current_url

        # the page shows what the API answers for the same query
        query = {"query": [{"text": "a dog barking"}, {"file": 0}, {"file": 1}, {"text": "engine", "weight": -1}],
                 "k": 24, "modalities": ["audio"]}  # fmt: skip
        files = [("image", ("red.jpg", (data / "red.jpg").read_bytes())), ("audio", ("bark.wav", (data / "bark.wav").read_bytes()))]
        expected = httpx.post(f"{url}/v1/search", data={"json": json.dumps(query)}, files=files).json()["results"]
        tiles = _tiles(browser)
        assert [t[0] for t in tiles] == [r["id"] for r in expected]
        assert [t[2] for t in tiles] == [round(r["score"], 3) for r in expected]

        shot = Path(os.environ.get("OPENBIND_SCREENSHOTS", tmp_path)) / "serve_page.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

        similar = browser.find_elements(By.CSS_SELECTOR, ".tile .similar")[0]
        first = tiles[0][0]
        similar.click()
        _settled(browser, lambda tiles: tiles and first not in [t[0] for t in tiles])
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors

        # the API docs render from this server's files alone
        browser.get(url + "/docs")
        WebDriverWait(browser, 30).until(lambda d: "/v1/search" in [e.text for e in d.find_elements(
            By.CSS_SELECTOR, ".opblock-summary-path")])  # fmt: skip
        fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert fetched and all(name.startswith(url + "/") for name in fetched), fetched
