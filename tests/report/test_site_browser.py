"""The report in a real browser: Debian's headless Chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfbench.report.site.build import ReportSettings, build_site
from tests.report.site_fixture import CLAIMS_POLICIES, make_results

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
# As root in a container: no sandbox; nothing may reach the network or a GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    results = make_results(root)
    index = build_site(ReportSettings(results, root / "site", claims_policies=CLAIMS_POLICIES))
    return results, index.parent


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium for these tests")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM), headless=True,
                                                       args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        yield context
        context.close()


def _open(browser, page_path: Path):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed {r.url}"))
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def test_index_loads_without_console_errors_and_shows_the_csv_rows(browser, site):
    results, out = site
    page, errors = _open(browser, out / "index.html")
    assert errors == []
    n_csv = len(list(csv.DictReader((results / "leaderboard.csv").open())))
    assert page.locator("table.leaderboard tbody tr").count() == n_csv
    assert page.inner_text("#shown") == f"{n_csv} of {n_csv} rows"
    page.close()


def test_a_filter_narrows_the_table_and_hides_other_protocols(browser, site):
    _, out = site
    page, errors = _open(browser, out / "index.html")
    page.select_option("select[data-filter=suite]", "aloha_transfer_cube")
    visible = page.locator("table.leaderboard tbody tr:visible")
    assert visible.count() == 1 and "tiny_vla" in visible.first.inner_text()
    assert page.locator("section.protocol:visible").count() == 1
    page.select_option("select[data-filter=suite]", "")
    page.select_option("select[data-filter=policy]", "OpenVLA-OFT")
    assert page.locator("table.leaderboard tbody tr:visible").count() == 5  # the paper's 4 suites + overall
    page.fill("#search", "libero_goal")
    assert page.locator("table.leaderboard tbody tr:visible").count() == 1
    assert errors == []
    page.close()


def test_sorting_a_column_orders_the_rows(browser, site):
    _, out = site
    page, _ = _open(browser, out / "index.html")
    table = page.locator("section.protocol[data-protocol=paper_table1] table")
    table.locator("th", has_text="success").click()
    rates = [float(v) for v in table.locator("tbody tr td:nth-child(6)").evaluate_all(
        "cells => cells.map(c => c.getAttribute('data-sort'))")]
    assert rates == sorted(rates) and len(rates) > 10
    page.close()


def test_every_link_image_and_video_resolves_in_the_browser(browser, site):
    _, out = site
    pages = sorted(out.rglob("*.html"))
    checked_videos = 0
    for path in pages:
        page, errors = _open(browser, path)
        assert errors == [], f"{path.name}: {errors}"
        for href in page.locator("a[href]").evaluate_all("as => as.map(a => a.href)"):
            if href.startswith("file://"):
                target = Path(href.removeprefix("file://").split("#")[0])
                assert target.exists(), f"{path.relative_to(out)} links to missing {href}"
        broken = page.locator("img").evaluate_all("imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0)"
                                                  ".map(i => i.src)")
        assert broken == [], f"{path.relative_to(out)}: images that do not load: {broken}"
        for video in page.locator("video").all():
            video.evaluate("v => new Promise((ok, bad) => { if (v.readyState >= 1) ok(); "
                           "v.onloadedmetadata = ok; v.onerror = () => bad(v.error && v.error.code); v.load(); })")
            assert video.evaluate("v => v.duration") > 0
            checked_videos += 1
        page.close()
    assert checked_videos == 1, "the ALOHA run's one video plays"


def test_a_screenshot_of_the_index_is_not_blank(browser, site, tmp_path):
    _, out = site
    page, _ = _open(browser, out / "index.html")
    png = page.screenshot(full_page=False)
    page.close()
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert img.shape[:2] == (900, 1280)
    assert img.std() > 20 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50, "a blank or one-colour page"
    shutil.copy(out / "index.html", tmp_path / "index.html")  # the page the screenshot shows, for a failure's debug
