"""Real app, real headless Chromium: a server thread per test and a selenium driver.

Chromium and chromedriver are the Debian packages (/usr/bin); nothing is downloaded. Tests
save screenshots under the git-ignored ``artifacts/screenshots``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from lrdoctor.dashboard.app import build_app
from lrdoctor.dashboard.data import RunStore

CHROMIUM = os.environ.get("LRDOCTOR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LRDOCTOR_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,1100",
)
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "screenshots"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


class Served:
    """A running app: its base URL and its store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.app = build_app(store)
        self._server = make_server("127.0.0.1", 0, self.app.server, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def serve_store() -> Iterator:
    """``serve_store(store) -> Served``: the app over a store the test controls (no load started)."""
    served: list[Served] = []

    def start(store: RunStore) -> Served:
        served.append(Served(store))
        return served[-1]

    yield start
    for s in served:
        s.close()


@pytest.fixture
def serve_logdir(serve_store) -> Callable:
    """``serve_logdir(path, refresh_s=10) -> Served``: the app over a logdir, loaded in the background."""

    def start(path: str | os.PathLike, refresh_s: float = 10.0) -> Served:
        store = RunStore(path, refresh_s=refresh_s)
        store.load_in_background()
        return serve_store(store)

    return start


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    """Headless Chromium driven by selenium; downloads go to ``tmp_path / "downloads"``."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian packages chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in CHROME_ARGS:
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    opts.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot():
    """``screenshot(driver, name) -> Path``: save a PNG of the page under artifacts/screenshots/."""

    def save(driver, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        driver.save_screenshot(str(path))
        return path

    return save
