"""``results/leaderboard.csv``: measured runs and the paper's reference rows, never mixing protocols."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from sfbench import __version__
from sfbench.config.tree import group_choices, load_suite
from sfbench.core.errors import SfbenchError
from sfbench.eval.records import EpisodeRecord, Located, dedupe, sfbench_versions
from sfbench.eval.rundir import RunDir
from sfbench.report.aggregate import Rate, rate_of, wilson_interval

log = logging.getLogger(__name__)

# LIBERO "overall" = mean of these four suites (libero_90 excluded), as in the papers.
LIBERO_OVERALL = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
PAPER_TRIALS_PER_SUITE = 500
PAPER_TRIALS_PER_TASK = 50
ALL_TASKS = "all"
PAPER_PROTOCOL = "paper_table1"


@dataclass(frozen=True)
class Row:
    """One leaderboard row: a (policy, checkpoint, policy config, suite, task set, protocol) cell.

    ``policy_config`` is a short hash of the runs' whole policy config (``""`` when unknown), so
    runs that differ in any policy setting never share a cell.
    ``tasks`` is ``all`` for the whole suite, else the task ids (``0-2,5``): a score over some
    tasks is never shown as a suite score. ``episodes_per_task`` is one number, or ``min-max``.
    ``sfbench_version`` is the version (or versions) that recorded the episodes; for a paper row, the
    version that read the table.
    """

    policy: str
    checkpoint: str
    policy_config: str
    suite: str
    tasks: str
    episodes_per_task: str
    protocol: str
    protocol_hash: str
    n_episodes: int
    success_rate: float
    ci_low: float
    ci_high: float
    source: str
    date: str
    sfbench_version: str


def _row(key: tuple[str, ...], rate: Rate, source: str, day: str, per_task: str, version: str = __version__) -> Row:
    policy, checkpoint, config, suite, tasks, protocol, phash = key
    r = lambda x: round(x, 4)  # noqa: E731
    return Row(policy, checkpoint, config, suite, tasks, per_task, protocol, phash, rate.n, r(rate.success_rate),
               r(rate.ci_low), r(rate.ci_high), source, day, version)


def task_set(suite: str, task_ids: set[int]) -> str:
    """``all`` when ``task_ids`` is every task of ``suite``, else compact ranges (``0-2,5``)."""
    if suite in group_choices("suite") and task_ids == set(range(load_suite(suite).num_tasks)):
        return ALL_TASKS
    ids, spans = sorted(task_ids), []
    for t in ids:
        if spans and t == spans[-1][1] + 1:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _per_task(records: list[EpisodeRecord]) -> str:
    counts = Counter(r.task_id for r in records).values()
    return f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def _day(records: list[EpisodeRecord]) -> str:
    """The day the last of ``records`` finished."""
    return max(r.finished_at for r in records)[:10]


def _overall(rates: dict[str, Rate]) -> Rate | None:
    """Mean of the four LIBERO suites; the interval is Wilson's on the pooled episode count."""
    if not all(s in rates for s in LIBERO_OVERALL):
        return None
    n = sum(rates[s].n for s in LIBERO_OVERALL)
    mean = sum(rates[s].success_rate for s in LIBERO_OVERALL) / len(LIBERO_OVERALL)
    low, high = wilson_interval(round(mean * n), n)
    return Rate(n, round(mean * n), mean, low, high)


def _cells(runs_dirs: tuple[Path, ...]) -> dict[tuple, list[EpisodeRecord]]:
    """(policy, checkpoint, policy config, suite, task set, protocol, hash) -> one record per episode.

    The task set is each run's own, per suite, so runs over different task sets never share a cell.
    An episode recorded by several runs of one cell counts once, by the rule of every reader
    (:func:`~sfbench.eval.records.first_finished`). A run that cannot be read is skipped with a
    warning; it never stops the others.
    """
    located: dict[tuple, list[Located]] = defaultdict(list)
    for run_dir in sorted(p for d in runs_dirs if d.is_dir() for p in d.iterdir() if p.is_dir()):
        try:
            scored, config = RunDir(run_dir).scored(), _config_id(RunDir(run_dir))
        except (OSError, ValueError, SfbenchError) as e:
            log.warning("Skipping run %s: it cannot be read (%s: %s)", run_dir, type(e).__name__, e)
            continue
        suites = {loc.record.suite for loc in scored}
        tasks = {s: task_set(s, {loc.record.task_id for loc in scored if loc.record.suite == s}) for s in suites}
        for loc in scored:
            rec = loc.record
            located[(rec.policy, rec.checkpoint, config, rec.suite, tasks[rec.suite], rec.protocol,
                     rec.protocol_hash)].append(loc)
    return {key: [loc.record for _, loc in sorted(dedupe(locs).items())] for key, locs in located.items()}


def _config_id(run: RunDir) -> str:
    """Short hash of a run's policy config, from its ``command.json``; ``""`` for runs without one."""
    if not run.has_command():
        return ""
    policy = run.load_command().get("identity", {}).get("policy")
    return hashlib.sha256(json.dumps(policy, sort_keys=True).encode()).hexdigest()[:8] if policy else ""


def measured_rows(*runs_dirs: Path) -> list[Row]:
    """Rows of every run under ``runs_dirs``; runs of one cell are merged by episode key.

    The LIBERO overall row needs all four suites over all their tasks.
    """
    rows, by_group = [], defaultdict(dict)
    for key, recs in sorted(_cells(runs_dirs).items()):
        rows.append(_row(key, rate_of(recs), "measured", _day(recs), _per_task(recs), sfbench_versions(recs)))
        if key[4] == ALL_TASKS:
            by_group[(*key[:3], *key[5:])][key[3]] = recs
    for (policy, ckpt, config, protocol, phash), suites in sorted(by_group.items()):
        overall = _overall({suite: rate_of(recs) for suite, recs in suites.items()})
        if overall:
            every = [r for recs in suites.values() for r in recs]
            per_task = sorted({_per_task(recs) for recs in suites.values()})
            key = (policy, ckpt, config, "libero_overall", ALL_TASKS, protocol, phash)
            rows.append(_row(key, overall, "measured", _day(every), per_task[0] if len(per_task) == 1 else "mixed",
                             sfbench_versions(every)))
    return rows


def paper_rows(reference_dir: Path) -> list[Row]:
    """Rows of the paper tables in ``results/reference/*.csv`` (percentages, 500 trials per suite)."""
    rows = []
    for path in sorted(reference_dir.glob("*.csv")):
        lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
        day = date.fromtimestamp(path.stat().st_mtime).isoformat()
        for rec in csv.DictReader(io.StringIO("\n".join(lines))):
            for suite in (*LIBERO_OVERALL, "overall"):
                n = PAPER_TRIALS_PER_SUITE * (len(LIBERO_OVERALL) if suite == "overall" else 1)
                p = float(rec[suite]) / 100
                low, high = wilson_interval(round(p * n), n)
                rate = Rate(n, round(p * n), p, low, high)
                name = "libero_overall" if suite == "overall" else suite
                rows.append(_row((rec["policy"], "paper", "", name, ALL_TASKS, PAPER_PROTOCOL, ""), rate, "paper", day,
                                 str(PAPER_TRIALS_PER_TASK)))
    return rows


def write_leaderboard(results_dir: Path) -> Path:
    """Write ``<results_dir>/leaderboard.csv`` (atomically) and return its path.

    Measured rows come from ``<results_dir>/runs`` and the committed ``experiments/*/runs``.
    """
    runs_dirs = [results_dir / "runs", *sorted(results_dir.glob("experiments/*/runs"))]
    rows = measured_rows(*runs_dirs) + paper_rows(results_dir / "reference")
    path = results_dir / "leaderboard.csv"
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    os.replace(tmp, path)
    return path
