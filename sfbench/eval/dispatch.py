"""Run an evaluation's shards through a launcher: here, or as cluster jobs, with one progress bar.

Data flows one way: this module calls :mod:`sfbench.launch` with resumable callables
(:func:`~sfbench.eval.shards.run_shard` bound to a shard); the launcher knows nothing of shards.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
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
        with bar.bar, _local_server(spec, list(todo)):
            run_shards(spec, list(todo), num_workers=spec.num_workers, on_episode=bar.on_episode)
        return []
    if not todo:
        log.info("Every shard of %s is complete; nothing to submit", spec.run_id)
        return []
    folder = RunDir(spec.run_dir).submitit if cfg.folder is None else Path(cfg.folder)
    server = _submit_server(cfg, spec, list(todo), folder) if spec.server else None
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
        if server is not None:
            server.cancel()  # done, or every shard ended: nothing left to answer
    return jobs


@contextmanager
def _local_server(spec: RunSpec, shards: list[Shard]) -> Iterator[None]:
    """A served run here: the policy server in a thread of this process, on loopback."""
    if spec.server is None or not shards:
        yield
        return
    from sfbench.serve.served_run import serve_run

    RunDir(spec.run_dir).server_file.unlink(missing_ok=True)
    stop = threading.Event()
    thread = threading.Thread(target=serve_run, args=(spec, spec.server, lambda: False, stop),
                              kwargs={"host": "127.0.0.1"}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def _submit_server(cfg: LauncherConfig, spec: RunSpec, shards: list[Shard], folder: Path) -> Any:
    """Submit the run's policy server as one job (``server.gpus`` GPUs); it ends when the run is complete."""
    from sfbench.serve.served_run import serve_run

    RunDir(spec.run_dir).server_file.unlink(missing_ok=True)
    executor = make_executor(replace(cfg, gpus_per_node=spec.server.gpus), folder, f"{spec.run_id}-server")
    (job,) = submit(executor, CheckpointableCall(),
                    [(partial(serve_run, spec, spec.server, partial(_complete, spec, shards)),)])
    RunDir(spec.run_dir).add_jobs([{"server": True, "job_id": str(job.job_id),
                                    "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}])
    log.info("Submitted the policy server of %s (job %s)", spec.run_id, job.job_id)
    return job


def _complete(spec: RunSpec, shards: list[Shard]) -> bool:
    return _remaining(spec, shards) == 0
