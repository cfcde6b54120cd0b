"""What the report shows, read from a results folder: leaderboard rows, runs, curves and probes.

Nothing here writes: every function reads the committed files (``leaderboard.csv``, run
directories, ``curve.json`` / ``points.csv``, ``probe.json``) and returns plain data for the pages.
"""

from __future__ import annotations

import csv
import json
import logging
import shlex
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sfbench.core.errors import MissingAsset, SfbenchError
from sfbench.eval.records import EpisodeRecord
from sfbench.eval.rundir import RunDir
from sfbench.report.aggregate import aggregate
from sfbench.report.leaderboard import ALL_TASKS, _config_id, measured_rows, paper_rows, task_set

log = logging.getLogger(__name__)

LEADERBOARD_CSV = "leaderboard.csv"
# Episodes that ended without success and without an error ran out of steps (the protocol's max).
NO_SUCCESS = "no success within max steps"


@dataclass
class RunInfo:
    """One evaluation run directory and everything its page shows."""

    slug: str
    path: Path
    run_id: str
    records: list[EpisodeRecord]
    summary: dict[str, Any]
    cell_keys: set[tuple[str, ...]]
    config_yaml: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)

    @property
    def first(self) -> EpisodeRecord:
        """The first record (policy, suite, protocol are one per run)."""
        return self.records[0]

    @property
    def outcomes(self) -> list[tuple[str, int]]:
        """Episode outcomes, most frequent first: ``success``, each failure reason, or :data:`NO_SUCCESS`."""
        labels = Counter("success" if r.success else (r.failure_reason or NO_SUCCESS) for r in self.records)
        return labels.most_common()

    @property
    def versions(self) -> list[dict[str, str]]:
        """The distinct package-version sets of the run's records."""
        seen: list[dict[str, str]] = []
        for r in self.records:
            if r.versions not in seen:
                seen.append(r.versions)
        return seen

    def resume_command(self) -> str:
        """The command that resumes (or re-checks) the run: its own overrides, quoted for a shell."""
        return " ".join(["sfbench", "eval", *(shlex.quote(o) for o in self.overrides)]) if self.overrides else ""

    def merge_command(self) -> str:
        """``sfbench merge`` of this run."""
        return f"sfbench merge run={shlex.quote(self.run_id)} output_dir={shlex.quote(str(self.path.parent))}"


def runs_dirs(results_dir: Path) -> list[Path]:
    """The folders that hold run directories: ``runs/`` and every ``experiments/*/runs``."""
    return [results_dir / "runs", *sorted(results_dir.glob("experiments/*/runs"))]


def _slug(results_dir: Path, run_dir: Path) -> str:
    parts = run_dir.relative_to(results_dir).parts  # ('runs', id) or ('experiments', name, 'runs', id)
    return "--".join(p for p in parts if p not in ("runs", "experiments"))


def load_run(results_dir: Path, run_dir: Path) -> RunInfo | None:
    """Read one run directory; ``None`` (with a warning) when it has no readable records."""
    run = RunDir(run_dir)
    try:
        records = run.load_records()
        config = _config_id(run)
        command = run.load_command() if run.has_command() else {}
    except (OSError, ValueError, SfbenchError) as e:
        log.warning("Report skips run %s: it cannot be read (%s: %s)", run_dir, type(e).__name__, e)
        return None
    if not records:
        log.warning("Report skips run %s: no episode records", run_dir)
        return None
    suites = {r.suite for r in records}
    tasks = {s: task_set(s, {r.task_id for r in records if r.suite == s}) for s in suites}
    keys = {(r.policy, r.checkpoint, config, r.suite, tasks[r.suite], r.protocol, r.protocol_hash) for r in records}
    protocol_file = run_dir / "protocol.json"
    return RunInfo(
        slug=_slug(results_dir, run_dir), path=run_dir, run_id=run_dir.name, records=records,
        summary=aggregate(records), cell_keys=keys,
        config_yaml=run.config.read_text() if run.config.is_file() else "",
        protocol=json.loads(protocol_file.read_text()) if protocol_file.is_file() else {},
        overrides=list(command.get("overrides", [])),
    )


def load_runs(results_dir: Path) -> list[RunInfo]:
    """Every readable run under :func:`runs_dirs`, in path order."""
    dirs = sorted(p for d in runs_dirs(results_dir) if d.is_dir() for p in d.iterdir() if p.is_dir())
    return [info for d in dirs if (info := load_run(results_dir, d)) is not None]


def load_leaderboard(results_dir: Path) -> list[dict[str, str]]:
    """The rows of ``<results_dir>/leaderboard.csv``, or, without one, the rows it would hold."""
    path = results_dir / LEADERBOARD_CSV
    if path.is_file():
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    log.info("No %s: computing the leaderboard rows from the runs (sfbench leaderboard writes it)", path)
    rows = measured_rows(*runs_dirs(results_dir)) + paper_rows(results_dir / "reference")
    return [{k: str(v) for k, v in asdict(r).items()} for r in rows]


def row_key(row: dict[str, str]) -> tuple[str, ...]:
    """A leaderboard row's cell key, as :attr:`RunInfo.cell_keys` holds it."""
    return tuple(row[k] for k in ("policy", "checkpoint", "policy_config", "suite", "tasks", "protocol",
                                  "protocol_hash"))


def runs_of_row(row: dict[str, str], runs: list[RunInfo]) -> list[RunInfo]:
    """The runs whose episodes a measured row counts (the four suites' runs for ``libero_overall``)."""
    key = row_key(row)
    if row["suite"] == "libero_overall":
        return [r for r in runs if any(k[:3] == key[:3] and k[4:] == (ALL_TASKS, *key[5:]) for k in r.cell_keys)]
    return [r for r in runs if key in r.cell_keys]


@dataclass(frozen=True)
class CurveInfo:
    """A written curve folder: ``curve.json`` and its ``points.csv``."""

    slug: str
    folder: Path
    meta: dict[str, Any]
    points: list[dict[str, str]]


def find_curves(results_dir: Path, skip: Path | None = None) -> list[CurveInfo]:
    """Every ``curve.json`` under ``results_dir`` with a ``points.csv`` beside it."""
    found = []
    for path in sorted(results_dir.rglob("curve.json")):
        if skip is not None and skip in path.parents:
            continue
        points = path.with_name("points.csv")
        if not points.is_file():
            log.warning("Report skips curve %s: no points.csv beside it", path)
            continue
        with points.open(newline="") as f:
            rows = list(csv.DictReader(f))
        slug = "--".join(path.parent.relative_to(results_dir).parts)
        found.append(CurveInfo(slug, path.parent, json.loads(path.read_text()), rows))
    return found


@dataclass(frozen=True)
class ProbeInfo:
    """A written probe folder: ``probe.json`` and its grid PNGs (looked up beside it by file name)."""

    slug: str
    folder: Path
    meta: dict[str, Any]
    grids: dict[str, Path]


def find_probes(results_dir: Path, skip: Path | None = None) -> list[ProbeInfo]:
    """Every ``probe.json`` under ``results_dir``; grids that are not beside it are left out."""
    found = []
    for path in sorted(results_dir.rglob("probe.json")):
        if skip is not None and skip in path.parents:
            continue
        meta = json.loads(path.read_text())
        grids = {label: path.with_name(Path(p).name) for label, p in meta.get("grids", {}).items()}
        slug = "--".join(path.parent.relative_to(results_dir).parts)
        found.append(ProbeInfo(slug, path.parent, meta, {k: v for k, v in grids.items() if v.is_file()}))
    return found


def check_results_dir(results_dir: Path) -> None:
    """Raise :class:`MissingAsset` when ``results_dir`` holds nothing a report can show."""
    if not results_dir.is_dir():
        raise MissingAsset(f"results_dir={results_dir} is not a folder (the committed results are in results/)")
    if not (results_dir / LEADERBOARD_CSV).is_file() and not any(d.is_dir() for d in runs_dirs(results_dir)) \
            and not (results_dir / "reference").is_dir():
        raise MissingAsset(f"results_dir={results_dir} has no {LEADERBOARD_CSV}, runs/, experiments/*/runs "
                           "or reference/: nothing to report (run sfbench eval or sfbench leaderboard first)")
