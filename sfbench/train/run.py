"""``sfbench train [-m]``: resolve configs (one per sweep point), then train here or on the cluster."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from sfbench.config.compose import compose_config
from sfbench.config.schema import make_config
from sfbench.config.sweep import expand_sweeps
from sfbench.core.errors import InvalidConfig
from sfbench.core.io import check_output_dir, check_run_id
from sfbench.launch.executors import LauncherConfig, submit_calls
from sfbench.train.rundir import CONFIG, latest_checkpoint
from sfbench.train.trainer import RUNTIME_SETTINGS, TrainJob, check_job, job_from_config

NEWER_DATA_KEYS = frozenset({"suite", "keys"})


def make_train_run_id(cfg: dict[str, Any]) -> str:
    """Deterministic run id: rerunning the same command resumes the same run."""
    key = {k: cfg[k] for k in ("policy", "data", "teacher")} | ({"align": cfg["align"]} if cfg.get("align") else {})
    # data.suite / data.keys came later: left out while null, so earlier runs keep their ids (and resume)
    key["data"] = {k: v for k, v in cfg["data"].items()
                   if k != "cache_dir" and (v is not None or k not in NEWER_DATA_KEYS)}  # where frames are cached
    key["train"] = {k: v for k, v in cfg["train"].items() if k not in RUNTIME_SETTINGS}
    key["teacher"] = {k: v for k, v in cfg["teacher"].items() if k != "memory_gb"}  # runtime only
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{cfg['policy']['name']}-{digest}"


def _resolve(overrides: list[str]) -> tuple[dict[str, Any], TrainJob]:
    cfg = compose_config("train", overrides)
    try:
        container = OmegaConf.to_container(cfg, throw_on_missing=True)
    except MissingMandatoryValue as e:
        raise InvalidConfig(f"Missing required value: {e.full_key} (set {e.full_key}=...)") from None
    run_id = check_run_id(str(container["run_id"])) if container["run_id"] is not None else \
        make_train_run_id(container)
    check_output_dir(Path(container["output_dir"]))
    run_dir = Path(container["output_dir"]) / run_id
    job = job_from_config(container, run_dir)
    check_job(job)
    make_config(LauncherConfig, container["launcher"], what="launcher")
    return container, job


Resolved = list[tuple[dict[str, Any], TrainJob]]


def resolve_train(overrides: list[str], *, multirun: bool = False) -> Resolved:
    """The validated config and job of one run, or of every point of a ``-m`` sweep; nothing is created."""
    return [_resolve(p) for p in (expand_sweeps(overrides) if multirun else [overrides])]


def plan_train(resolved: Resolved) -> str | None:
    """``train.dry_run=true``: describe the resolved runs (None when the command is not a dry run)."""
    if not any(c["train"].get("dry_run") for c, _ in resolved):
        return None
    lines = [f"dry run of sfbench train: nothing was created; {len(resolved)} run(s) via launcher "
             f"{resolved[0][0]['launcher']['name']}"]
    for cfg, job in resolved:
        latest = latest_checkpoint(job.run_dir) if job.run_dir.is_dir() else None
        start = f"resumes from {latest}" if latest else "starts at step 0"
        lines += [f"  {job.run_dir}: policy {cfg['policy']['name']}, {cfg['train']['steps']} steps of batch "
                  f"{cfg['train']['batch_size']}, data {cfg['data']['path']}{_subset_plan(cfg['data'])}, {start}"
                  + (", Spatial Forcing (align)" if job.align else "") + _eval_plan(cfg["train"])]
    return "\n".join(lines)


def _subset_plan(data: dict[str, Any]) -> str:
    """The dry-run words for a demo subset ('' when every demo is used)."""
    if data.get("demos_per_task") is not None:
        return f" ({data['demos_per_task']} demos per task)"
    return f" ({data['fraction']:.0%} of each task's demos)" if data.get("fraction", 1.0) < 1.0 else ""


def _eval_plan(train: dict[str, Any]) -> str:
    """The dry-run words for evaluation during training ('' when off)."""
    if not train.get("eval_every"):
        return ""
    e = train["eval"]
    return (f"; every {train['eval_every']} steps an eval run on {e['suite']} tasks {e['tasks'] or 'all'}, "
            f"{e['episodes_per_task']} episodes per task from init state {e['first_episode']}, protocol "
            f"{e['protocol'] or 'the suite default'}, via {e['launcher']}, into {e['output_dir']}")


def run_train(resolved: Resolved) -> list[tuple[TrainJob, Any]]:
    """Train the resolved runs (:func:`resolve_train`) with their one launcher.

    Returns (job, result) pairs: the final checkpoint path, or the submitted SLURM job.
    """
    launchers = {json.dumps(c["launcher"], sort_keys=True) for c, _ in resolved}
    if len(launchers) > 1:
        raise InvalidConfig("A sweep must use one launcher for all its points")
    first = resolved[0][0]
    launcher = make_config(LauncherConfig, first["launcher"], what="launcher")
    for cfg, job in resolved:
        job.run_dir.mkdir(parents=True, exist_ok=True)
        (job.run_dir / CONFIG).write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    jobs = [job for _, job in resolved]
    results = submit_calls(launcher, jobs, folder=Path(first["output_dir"]) / "submitit", name="sfbench-train")
    return list(zip(jobs, results, strict=True))
