from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.report.site.build import ReportSettings, build_site
from tests.conftest import REPO, run_cli
from tests.report.site_fixture import CLAIMS_POLICIES, make_results


class _Collect(HTMLParser):
    """Leaderboard rows (data-* of tr) and every local URL (href/src) of a page."""

    def __init__(self):
        super().__init__()
        self.rows, self.urls = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-suite" in a:
            self.rows.append(a)
        for key in ("href", "src"):
            if a.get(key) and not re.match(r"^[a-z]+:|^#", a[key]):
                self.urls.append(a[key])


def _parse(page: Path) -> _Collect:
    c = _Collect()
    c.feed(page.read_text())
    return c


@pytest.fixture
def site(weird_tmp_path):
    results = make_results(weird_tmp_path)
    index = build_site(ReportSettings(results, weird_tmp_path / "site", claims_policies=CLAIMS_POLICIES))
    return results, index.parent


def test_index_has_one_row_per_csv_row_and_one_table_per_protocol(site):
    results, out = site
    csv_rows = list(csv.DictReader((results / "leaderboard.csv").open()))
    page = (out / "index.html").read_text()
    rows = _parse(out / "index.html").rows
    assert len(rows) == len(csv_rows) > 40
    assert sorted((r["data-policy"], r["data-suite"], r["data-protocol"]) for r in rows) == sorted(
        (r["policy"], r["suite"], r["protocol"]) for r in csv_rows)
    sections = re.findall(r'<section class="protocol" data-protocol="([^"]+)"', page)
    assert sorted(sections) == ["aloha", "libero_oft", "paper_table1"], "one table per protocol, never mixed"
    assert "90.0%" in page and "n=50" in page, "the measured OFT row shows its rate and n"


def test_every_local_link_and_source_on_every_page_exists(site):
    _, out = site
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 7, [p.name for p in pages]  # index, claims, 2 runs, curve, probe, experiment
    for page in pages:
        for url in _parse(page).urls:
            target = (page.parent / url.split("#")[0]).resolve()
            assert target.exists(), f"{page.relative_to(out)} links to missing {url}"


def test_run_page_embeds_its_copied_video_and_lists_failure_reasons(site):
    _, out = site
    page = (out / "runs" / "aloha-run.html").read_text()
    assert re.search(r'<video [^>]*src="aloha-run/videos/task000_ep0000.mp4"', page)
    assert (out / "runs" / "aloha-run" / "videos" / "task000_ep0000.mp4").stat().st_size > 0
    assert "policy_nan" in page and "no success within max steps" in page
    assert "sfbench merge run=aloha-run" in page and "hal" in page


def test_claims_check_the_measured_row_under_the_papers_protocol(site):
    _, out = site
    page = (out / "claims.html").read_text()
    # 45/50 measured vs the paper's 97.6%: the paper rate lies above the interval
    assert "45/50" in page and "measured below the claim" in page


def test_experiment_readme_is_rendered_with_its_figure_and_no_dead_link(site):
    _, out = site
    page = (out / "experiments" / "demo_exp" / "index.html").read_text()
    assert "<table>" in page and 'src="fig/plot.png"' in page
    assert (out / "experiments" / "demo_exp" / "fig" / "plot.png").is_file()
    assert "a missing file" in page and "nothing/here.txt" not in page


def test_rebuild_replaces_a_report_but_never_a_foreign_folder(site, tmp_path):
    results, out = site
    build_site(ReportSettings(results, out))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(InvalidConfig, match="not an sfbench report"):
        build_site(ReportSettings(results, foreign))
    assert (foreign / "keep.txt").read_text() == "x"
    with pytest.raises(MissingAsset):
        build_site(ReportSettings(tmp_path / "nope", tmp_path / "o"))


def test_cli_report_on_the_committed_results(tmp_path):
    out = tmp_path / "site"
    done = run_cli("report", f"report.output_dir={out}")
    assert done.returncode == 0, done.stderr
    assert (out / "index.html").is_file() and (out / "claims.html").is_file()
    assert len(list((out / "runs").glob("*.html"))) >= 20 and len(list((out / "curves").glob("*.png"))) >= 3
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    assert size_mb < 30, f"the site stays small ({size_mb:.1f} MB)"
    bad = run_cli("report", "report.videos=foo", f"report.output_dir={tmp_path / 'x'}")
    assert bad.returncode == 2 and "report.videos" in bad.stderr and not (tmp_path / "x").exists()
    assert REPO.joinpath("configs", "report.yaml").is_file()


def test_curve_page_lists_each_runs_count_and_old_probe_grids_are_said_to_lack_a_colour_bar(site):
    _, out = site
    curve = next((out / "curves").glob("*.html")).read_text()
    assert "<td>11/30</td>" in curve, "points.csv's run_counts (tiny_vla, step 900) are on the page"
    assert "in the legend" in curve
    probe = next((out / "probes").glob("*.html")).read_text()  # the committed probe.json has no grid_scale
    assert "drawn before the colour bar was added" in probe


def test_claims_page_states_the_power_calculations_method_and_design(site):
    _, out = site
    text = re.sub(r"<[^>]+>|\s+", " ", (out / "claims.html").read_text())
    assert "α = 0.05" in text and "80% power" in text and "no continuity correction" in text
    assert "It assumes an unpaired design" in text


def test_report_serve_serves_the_built_site_on_localhost(tmp_path):
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    results = make_results(tmp_path)
    out = tmp_path / "site"
    exe = Path(sys.executable).with_name("sfbench")
    proc = subprocess.Popen([str(exe), "report", "serve", f"results_dir={results}", f"report.output_dir={out}",
                             "report.port=0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline, url = time.monotonic() + 120, None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "sfbench report serve exited before serving"
            found = re.search(r"serving .* at (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        assert url is not None, "no 'serving ... at http://...' line"
        for page in ("index.html", "claims.html", "static/site.js"):
            with urllib.request.urlopen(url + page, timeout=30) as response:
                assert response.status == 200 and response.read() == (out / page).read_bytes(), page
    finally:
        proc.terminate()
        proc.wait(30)
