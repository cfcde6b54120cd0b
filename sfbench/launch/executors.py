"""Launchers: where work runs. The only module that imports submitit.

- ``local``: in this process, one shard after the other (no submitit).
- ``debug``: submitit's in-process executor (same API as SLURM, ``pdb`` works).
- ``slurm``: submitit's SLURM executor; shards become one job array.

Workers are :class:`submitit.helpers.Checkpointable`: on preemption or timeout SLURM signals the
job, submitit calls ``checkpoint`` and requeues the same callable with the same shard; the shard
then skips the episodes it already recorded.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit
from tqdm.auto import tqdm

from sfbench.core.errors import InvalidConfig, SfbenchError, UnknownChoice
from sfbench.eval.records import EpisodeRecord, write_json_atomic
from sfbench.eval.shards import RunSpec, Shard, pending, run_shard, run_shards

log = logging.getLogger(__name__)
LAUNCHERS = ("local", "debug", "slurm")
JOBS_FILE = "jobs.json"


@dataclass
class LauncherConfig:
    """``configs/launcher/<name>.yaml``; SLURM fields are ignored by ``local`` and ``debug``.

    Args:
        name: ``local``, ``debug`` or ``slurm``.
        wait: Block until every job ends (progress bar), then merge. ``local`` always waits.
        partition: SLURM partition (``--partition``); None = the cluster default.
        account: SLURM account (``--account``).
        qos: SLURM quality of service (``--qos``).
        gpus_per_node: GPUs per job.
        cpus_per_task: CPU cores per job.
        mem_gb: Memory per job in GB; None = the cluster default.
        timeout_min: Wall-clock limit per job in minutes; a timed-out job is requeued.
        array_parallelism: Array tasks running at once.
        max_num_timeout: Requeues allowed after timeouts or preemptions.
        signal_delay_s: Seconds before the limit at which SLURM signals the job to checkpoint.
        setup: Shell lines run in the job before Python starts (e.g. ``module load cuda``).
        additional_parameters: Extra ``#SBATCH`` parameters, e.g. ``{constraint: a100}``.
        poll_s: Seconds between progress polls while waiting.
        folder: Submitit log folder; None = ``<run_dir>/submitit``.
    """

    name: str = "local"
    wait: bool = True
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    timeout_min: int = 60
    array_parallelism: int = 256
    max_num_timeout: int = 3
    signal_delay_s: int = 90
    setup: list[str] = field(default_factory=list)
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    poll_s: float = 5.0
    folder: str | None = None

    def __post_init__(self) -> None:
        if self.name not in LAUNCHERS:
            raise UnknownChoice("launcher", self.name, LAUNCHERS)
        bad = [f"{k}={getattr(self, k)}" for k in ("timeout_min", "cpus_per_task", "array_parallelism")
               if getattr(self, k) < 1]
        bad += [f"{k}={getattr(self, k)}" for k in ("gpus_per_node", "max_num_timeout", "signal_delay_s")
                if getattr(self, k) < 0]
        if bad:
            raise InvalidConfig(f"Invalid launcher settings: {', '.join(bad)} (must be positive)")


class ShardWorker(submitit.helpers.Checkpointable):
    """Runs one shard; on timeout or preemption submitit requeues it with the same shard."""

    def __call__(self, spec: RunSpec, shard: Shard) -> int:
        """Run the pending episodes of ``shard``; return how many ran."""
        return run_shard(spec, shard)


def make_executor(cfg: LauncherConfig, folder: Path, job_name: str) -> Any:
    """A submitit executor for ``debug`` or ``slurm`` with the launcher's parameters."""
    executor = submitit.AutoExecutor(folder=folder, cluster=cfg.name, slurm_max_num_timeout=cfg.max_num_timeout)
    params: dict[str, Any] = {"name": job_name, "timeout_min": cfg.timeout_min, "cpus_per_task": cfg.cpus_per_task}
    if cfg.name == "slurm":
        optional = {"slurm_partition": cfg.partition, "slurm_account": cfg.account, "slurm_qos": cfg.qos,
                    "mem_gb": cfg.mem_gb}
        params |= {k: v for k, v in optional.items() if v is not None}
        params |= {
            "gpus_per_node": cfg.gpus_per_node,
            "slurm_array_parallelism": cfg.array_parallelism,
            "slurm_signal_delay_s": cfg.signal_delay_s,
            "slurm_setup": list(cfg.setup),
            "slurm_additional_parameters": dict(cfg.additional_parameters),
        }
    executor.update_parameters(**params)
    return executor


def _submit(executor: Any, fn: Callable, args_list: list[tuple]) -> list[Any]:
    """Submit ``fn(*args)`` for each args as one job array; SLURM's own message on failure."""
    try:
        with executor.batch():
            jobs = [executor.submit(fn, *args) for args in args_list]
    except (submitit.core.utils.FailedJobError, OSError) as e:
        raise SfbenchError(f"Submission failed, nothing was lost: {str(e).strip().splitlines()[-1]}") from None
    return jobs


def _record_jobs(spec: RunSpec, shards: list[Shard], jobs: list[Any]) -> None:
    path = spec.run_dir / JOBS_FILE
    history = load_jobs(spec.run_dir)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    history += [{"shard": s.name, "task_id": s.task_id, "episodes": list(s.episodes), "job_id": str(j.job_id),
                 "submitted_at": now} for s, j in zip(shards, jobs, strict=True)]
    write_json_atomic(path, history)


def load_jobs(run_dir: Path) -> list[dict]:
    """Every submission of a run, oldest first (a shard resubmitted appears more than once)."""
    path = run_dir / JOBS_FILE
    return json.loads(path.read_text()) if path.exists() else []


def count_pending(spec: RunSpec, shards: list[Shard]) -> int:
    """Number of unrecorded episodes in ``shards``."""
    return sum(len(todo) for todo in pending(spec, shards).values())


class ProgressBar:
    """One progress bar over the pending episodes of a run."""

    def __init__(self, spec: RunSpec, shards: list[Shard], enabled: bool):
        self.total = count_pending(spec, shards)
        self.bar = tqdm(total=self.total, desc=spec.run_id, unit="ep", disable=not enabled, dynamic_ncols=True)
        self.wins = 0

    def on_episode(self, rec: EpisodeRecord) -> None:
        """Advance by one finished episode and show the running success count."""
        self.wins += rec.success
        self.bar.update(1)
        self.bar.set_postfix(task=rec.task_id, success=f"{self.wins}/{self.bar.n}")


def launch_local(spec: RunSpec, shards: list[Shard], *, progress: bool) -> list[Any]:
    """Run ``shards`` here on ``eval.num_workers`` env workers, with one progress bar."""
    bar = ProgressBar(spec, shards, progress)
    with bar.bar:
        run_shards(spec, shards, num_workers=spec.num_workers, on_episode=bar.on_episode)
    return []


def _in_queue(jobs: list[Any]) -> bool:
    """Whether SLURM still lists any of the jobs' arrays (``squeue``; sacct misses cancelled array tasks)."""
    arrays = sorted({str(j.job_id).split("_")[0] for j in jobs})
    out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(arrays)], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def _job_error(job: Any) -> str | None:
    try:
        exc = job.exception()
    except Exception as e:  # submitit raises for jobs that left no result (cancelled, killed)
        exc = e
    if exc is None:
        return None
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _wait(spec: RunSpec, shards: list[Shard], jobs: list[Any], cfg: LauncherConfig, progress: bool) -> None:
    """Block until every job has ended, showing the recorded episodes; log failed jobs."""
    bar = ProgressBar(spec, shards, progress)
    with bar.bar:
        if cfg.name == "debug":  # debug jobs run in this process when their result is asked for
            for job in jobs:
                _job_error(job)
        gone = 0
        while not all(j.done() for j in jobs) and gone < 2:
            gone = gone + 1 if cfg.name == "slurm" and not _in_queue(jobs) else 0
            bar.bar.n = bar.total - count_pending(spec, shards)
            bar.bar.refresh()
            time.sleep(cfg.poll_s)
        bar.bar.n = bar.total - count_pending(spec, shards)
    for job in jobs:
        error = _job_error(job) if job.done() else "ended without a result (cancelled?)"
        if error:
            log.warning("Job %s failed: %s; logs: %s", job.job_id, error, job.paths.stderr)


def launch(cfg: LauncherConfig, spec: RunSpec, shards: list[Shard], *, progress: bool = True) -> list[Any]:
    """Run ``shards`` with the launcher ``cfg``; submit only shards that still have work.

    Returns the submitted jobs (empty for ``local``). Blocks when ``cfg.wait`` (or ``local``).
    """
    if cfg.name == "local":
        return launch_local(spec, shards, progress=progress)
    todo = [s for s, episodes in pending(spec, shards).items() if episodes]
    if not todo:
        log.info("Every shard of %s is complete; nothing to submit", spec.run_id)
        return []
    folder = Path(cfg.folder) if cfg.folder else spec.run_dir / "submitit"
    executor = make_executor(cfg, folder, spec.run_id)
    jobs = _submit(executor, ShardWorker(), [(spec, s) for s in todo])
    _record_jobs(spec, todo, jobs)
    log.info("Submitted %d shard jobs of %s (%s); logs in %s", len(jobs), spec.run_id,
             jobs[0].job_id.split("_")[0], folder)
    if cfg.wait or cfg.name == "debug":
        _wait(spec, todo, jobs, cfg, progress)
    return jobs


class CheckpointableCall(submitit.helpers.Checkpointable):
    """Calls its argument; on timeout or preemption submitit requeues the same call.

    The callable must resume by itself (e.g. a trainer restarting from its latest checkpoint).
    """

    def __call__(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()``."""
        return fn()


def job_states(folder: Path, job_ids: list[str]) -> dict[str, str]:
    """SLURM states of ``job_ids`` (``RUNNING``, ``PENDING``, ``COMPLETED``, ``CANCELLED``, ...)."""
    return {job_id: submitit.SlurmJob(folder=folder, job_id=job_id).state for job_id in job_ids}


def submit_calls(cfg: LauncherConfig, calls: list[Callable[[], Any]], *, folder: Path, name: str) -> list[Any]:
    """Run resumable callables under the launcher: here one by one (``local``), or as one job array.

    Each call is wrapped in :class:`CheckpointableCall`, so a requeued job calls it again and it
    resumes from its own state. Returns the results (``local``, or waited) or the submitted jobs.
    """
    if cfg.name == "local":
        return [call() for call in calls]
    executor = make_executor(cfg, folder, name)
    jobs = _submit(executor, CheckpointableCall(), [(call,) for call in calls])
    log.info("Submitted %d %s jobs (%s); logs in %s", len(jobs), name, ", ".join(j.job_id for j in jobs), folder)
    if cfg.wait or cfg.name == "debug":
        return [job.result() for job in jobs]
    return jobs
