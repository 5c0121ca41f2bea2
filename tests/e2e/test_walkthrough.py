"""The review-meeting walk-through in headless Chromium: verdict counts, the NaN run with its marker
and fix, two runs compared (selection in the URL), the report exported. Screenshots are saved.
"""

from __future__ import annotations

import time
from pathlib import Path

import dashboard_logs
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from lrdoctor.dashboard import summary
from lrdoctor.dashboard.data import RunStore
from lrdoctor.dashboard.figures import VERDICT_LABELS, first_nonfinite
from lrdoctor.dashboard.views.overview import verdict_counts

SAMPLE_RUNS = Path(__file__).resolve().parents[2] / "sample_runs"
TIMEOUT_S = 40


def _wait(driver, condition, timeout: float = TIMEOUT_S):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def _text_of(driver, css: str) -> str:
    """Text of every element matching ``css`` (read in one script: no stale elements mid-redraw)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent).join(' ');", css
    )


def _wait_download(folder: Path, name: str) -> Path:
    path = folder / name
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if path.exists() and not list(folder.glob("*.crdownload")) and path.stat().st_size > 0:
            return path
        time.sleep(0.2)
    raise AssertionError(
        f"{name} was not downloaded into {folder}: {sorted(p.name for p in folder.iterdir())}"
    )


def walk_through(driver, served, nan_run: str, screenshot, prefix: str) -> None:
    snap = served.store.wait_loaded()
    driver.get(served.url + "/")

    # 1. Overview: one badge per verdict with the store's counts.
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#overview-counts .total"))
    for key, n in verdict_counts(snap).items():
        badge = _wait(driver, lambda d, key=key: d.find_element(By.ID, f"count-{key}"))
        assert badge.text == f"{VERDICT_LABELS[key]}: {n}"
    if snap.warnings:
        assert snap.warnings[0] in _text_of(driver, "#overview-problems")
    _wait(driver, lambda d: d.find_elements(By.LINK_TEXT, nan_run))
    screenshot(driver, f"{prefix}-overview")

    # 2. The NaN run: marker at its first NaN step, and the fix text beside the plot.
    entry = next(e for e in snap.entries if e.name == nan_run)
    nan_step, kind = first_nonfinite(entry.run.signal("loss"))
    driver.find_element(By.LINK_TEXT, nan_run).click()
    _wait(driver, lambda d: d.find_element(By.ID, "run-title").text.startswith(nan_run))
    label = f"{kind} loss at step {nan_step}"
    _wait(driver, lambda d: label in _text_of(d, "#run-graph svg text"))
    fix = summary.top_fix(entry)
    assert fix, f"{nan_run} has no fix to show"
    _wait(driver, lambda d: fix in d.find_element(By.ID, "run-side").text)
    screenshot(driver, f"{prefix}-run-{nan_run}")

    # 3. Compare: tick two runs in the overview, follow the link; the selection is in the URL.
    driver.find_element(By.ID, "nav-overview").click()
    _wait(driver, lambda d: d.find_elements(By.LINK_TEXT, nan_run))
    boxes = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#overview-table input[type=checkbox]"))
    boxes[0].click()
    boxes[1].click()
    first, second = snap.entries[0], snap.entries[1]
    link = driver.find_element(By.ID, "overview-compare-link")
    _wait(driver, lambda d: link.get_attribute("href").endswith(f"/compare?runs={first.id},{second.id}"))
    link.click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#compare-table table.compare"))
    assert driver.current_url.endswith(f"/compare?runs={first.id},{second.id}")
    header = _text_of(driver, "#compare-table thead")
    assert first.name in header and second.name in header
    _wait(driver, lambda d: second.name in _text_of(d, "#compare-graph .legend"))
    screenshot(driver, f"{prefix}-compare")

    # A pasted link opens the same comparison.
    driver.get(f"{served.url}/compare?runs={second.id},{first.id}")
    _wait(driver, lambda d: first.name in _text_of(d, "#compare-table thead"))

    # 4. Export: the HTML report (self-contained, with plots) and the Markdown audit.
    driver.find_element(By.ID, "export-html").click()
    report = _wait_download(driver.downloads, "lrdoctor-audit.html").read_text(encoding="utf-8")
    assert "lrdoctor audit" in report and nan_run in report and fix.split()[0] in report
    assert "Plotly" in report and "<script src=" not in report
    driver.find_element(By.ID, "export-md").click()
    md = _wait_download(driver.downloads, "lrdoctor-audit.md").read_text(encoding="utf-8")
    assert nan_run in md

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], "\n".join(e["message"] for e in errors)


def test_sample_runs(serve_logdir, browser, screenshot):
    if not (SAMPLE_RUNS / "cnn_nan").is_dir():
        pytest.fail(f"{SAMPLE_RUNS}/cnn_nan missing: run sample_runs/make_samples.py")
    served = serve_logdir(SAMPLE_RUNS)
    walk_through(browser, served, "cnn_nan", screenshot, "sample_runs")

    # The LR range test: loss vs LR with the suggested LR marked.
    entry = next(e for e in served.store.snapshot().entries if e.name == "lr_range_test")
    browser.get(f"{served.url}/run/{entry.id}")
    suggested = f"suggested LR {entry.run.hparams['suggested_lr']:.3g}"
    _wait(browser, lambda d: suggested in _text_of(d, "#run-range-graph svg text"))
    screenshot(browser, "sample_runs-range-test")


def test_logdir_with_corrupt_file(tmp_path, serve_logdir, browser, screenshot):
    logdir = dashboard_logs.make_logdir(tmp_path / "logs")
    walk_through(browser, serve_logdir(logdir), "diverged", screenshot, "tmp")


def test_new_and_growing_runs_appear_live(tmp_path, serve_logdir, browser, screenshot):
    loss, grads = dashboard_logs.healthy(50)
    dashboard_logs.write_run(tmp_path, "first", loss, grad_norm=grads)
    served = serve_logdir(tmp_path, refresh_s=1.0)
    served.store.wait_loaded()
    browser.get(served.url + "/")
    _wait(browser, lambda d: d.find_elements(By.LINK_TEXT, "first"))
    assert "1 runs" in browser.find_element(By.CSS_SELECTOR, "#overview-counts .total").text
    dashboard_logs.write_run(tmp_path, "second", *dashboard_logs.nan_at(20, 40)[:1])
    _wait(browser, lambda d: d.find_elements(By.LINK_TEXT, "second"))
    _wait(browser, lambda d: "2 runs" in d.find_element(By.CSS_SELECTOR, "#overview-counts .total").text)
    assert "live" in _text_of(browser, "#overview-table td[data-dash-column=live]")
    screenshot(browser, "live-overview")

    # A growing run: the open run page redraws with the new steps.
    browser.find_element(By.LINK_TEXT, "first").click()
    _wait(browser, lambda d: d.find_element(By.ID, "run-title").text.startswith("first"))
    dashboard_logs.write_run(tmp_path, "first", [float("nan")] * 5, start=50)
    _wait(browser, lambda d: "NaN loss at step 50" in _text_of(d, "#run-graph svg text"))


def test_loading_state_then_table(tmp_path, serve_store, browser, screenshot):
    """While the first read runs the page says so (never blank); the table follows by itself."""
    dashboard_logs.write_run(tmp_path, "only", *dashboard_logs.healthy(30)[:1])
    store = RunStore(tmp_path, refresh_s=1.0)
    store._refresh_lock.acquire()  # stands for a long first read still running
    try:
        served = serve_store(store)
        browser.get(served.url + "/")
        _wait(browser, lambda d: "Reading 1 event files" in _text_of(d, "#overview-counts"))
        assert "reading logdir" in browser.find_element(By.ID, "status").text
        screenshot(browser, "loading")
    finally:
        store._refresh_lock.release()
    _wait(browser, lambda d: d.find_elements(By.LINK_TEXT, "only"))
    assert "1 runs" in _text_of(browser, "#overview-counts")
