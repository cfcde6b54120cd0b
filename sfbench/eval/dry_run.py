"""``eval.dry_run=true`` (and ``collect.dry_run``): validate a run completely, say what it would do, create nothing.

The plan is built by the same functions the run uses (:func:`~sfbench.eval.run.make_run_spec`, the
identity check of :func:`~sfbench.eval.run.start_run`), reading the run directory if it exists and
writing nothing, so a command that passes its dry run fails later only on what running reveals.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from sfbench.config.schema import make_config
from sfbench.eval.records import load_jsonl_records
from sfbench.eval.run import check_same_identity, make_run_spec, run_identity
from sfbench.eval.rundir import RunDir
from sfbench.eval.shards import RunSpec, Shard
from sfbench.launch.executors import LauncherConfig


@dataclass(frozen=True)
class EvalPlan:
    """What an eval (or collect) command would run."""

    spec: RunSpec
    shards: list[Shard]
    recorded: int  # planned episodes that already have a record
    launcher: str
    exists: bool  # the run directory holds a started run

    @property
    def episodes(self) -> int:
        """Planned episodes."""
        return sum(len(s.episodes) for s in self.shards)


def plan_eval(cfg: DictConfig, section: str = "eval", reads_depth: bool = False) -> EvalPlan:
    """Validate ``cfg`` as the run would and count what is already recorded; nothing is written."""
    spec, shards = make_run_spec(cfg, section=section, reads_depth=reads_depth)
    launcher = make_config(LauncherConfig, OmegaConf.to_container(cfg.launcher), what="launcher").name \
        if "launcher" in cfg else "local"
    layout = RunDir(spec.run_dir)
    if layout.has_command():
        check_same_identity(spec.run_id, layout.load_command().get("identity"), run_identity(spec, shards))
    planned = {(spec.suite.name, s.task_id, e) for s in shards for e in s.episodes}
    records = load_jsonl_records(sorted(layout.records_dir.glob("*.jsonl"))) if layout.records_dir.is_dir() else []
    return EvalPlan(spec, shards, sum(r.key in planned for r in records), launcher, layout.has_command())


def format_eval_plan(plan: EvalPlan, command: str = "eval") -> str:
    """The plan as lines: run id and directory, shards, episodes, what is recorded, weights, protocol."""
    spec = plan.spec
    tasks = sorted({s.task_id for s in plan.shards})
    checkpoint = spec.policy.get("checkpoint") or spec.policy.get("base")
    lines = [
        f"dry run of sfbench {command}: nothing was created",
        f"  run id:     {spec.run_id}",
        f"  run dir:    {spec.run_dir}" + ("  (exists: this command resumes it)" if plan.exists else "  (new)"),
        f"  policy:     {spec.policy['name']}" + (f"  checkpoint {checkpoint}" if checkpoint else ""),
        f"  weights id: {spec.checkpoint_sha or 'none (no weights)'}",
        f"  suite:      {spec.suite.name}, tasks {tasks}",
        f"  protocol:   {spec.protocol.name} (hash {spec.protocol.hash})",
        f"  shards:     {len(plan.shards)} via launcher {plan.launcher}, {spec.num_workers} env worker(s) each",
        f"  episodes:   {plan.episodes} planned, {plan.recorded} already recorded, "
        f"{plan.episodes - plan.recorded} to run",
    ]
    return "\n".join(lines)

