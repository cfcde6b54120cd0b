"""Run an evaluation's shards through a launcher: here, or as cluster jobs, with one progress bar.

Data flows one way: this module calls :mod:`sfbench.launch` with resumable callables
(:func:`~sfbench.eval.shards.run_shard` bound to a shard); the launcher knows nothing of shards.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from sfbench.eval.records import EpisodeRecord
from sfbench.eval.rundir import RunDir
from sfbench.eval.shards import RunSpec, Shard, pending, run_shard, run_shards
from sfbench.launch.executors import CheckpointableCall, LauncherConfig, make_executor, submit, wait_jobs

log = logging.getLogger(__name__)


class ProgressBar:
    """One progress bar over a run's pending episodes."""

    def __init__(self, spec: RunSpec, total: int, enabled: bool):
        self.total = total
        self.bar = tqdm(total=total, desc=spec.run_id, unit="ep", disable=not enabled, dynamic_ncols=True)
        self.wins = 0

    def on_episode(self, rec: EpisodeRecord) -> None:
        """Advance by one finished episode and show the running success count."""
        self.wins += rec.success
        self.bar.update(1)
        self.bar.set_postfix(task=rec.task_id, success=f"{self.wins}/{self.bar.n}")

    def show_remaining(self, remaining: int) -> None:
        """Set the bar from the number of episodes still unrecorded (cluster jobs write the records)."""
        self.bar.n = self.total - remaining
        self.bar.refresh()


def _remaining(spec: RunSpec, shards: list[Shard]) -> int:
    recorded = {r.key for r in RunDir(spec.run_dir).load_records()}
    return sum(len(todo) for todo in pending(spec, shards, recorded).values())


def dispatch(cfg: LauncherConfig, spec: RunSpec, shards: list[Shard], recorded: set[tuple], *,
             progress: bool = True) -> list[Any]:
    """Run the unrecorded episodes of ``shards``; ``recorded`` holds the episode keys already done.

    Returns the submitted jobs (empty for ``local``); blocks when the launcher does.
    """
    todo = {s: eps for s, eps in pending(spec, shards, recorded).items() if eps}
    total = sum(len(eps) for eps in todo.values())
    if cfg.name == "local":
        bar = ProgressBar(spec, total, progress)
        with bar.bar:
            run_shards(spec, list(todo), num_workers=spec.num_workers, on_episode=bar.on_episode)
        return []
    if not todo:
        log.info("Every shard of %s is complete; nothing to submit", spec.run_id)
        return []
    folder = RunDir(spec.run_dir).submitit if cfg.folder is None else Path(cfg.folder)
    executor = make_executor(cfg, folder, spec.run_id)
    jobs = submit(executor, CheckpointableCall(), [(partial(run_shard, spec, s),) for s in todo])
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    RunDir(spec.run_dir).add_jobs([{"shard": s.name, "task_id": s.task_id, "episodes": list(s.episodes),
                                    "job_id": str(j.job_id), "submitted_at": now}
                                   for s, j in zip(todo, jobs, strict=True)])
    log.info("Submitted %d shard jobs of %s (%s); logs in %s", len(jobs), spec.run_id,
             jobs[0].job_id.split("_")[0], folder)
    if cfg.blocks:
        bar = ProgressBar(spec, total, progress)
        with bar.bar:
            wait_jobs(jobs, cfg, lambda: bar.show_remaining(_remaining(spec, list(todo))))
    return jobs
