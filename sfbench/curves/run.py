"""``sfbench curves``: evaluate train runs' checkpoints through the launchers, then plot the curves.

Every checkpoint becomes an ordinary eval run (deterministic run id, per-episode records), so a
rerun of the same command only evaluates what is missing, and each point can be inspected with
``sfbench status`` / ``merge`` / ``compare`` like any other run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sfbench.config.schema import make_config
from sfbench.core.errors import InvalidConfig, MissingAsset, UnknownChoice
from sfbench.core.io import write_json_atomic
from sfbench.core.protocol import Protocol
from sfbench.curves import curve as curves
from sfbench.curves.train_runs import (
    TrainingData,
    TrainRun,
    check_comparable,
    curve_labels,
    load_train_run,
)
from sfbench.eval.records import load_records
from sfbench.eval.run import run_eval

log = logging.getLogger(__name__)


@dataclass
class CurveSettings:
    """``kind``, ``runs`` and the ``curves`` section of ``configs/curves.yaml`` (see the comments there)."""

    kind: str = "convergence"
    runs: list[str] = field(default_factory=list)
    threshold: float | list[float] = 0.66
    steps: list[int] | None = None
    baseline: str | None = None
    train_dir: str = "results/train"
    output_dir: str = "results/curves"
    name: str | None = None
    replot: str | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.kind not in curves.KINDS:
            raise UnknownChoice("kind", self.kind, curves.KINDS)
        if not self.runs and self.replot is None:
            raise InvalidConfig("runs is empty: give the train runs, e.g. runs=[<run_a>,<run_b>]")
        bad = [t for t in self.thresholds if not 0.0 < t <= 1.0]
        if bad:
            raise InvalidConfig(f"curves.threshold={bad[0]} must be a success rate in (0, 1]")

    @property
    def thresholds(self) -> list[float]:
        """The threshold(s) as a list."""
        return [float(t) for t in (self.threshold if isinstance(self.threshold, list) else [self.threshold])]


def _x(kind: str, data: TrainingData, step: int) -> float:
    if kind == "convergence":
        return float(step)
    return sum(data.demos_per_task) / len(data.demos_per_task)


def _steps(settings: CurveSettings, run: TrainRun) -> list[int]:
    if settings.steps is not None:
        return [int(s) for s in settings.steps]
    return list(run.checkpoints) if settings.kind == "convergence" else [max(run.checkpoints)]


def _eval_config(cfg: DictConfig, run: TrainRun, step: int, tasks: list[int]) -> tuple[DictConfig, list[str]]:
    """The eval config of one checkpoint, and the ``sfbench eval`` overrides that reproduce it."""
    policy = run.policy | {"checkpoint": str(run.checkpoint(step))}
    eval_section = OmegaConf.to_container(cfg.eval) | {"tasks": cfg.eval.tasks if cfg.eval.tasks is not None else tasks}
    eval_cfg = OmegaConf.create({"suite": cfg.suite, "protocol": cfg.protocol, "launcher": cfg.launcher,
                                 "policy": policy, "eval": eval_section, "run_id": None,
                                 "output_dir": cfg.output_dir})
    overrides = [f"suite={cfg.suite.name}", f"protocol={cfg.protocol.name}", f"launcher={cfg.launcher.name}",
                 f"policy={policy['name']}", f"output_dir={cfg.output_dir}",
                 *(f"policy.{k}={json.dumps(v) if isinstance(v, list | dict) else v}"
                   for k, v in policy.items() if k != "name" and v is not None),
                 *(f"eval.{k}={json.dumps(v) if isinstance(v, list) else v}"
                   for k, v in eval_section.items() if v is not None)]
    return eval_cfg, overrides


def _evaluate(cfg: DictConfig, run: TrainRun, step: int, tasks: list[int]) -> tuple[int, int, str]:
    """Evaluate (or resume) one checkpoint; return successes, episodes and the eval run id."""
    eval_cfg, overrides = _eval_config(cfg, run, step, tasks)
    spec, summary = run_eval(eval_cfg, overrides)
    if summary is None:  # submitted without waiting: count what is recorded so far
        records = load_records(spec.run_dir)
        return sum(r.success for r in records), len(records), spec.run_id
    planned = len(eval_cfg.eval.tasks) * eval_cfg.eval.episodes_per_task
    o = summary["overall"]
    if o["n"] != planned:
        log.warning("%s step %d: %d of %d episodes recorded", run.run_id, step, o["n"], planned)
    return o["successes"], o["n"], spec.run_id


def _default_name(settings: CurveSettings, cfg: DictConfig) -> str:
    key = json.dumps({"runs": settings.runs, "suite": cfg.suite.name, "protocol": cfg.protocol.name,
                      "eval": OmegaConf.to_container(cfg.eval), "steps": settings.steps}, sort_keys=True)
    return f"{settings.kind}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def run_curves(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate every needed checkpoint, then write points/thresholds CSVs, the PNG and ``curve.json``."""
    values = {"kind": cfg.kind, "runs": list(cfg.runs)} | OmegaConf.to_container(cfg.curves)
    settings = make_config(CurveSettings, values, what="curves")
    if settings.replot is not None:
        source = Path(settings.replot)
        return replot(source, Path(cfg.output_dir), Path(settings.output_dir) / (settings.name or source.name))
    train_dir = Path(settings.train_dir)
    runs = [load_train_run(train_dir, r) for r in settings.runs]
    data = check_comparable(runs)
    first = data[runs[0].run_id]
    labels = dict(zip(settings.runs, curve_labels(runs, data_is_x=settings.kind == "data_efficiency"), strict=True))
    jobs = [(run, step) for run in runs for step in _steps(settings, run)]
    for run, step in jobs:
        run.checkpoint(step)  # every requested checkpoint exists, before any evaluation starts
    if settings.dry_run:
        return _dry_run(cfg, jobs, list(first.task_ids))
    measurements = []
    for i, (run, step) in enumerate(jobs, 1):
        log.info("[%d/%d] %s step %d", i, len(jobs), run.run_id, step)
        successes, n, eval_run = _evaluate(cfg, run, step, list(first.task_ids))
        x = _x(settings.kind, data[run.run_id], step)
        measurements.append(curves.Measurement(labels[run.run_id], run.run_id, x, successes, n, eval_run))
    return _write(settings, cfg, measurements, first)


def _dry_run(cfg: DictConfig, jobs: list[tuple[TrainRun, int]], tasks: list[int]) -> dict[str, Any]:
    """Validate every checkpoint's eval run as it would start and describe them; create nothing."""
    from sfbench.eval.dry_run import plan_eval

    lines = [f"dry run of sfbench curves: nothing was created; {len(jobs)} checkpoint eval runs"]
    for run, step in jobs:
        plan = plan_eval(_eval_config(cfg, run, step, tasks)[0])
        lines.append(f"  {run.run_id} step {step}: eval run {plan.spec.run_id}, {plan.episodes} episodes, "
                     f"{plan.recorded} already recorded")
    return {"table": "\n".join(lines), "files": {}}


def _write(settings: CurveSettings, cfg: DictConfig, measurements: list[curves.Measurement],
           data: TrainingData) -> dict[str, Any]:
    protocol = Protocol.from_dict(OmegaConf.to_container(cfg.protocol))
    out = Path(settings.output_dir) / (settings.name or _default_name(settings, cfg))
    title = f"{cfg.suite.name} tasks {list(cfg.eval.tasks or data.task_ids)}, {cfg.protocol.name}"
    meta = {"suite": cfg.suite.name, "protocol": protocol.name, "protocol_hash": protocol.hash,
            "runs": settings.runs, "training_data": {"suite": data.suite, "task_ids": list(data.task_ids)}}
    return write_curve(out, settings.kind, settings.thresholds, settings.baseline, measurements, title, meta)


def write_curve(out: Path, kind: str, thresholds: list[float], baseline: str | None,
                measurements: list[curves.Measurement], title: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Pool ``measurements`` and write ``points.csv``, ``thresholds.csv``, ``<kind>.png`` and ``curve.json``."""
    pooled = curves.pool(measurements)
    baseline = baseline or measurements[0].label
    if baseline not in pooled:
        raise UnknownChoice("curves.baseline", baseline, pooled)
    x_name = curves.KINDS[kind]
    rows = [c for t in thresholds for c in curves.crossings(pooled, t, baseline)]
    files = {
        "points": curves.write_points_csv(pooled, out / "points.csv", x_name),
        "thresholds": curves.write_crossings_csv(rows, out / "thresholds.csv", x_name),
        "plot": curves.plot(pooled, thresholds, out / f"{kind}.png", x_name=x_name, title=title,
                            log_x=kind == "data_efficiency"),
    }
    result = {"kind": kind, **meta, "baseline": baseline, "crossings": curves.as_dicts(rows),
              "files": {k: str(v) for k, v in files.items()}, "table": curves.crossing_table(rows, x_name)}
    write_json_atomic(out / "curve.json", result)
    return result


def replot(curve_dir: Path, runs_dir: Path, out: Path) -> dict[str, Any]:
    """Rebuild a written curve from its eval runs' records alone (no train runs or checkpoints needed).

    Reads ``curve.json`` and ``points.csv`` of ``curve_dir`` for what was measured, recounts every
    point from the records under ``runs_dir``, and writes the curve files to ``out``.
    """
    import csv

    try:
        spec = json.loads((curve_dir / "curve.json").read_text())
        points = list(csv.DictReader((curve_dir / "points.csv").open()))
    except (OSError, json.JSONDecodeError) as e:
        raise MissingAsset(f"curves.replot={curve_dir} is not a written curve: {e}") from None
    x_name = curves.KINDS[spec["kind"]]
    measurements = []
    for row in points:
        for train_run, eval_run in zip(row["train_runs"].split(), row["eval_runs"].split(), strict=True):
            records = load_records(runs_dir / eval_run)
            if not records:
                raise MissingAsset(f"No records of eval run {eval_run} under {runs_dir}")
            measurements.append(curves.Measurement(row["label"], train_run, float(row[x_name]),
                                                   sum(r.success for r in records), len(records), eval_run))
    thresholds = list(dict.fromkeys(c["threshold"] for c in spec["crossings"]))
    title = f"{spec['suite']} tasks {spec['training_data']['task_ids']}, {spec['protocol']}"
    meta = {k: spec[k] for k in ("suite", "protocol", "protocol_hash", "runs", "training_data")}
    return write_curve(out, spec["kind"], thresholds, spec["baseline"], measurements, title, meta)
