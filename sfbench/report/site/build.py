"""``sfbench report``: a static site of a results folder that opens from ``file://`` (no server, no CDN).

```
<output_dir>/
  index.html           leaderboard, one table per protocol (name + hash), sortable and filterable
  claims.html          paper rows beside measured rows of the same suite and protocol, with tests
  runs/<slug>.html     one page per run (+ runs/<slug>/ with its per-task figure and videos)
  curves/<slug>.html   one page per curve;  probes/<slug>.html  one page per depth probe
  experiments/<name>/index.html   an experiment's README with its figures
  static/              site.css, site.js (package data of sfbench.report.site)
  .sfbench-report      marks the folder as a report, so a rebuild may replace it
```
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from sfbench.core.errors import InvalidConfig
from sfbench.report.aggregate import Rate
from sfbench.report.site import figures
from sfbench.report.site.claims import build_claims
from sfbench.report.site.experiments import find_experiments, render_readme
from sfbench.report.site.gather import (
    CurveInfo,
    ProbeInfo,
    RunInfo,
    check_results_dir,
    find_curves,
    find_probes,
    load_leaderboard,
    load_runs,
    runs_of_row,
)

log = logging.getLogger(__name__)
MARKER = ".sfbench-report"
VIDEO_MODES = ("copy", "link")


@dataclass(frozen=True)
class ReportSettings:
    """What ``sfbench report`` reads and writes.

    Args:
        results_dir: the results folder (``leaderboard.csv``, ``runs/``, ``experiments/``, ``reference/``).
        output_dir: where the site goes; ``None`` = ``<results_dir>/site``.
        videos: ``copy`` episode videos into the site (self-contained) or ``link`` them relatively.
        max_copy_mb: a video or figure larger than this (MB) is linked instead of copied.
        claims_protocol: the protocol the paper's numbers were measured under.
        claims_baseline: the paper row claimed differences are taken against.
        claims_policies: paper policy name -> sfbench policy name.
    """

    results_dir: Path
    output_dir: Path | None = None
    videos: str = "copy"
    max_copy_mb: float = 20.0
    claims_protocol: str = "libero_oft"
    claims_baseline: str = "OpenVLA-OFT"
    claims_policies: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.videos not in VIDEO_MODES:
            raise InvalidConfig(f"report.videos={self.videos!r}: expected one of {', '.join(VIDEO_MODES)}")
        if self.max_copy_mb < 0:
            raise InvalidConfig(f"report.max_copy_mb={self.max_copy_mb}: must be >= 0")

    @property
    def out(self) -> Path:
        """The output folder."""
        return self.output_dir if self.output_dir is not None else self.results_dir / "site"


def _pct(x: float | str) -> str:
    return f"{100 * float(x):.1f}"


def _env() -> Environment:
    env = Environment(loader=PackageLoader("sfbench.report.site", "templates"), autoescape=select_autoescape(),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = _pct
    return env


def _prepare(out: Path) -> None:
    """Empty ``out`` if it is an earlier report; refuse a non-empty folder that is not one."""
    if out.exists() and not out.is_dir():
        raise InvalidConfig(f"report.output_dir={out} is a file")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InvalidConfig(f"report.output_dir={out} is a non-empty folder that is not an sfbench report; "
                                "name an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by sfbench report; rebuilt (emptied) by the next one\n")
    static = out / "static"
    static.mkdir()
    for item in resources.files("sfbench.report.site").joinpath("static").iterdir():
        (static / item.name).write_bytes(item.read_bytes())


def _place_file(src: Path, dest: Path, page_dir: Path, *, copy: bool, max_copy_mb: float) -> str:
    """Copy ``src`` to ``dest`` (or link it when too big or ``copy`` is off); the URL relative to ``page_dir``."""
    if copy and src.stat().st_size <= max_copy_mb * 2**20:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        return dest.relative_to(page_dir).as_posix()
    return Path(os.path.relpath(src.resolve(), page_dir.resolve())).as_posix()


class SiteWriter:
    """Writes the pages of one report."""

    def __init__(self, s: ReportSettings):
        self.s, self.out, self.env = s, s.out, _env()

    def page(self, rel: str, template: str, **context: Any) -> Path:
        """Render ``template`` to ``<out>/<rel>``; ``root`` is the relative path back to the site root."""
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        root = "../" * (len(Path(rel).parts) - 1)
        path.write_text(self.env.get_template(template).render(root=root, **context))
        return path

    def run_page(self, run: RunInfo, comparable: list[RunInfo]) -> None:
        """``runs/<slug>.html`` with the per-task figure and the episodes' videos."""
        assets = self.out / "runs" / run.slug
        assets.mkdir(parents=True, exist_ok=True)
        figures.plot_tasks(run.summary["tasks"], assets / "tasks.png", title=run.run_id)
        videos = []
        for r in run.records:
            if r.video_path and (run.path / r.video_path).is_file():
                url = _place_file(run.path / r.video_path, assets / r.video_path, self.out / "runs",
                                  copy=self.s.videos == "copy", max_copy_mb=self.s.max_copy_mb)
                videos.append((r, url))
        compare = [f"sfbench compare runs=[{run.run_id},{o.run_id}] output_dir={run.path.parent}" for o in comparable]
        self.page(f"runs/{run.slug}.html", "run.html", run=run, videos=videos, compare=compare,
                  title=f"run {run.run_id}")

    def curve_page(self, curve: CurveInfo, runs_by_id: dict[str, RunInfo]) -> None:
        """``curves/<slug>.html`` with its figure re-drawn from ``points.csv`` (n per point, per-seed dots)."""
        seeds = {rid: Rate.of(sum(r.success for r in info.records), len(info.records))
                 for rid, info in runs_by_id.items()}
        thresholds = sorted({c["threshold"] for c in curve.meta.get("crossings", [])})
        png = self.out / "curves" / f"{curve.slug}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        title = f"{curve.meta.get('kind', 'curve')}: {curve.meta.get('suite', '')} ({curve.meta.get('protocol', '')})"
        figures.plot_curve(curve.points, seeds, png, title=title, thresholds=thresholds,
                           log_x=curve.meta.get("kind") == "data_efficiency")
        self.page(f"curves/{curve.slug}.html", "curve.html", curve=curve, x_name=figures.x_name(curve.points),
                  runs_by_id=runs_by_id, title=f"curve {curve.slug}")

    def probe_page(self, probe: ProbeInfo) -> None:
        """``probes/<slug>.html``: the metrics table and the grids."""
        grids = {label: _place_file(p, self.out / "probes" / probe.slug / p.name, self.out / "probes",
                                    copy=True, max_copy_mb=self.s.max_copy_mb) for label, p in probe.grids.items()}
        self.page(f"probes/{probe.slug}.html", "probe.html", probe=probe, grids=grids, title=f"probe {probe.slug}")


Rows = list[tuple[dict[str, str], list[RunInfo]]]


def _protocol_groups(row_runs: Rows) -> list[tuple[tuple[str, str], Rows]]:
    """Rows with their runs, grouped by (protocol, protocol hash): one leaderboard table each."""
    groups: dict[tuple[str, str], Rows] = defaultdict(list)
    for row, runs in row_runs:
        groups[(row["protocol"], row["protocol_hash"])].append((row, runs))
    return sorted(groups.items(), key=lambda g: g[0])


def _comparable(run: RunInfo, runs: list[RunInfo]) -> list[RunInfo]:
    """Other runs in the same folder with the same suite, task set and protocol hash (``sfbench compare`` pairs)."""
    key = {(k[3], k[4], k[6]) for k in run.cell_keys}
    return [o for o in runs if o is not run and o.path.parent == run.path.parent
            and {(k[3], k[4], k[6]) for k in o.cell_keys} == key]


def build_site(s: ReportSettings) -> Path:
    """Write the report of ``s.results_dir`` into ``s.out`` and return the index page."""
    check_results_dir(s.results_dir)
    _prepare(s.out)
    w = SiteWriter(s)
    rows, runs = load_leaderboard(s.results_dir), load_runs(s.results_dir)
    row_runs = [(row, runs_of_row(row, runs) if row["source"] == "measured" else []) for row in rows]
    for run in runs:
        w.run_page(run, _comparable(run, runs)[:3])
    by_id = {r.run_id: r for r in runs}
    curves, probes = find_curves(s.results_dir, skip=s.out), find_probes(s.results_dir, skip=s.out)
    for curve in curves:
        w.curve_page(curve, by_id)
    for probe in probes:
        w.probe_page(probe)
    experiments = find_experiments(s.results_dir)
    for e in experiments:
        html = render_readme(e, s.out / "experiments" / e.name, s.max_copy_mb)
        w.page(f"experiments/{e.name}/index.html", "experiment.html", experiment=e, body=html, title=e.title)
    claims = build_claims(rows, s.claims_protocol, s.claims_baseline, s.claims_policies)
    w.page("claims.html", "claims.html", claims=claims, settings=s, title="claims")
    index = w.page("index.html", "index.html", groups=_protocol_groups(row_runs), n_rows=len(rows), runs=runs,
                   curves=curves, probes=probes, experiments=experiments, title="leaderboard")
    log.info("Report: %d leaderboard rows, %d runs, %d curves, %d probes, %d experiments -> %s",
             len(rows), len(runs), len(curves), len(probes), len(experiments), s.out)
    return index
