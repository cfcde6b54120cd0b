"""``sfbench collect``: scripted-expert demonstrations in LIBERO's HDF5 layout, successes only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
from omegaconf import DictConfig, OmegaConf

from sfbench.core.errors import InvalidConfig
from sfbench.core.io import write_json_atomic
from sfbench.envs import suite_views
from sfbench.eval.dispatch import ProgressBar
from sfbench.eval.rollout import Episode, EpisodeOutcome
from sfbench.eval.run import make_run_spec, summarize
from sfbench.eval.rundir import RunDir
from sfbench.eval.shards import RunSpec, pending, run_shards
from sfbench.policies import Requirements
from sfbench.train.data.demos import ROTATED, UPRIGHT, append_demo, demo_arrays

log = logging.getLogger(__name__)


def demo_requirements(cfg: DictConfig, spec: RunSpec) -> Requirements:
    """What every demo stores: the chosen views (default: all the suite's) with depth, poses.

    Depth and camera matrices serve the geometry teachers; poses the privileged expert.
    """
    views = suite_views(spec.suite)
    chosen = views if cfg.views is None else tuple(cfg.views)
    bad = [v for v in chosen if v not in views]
    if bad or not chosen:
        raise InvalidConfig(f"views={list(chosen)}: suite {spec.suite.name} renders {list(views)}")
    return Requirements(views=chosen, depth=True, privileged=True)


def demo_path(spec: RunSpec, task_id: int) -> Path:
    """``<run_dir>/demos/<task name>_demo.hdf5`` (LIBERO's file naming)."""
    return RunDir(spec.run_dir).demos / f"{spec.task_names[task_id]}_demo.hdf5"


def check_noop_setting(spec: RunSpec, drop_noops: bool) -> None:
    """Refuse ``collect.drop_noops`` off LIBERO, or a setting other than that of the run's demos so far.

    OFT's rule reads 7-D actions (6 motion dims and one gripper); a run's demos are all made one way, since
    a resumed run would otherwise mix demos with and without no-ops under one ``drop_noops`` attribute.
    """
    if drop_noops and spec.suite.benchmark != "libero":
        raise InvalidConfig(f"collect.drop_noops=true applies OFT's rule for LIBERO's 7-D actions; suite "
                            f"{spec.suite.name} is {spec.suite.benchmark}")
    for task_id in spec.task_names:
        path = demo_path(spec, task_id)
        if not path.is_file():
            continue
        with h5py.File(path, "r") as f:
            stored = bool(f["data"].attrs.get("drop_noops", False)) if "data" in f else drop_noops
        if stored != drop_noops:
            raise InvalidConfig(f"{path} holds demos collected with collect.drop_noops={str(stored).lower()}; "
                                f"this command asks for {str(drop_noops).lower()}. Use another run_id")


def _file_attrs(spec: RunSpec, task_id: int, drop_noops: bool) -> dict:
    instruction = spec.instructions[task_id]
    return {
        "problem_info": json.dumps({"language_instruction": instruction, "problem_name": spec.task_names[task_id]}),
        "env_args": json.dumps({"env_name": spec.suite.benchmark, "protocol": spec.protocol.to_dict()}),
        "suite": spec.suite.name,
        "task_id": task_id,
        "task_name": spec.task_names[task_id],
        "instruction": instruction,
        "protocol": spec.protocol.name,
        "protocol_hash": spec.protocol.hash,
        "render_profile": spec.protocol.render_profile,
        "image_convention": ROTATED if spec.protocol.rotate_180 else UPRIGHT,
        "drop_noops": drop_noops,
    }


def plan_collect(cfg: DictConfig) -> str:
    """``collect.dry_run=true``: validate as :func:`run_collect` does and describe the plan; create nothing."""
    from sfbench.eval.dry_run import format_eval_plan, plan_eval

    plan = plan_eval(cfg, section="collect", reads_depth=True)
    views = demo_requirements(cfg, plan.spec).views
    check_noop_setting(plan.spec, bool(cfg.collect.drop_noops))
    return format_eval_plan(plan, "collect") + f"\n  demos:      views {list(views)} with depth, in " \
        f"{RunDir(plan.spec.run_dir).demos}"


def run_collect(cfg: DictConfig) -> tuple[RunSpec, dict]:
    """Collect (or resume collecting) demos; returns the run spec and the expert's summary."""
    spec, shards = make_run_spec(cfg, section="collect", reads_depth=True)
    requirements = demo_requirements(cfg, spec)
    drop_noops = bool(cfg.collect.drop_noops)
    check_noop_setting(spec, drop_noops)
    layout = RunDir(spec.run_dir)
    recorded = {r.key for r in layout.load_records()}
    layout.path.mkdir(parents=True, exist_ok=True)
    layout.config.write_text(OmegaConf.to_yaml(cfg))

    def keep(episode: Episode, out: EpisodeOutcome) -> None:
        if out.success:
            append_demo(demo_path(spec, episode.task_id), demo_arrays(out.trajectory),
                        init_state_index=episode.index, file_attrs=_file_attrs(spec, episode.task_id, drop_noops),
                        demo_attrs={"noops_dropped": out.noops_dropped})

    bar = ProgressBar(spec, sum(len(e) for e in pending(spec, shards, recorded).values()), cfg.collect.progress)
    with bar.bar:
        run_shards(spec, shards, num_workers=spec.num_workers, on_episode=bar.on_episode,
                   requirements=requirements, sink=keep, drop_noops=drop_noops)
    summary = summarize(spec.run_dir)
    write_json_atomic(layout.demos / "index.json", {
        "files": sorted(str(p.name) for p in layout.demos.glob("*.hdf5")),
        "expert_success_rate": summary["overall"]["success_rate"], "attempted": summary["overall"]["n"],
        "kept": summary["overall"]["successes"], "drop_noops": drop_noops,
        "noops_dropped": _noops_dropped(layout.demos)})
    return spec, summary


def _noops_dropped(demos: Path) -> int:
    """No-op actions dropped over every kept demo of the run (each demo's ``noops_dropped`` attribute)."""
    total = 0
    for path in demos.glob("*.hdf5"):
        with h5py.File(path, "r") as f:
            total += sum(int(g.attrs.get("noops_dropped", 0)) for g in f["data"].values())
    return total
