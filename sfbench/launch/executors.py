"""Launchers: where work runs. The only module that imports submitit.

- ``local``: in this process, one call after the other (no submitit).
- ``debug``: submitit's in-process executor (same API as SLURM, ``pdb`` works).
- ``slurm``: submitit's SLURM executor; the calls become one job array.

Work is submitted as resumable callables wrapped in :class:`CheckpointableCall`: on preemption or
timeout SLURM signals the job, submitit requeues the same call, and the call resumes from its own
state (an evaluation shard from its records, a trainer from its latest checkpoint). This module
knows nothing about what the calls do.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from sfbench.core.errors import InvalidConfig, SfbenchError, UnknownChoice

log = logging.getLogger(__name__)
LAUNCHERS = ("local", "debug", "slurm")


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
        tasks_per_node: Processes per job; > 1 runs data-parallel training, one process per GPU
            (submitit exports ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` for ``torch.distributed``).
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
    tasks_per_node: int = 1
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
        bad = [f"{k}={getattr(self, k)}" for k in ("timeout_min", "cpus_per_task", "array_parallelism",
                                                   "tasks_per_node")
               if getattr(self, k) < 1]
        bad += [f"{k}={getattr(self, k)}" for k in ("gpus_per_node", "max_num_timeout", "signal_delay_s")
                if getattr(self, k) < 0]
        if bad:
            raise InvalidConfig(f"Invalid launcher settings: {', '.join(bad)} (must be positive)")

    @property
    def blocks(self) -> bool:
        """Whether launching returns only when the work has ended (``local`` and ``debug`` always do)."""
        return self.wait or self.name in ("local", "debug")


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
            "tasks_per_node": cfg.tasks_per_node,
            "slurm_array_parallelism": cfg.array_parallelism,
            "slurm_signal_delay_s": cfg.signal_delay_s,
            "slurm_setup": list(cfg.setup),
            "slurm_additional_parameters": dict(cfg.additional_parameters),
        }
    executor.update_parameters(**params)
    return executor


def submit(executor: Any, fn: Callable, args_list: list[tuple]) -> list[Any]:
    """Submit ``fn(*args)`` for each args as one job array; SLURM's own message on failure."""
    try:
        with executor.batch():
            jobs = [executor.submit(fn, *args) for args in args_list]
    except (submitit.core.utils.FailedJobError, OSError) as e:
        raise SfbenchError(f"Submission failed, nothing was lost: {str(e).strip().splitlines()[-1]}") from None
    return jobs


def _in_queue(jobs: list[Any]) -> bool:
    """Whether SLURM still lists any of the jobs' arrays (``squeue``; sacct misses cancelled array tasks)."""
    arrays = sorted({str(j.job_id).split("_")[0] for j in jobs})
    out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(arrays)], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def job_error(job: Any) -> str | None:
    """The job's exception as one line, or None when it succeeded."""
    try:
        exc = job.exception()
    except Exception as e:  # submitit raises for jobs that left no result (cancelled, killed)
        exc = e
    if exc is None:
        return None
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def wait_jobs(jobs: list[Any], cfg: LauncherConfig, on_poll: Callable[[], None]) -> None:
    """Block until every job has ended, calling ``on_poll`` between polls; log failed jobs.

    A SLURM job that has left the queue without a result (cancelled array task) counts as ended
    after two polls, because sacct may still report it as running.
    """
    if cfg.name == "debug":  # debug jobs run in this process when their result is asked for
        for job in jobs:
            job_error(job)
    gone = 0
    while not all(j.done() for j in jobs) and gone < 2:
        gone = gone + 1 if cfg.name == "slurm" and not _in_queue(jobs) else 0
        on_poll()
        time.sleep(cfg.poll_s)
    on_poll()
    for job in jobs:
        error = job_error(job) if job.done() else "ended without a result (cancelled?)"
        if error:
            log.warning("Job %s failed: %s; logs: %s", job.job_id, error, job.paths.stderr)


class CheckpointableCall(submitit.helpers.Checkpointable):
    """Calls its argument; on timeout or preemption submitit requeues the same call.

    The callable must resume by itself (e.g. a trainer restarting from its latest checkpoint).
    """

    def __call__(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()``; in a job of several tasks, first export the ``torch.distributed`` variables."""
        if submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export()
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
    jobs = submit(executor, CheckpointableCall(), [(call,) for call in calls])
    log.info("Submitted %d %s jobs (%s); logs in %s", len(jobs), name, ", ".join(j.job_id for j in jobs), folder)
    if cfg.blocks:
        return [job.results()[0] for job in jobs]  # a multi-task job: rank 0's result
    return jobs
