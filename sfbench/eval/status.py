"""Run lifecycle after submission: ``sfbench status`` and ``sfbench merge``."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from sfbench.eval.run import summarize
from sfbench.eval.rundir import RunDir
from sfbench.launch.executors import job_states

ACTIVE_STATES = ("RUNNING", "PENDING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED")


@dataclass(frozen=True)
class ShardStatus:
    """Where one planned shard stands: ``done``, ``running``, ``failed`` or ``missing``.

    ``infra_errors`` counts its unrecorded episodes that hit an infrastructure error (to retry).
    """

    task_id: int
    episodes: tuple[int, ...]
    recorded: int
    state: str
    job_id: str | None
    job_state: str | None
    infra_errors: int = 0


def shard_status(run_dir: Path, submitit_folder: Path | None = None) -> list[ShardStatus]:
    """Status of every planned shard, from the records and the latest job of each shard."""
    layout = RunDir(run_dir)
    plan = layout.load_command()["shards"]
    done = {(r.task_id, r.episode_index) for r in layout.load_records()}
    latest = {(j["task_id"], tuple(j["episodes"])): j["job_id"] for j in layout.load_jobs() if "task_id" in j}
    states = job_states(submitit_folder or layout.submitit, sorted(set(latest.values()))) if latest else {}
    infra = layout.load_infra_errors()
    rows = []
    for shard in plan:
        key = (shard["task_id"], tuple(shard["episodes"]))
        recorded = sum((key[0], e) in done for e in key[1])
        job_id = latest.get(key)
        job_state = states.get(job_id) if job_id else None
        if recorded == len(key[1]):
            state = "done"
        elif job_state and job_state.split()[0] in ACTIVE_STATES:
            state = "running"
        elif job_id:
            state = "failed"
        else:
            state = "missing"
        unscored = sum((key[0], e) in infra and (key[0], e) not in done for e in key[1])
        rows.append(ShardStatus(key[0], key[1], recorded, state, job_id, job_state, unscored))
    return rows


def missing_episodes(run_dir: Path) -> list[tuple[int, int]]:
    """Planned (task id, episode) pairs that have no record."""
    layout = RunDir(run_dir)
    done = {(r.task_id, r.episode_index) for r in layout.load_records()}
    return [(s["task_id"], e) for s in layout.load_command()["shards"] for e in s["episodes"]
            if (s["task_id"], e) not in done]


def finish_command(run_dir: Path) -> str:
    """The one command that (re)submits whatever is missing: the original command, same run id."""
    return "sfbench eval " + " ".join(shlex.quote(o) for o in RunDir(run_dir).load_command()["overrides"])


def merge(run_dir: Path) -> tuple[dict, list[tuple[int, int]]]:
    """De-duplicate and aggregate every shard's records into ``summary.json``; list what is missing."""
    return summarize(run_dir), missing_episodes(run_dir)
