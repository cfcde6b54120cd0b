"""``sfbench eval``: resolve the config, plan shards, launch them, write the summary."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sfbench.config.schema import make_config
from sfbench.config.tree import group_choices, load_protocol, make_suite_config
from sfbench.core.errors import InvalidConfig
from sfbench.core.io import check_output_dir, check_run_id, write_json_atomic
from sfbench.core.protocol import Protocol
from sfbench.envs import check_suite, task_id, task_spec
from sfbench.eval.dispatch import dispatch
from sfbench.eval.locks import held
from sfbench.eval.records import EpisodeRecord, sfbench_versions
from sfbench.eval.rundir import RunDir
from sfbench.eval.shards import RunSpec, Shard, make_run_id, plan_shards
from sfbench.launch.executors import LauncherConfig
from sfbench.policies import family_of, make_policy_config
from sfbench.report.aggregate import aggregate
from sfbench.serve.served_run import ServerSettings

log = logging.getLogger(__name__)


@dataclass
class EvalSettings:
    """The ``eval`` section of ``configs/eval.yaml`` (and ``collect`` of ``collect.yaml``).

    Args:
        tasks: Task ids or names to evaluate; null = every task of the suite.
        episodes_per_task: Episodes per task; episode i starts from the suite's init state i.
        first_episode: Index of each task's first episode (keep training init states out with it).
        videos_per_task: MP4s of the first K episodes of each task (0 = none).
        episodes_per_shard: Episodes per shard, the unit of resumable work and of cluster jobs.
        num_workers: Env worker processes stepping episodes at once (per job on a cluster).
        infra_retries: Retries, within one command, of an episode hit by an infrastructure error.
        render_on_demand: Render camera images only for the steps the policy reads (same outcomes).
        video_stride: Control steps per video frame (videos play at 20 / video_stride fps).
        progress: Show a progress bar.
        dry_run: Validate everything and print the plan (run id, shards, episodes, what is recorded,
            weights, protocol hash); create nothing.
    """

    tasks: list[int | str] | None = None
    episodes_per_task: int = 50
    first_episode: int = 0
    videos_per_task: int = 1
    episodes_per_shard: int = 10
    num_workers: int = 1
    infra_retries: int = 1
    render_on_demand: bool = True
    video_stride: int = 1
    progress: bool = True
    dry_run: bool = False

    def __post_init__(self) -> None:
        problems = [
            f"eval.{k}={getattr(self, k)!r} (must be an integer >= {lo})"
            for k, lo in [("episodes_per_task", 1), ("first_episode", 0), ("videos_per_task", 0),
                          ("episodes_per_shard", 1), ("num_workers", 1), ("infra_retries", 0), ("video_stride", 1)]
            if not isinstance(getattr(self, k), int) or getattr(self, k) < lo
        ]
        if self.tasks is not None and not isinstance(self.tasks, list):
            problems.append(f"eval.tasks={self.tasks!r} (must be a list of task ids, e.g. [0,1])")
        if problems:
            raise InvalidConfig("Invalid " + "; ".join(problems))


@dataclass
class CollectSettings(EvalSettings):
    """The ``collect`` section of ``configs/collect.yaml``: the eval settings, plus what demos keep.

    Args:
        drop_noops: Drop no-op actions unexecuted, by OpenVLA-OFT's rule (norm of the 6 motion dims < 1e-4 and
            the previous kept action's gripper command), as the released ``*_no_noops`` datasets were made; the
            count per demo is in its ``noops_dropped`` attribute. Off by default: the scripted expert is a
            closed-loop controller whose actions are seldom no-ops, and an opt-in keeps existing collect commands
            making the same demos.
    """

    drop_noops: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.drop_noops, bool):
            raise InvalidConfig(f"Invalid collect.drop_noops={self.drop_noops!r} (must be true or false)")


SETTINGS = {"eval": EvalSettings, "collect": CollectSettings}  # the episode settings schema of each section

CUSTOM = "+custom"


def named_protocol(protocol: Protocol) -> Protocol:
    """``protocol``, renamed ``<name>+custom`` when overrides changed it from its profile file.

    Records carry the name and the hash; a modified profile must never read as the named one.
    """
    if protocol.name in group_choices("protocol") and load_protocol(protocol.name).to_dict() == protocol.to_dict():
        return protocol
    return protocol if protocol.name.endswith(CUSTOM) else replace(protocol, name=protocol.name + CUSTOM)


def check_depth_given(protocol: Protocol, reader: str) -> None:
    """Refuse a run whose ``reader`` (a policy, or demo collection) reads depth the protocol does not give."""
    if not protocol.depth:
        giving = [n for n in group_choices("protocol") if load_protocol(n).depth]
        raise InvalidConfig(f"{reader} reads metric depth, but protocol {protocol.name} gives none (depth: false); "
                            f"protocols with depth: {', '.join(giving)}")


def make_run_spec(cfg: DictConfig, section: str = "eval", reads_depth: bool = False) -> tuple[RunSpec, list]:
    """Validate the composed config and plan the run's shards (episode settings under ``section``).

    ``reads_depth``: the run itself stores depth (demo collection), whatever the policy reads.
    """
    settings = make_config(SETTINGS[section], OmegaConf.to_container(cfg[section]), what=section)
    suite = make_suite_config(OmegaConf.to_container(cfg.suite))
    protocol = named_protocol(Protocol.from_dict(OmegaConf.to_container(cfg.protocol)))
    policy = OmegaConf.to_container(cfg.policy)
    policy_config = make_policy_config(policy)
    tasks = list(range(suite.num_tasks)) if settings.tasks is None else [task_id(suite, t) for t in settings.tasks]
    if not tasks:
        raise InvalidConfig(f"{section}.tasks=[] selects no task (give task ids, or null for every task)")
    suite.check_task_ids(tasks)
    episodes = range(settings.first_episode, settings.first_episode + settings.episodes_per_task)
    if episodes.stop > suite.num_init_states:
        raise InvalidConfig(
            f"Episodes {episodes.start}..{episodes.stop - 1} requested, but suite {suite.name} has "
            f"{suite.num_init_states} init states per task (episodes 0..{suite.num_init_states - 1})."
        )
    protocol.max_steps_for(suite.protocol_suite)
    check_suite(suite)
    specs = {t: task_spec(suite, t) for t in tasks}
    family = family_of(policy)
    if family.reads_depth(policy_config) or reads_depth:
        check_depth_given(protocol, f"sfbench {section}" if reads_depth else f"policy {policy['name']}")
    family.check_config(policy_config, specs[tasks[0]])
    sha = family.content_id(policy_config)
    run_id = check_run_id(str(cfg.run_id)) if cfg.run_id is not None \
        else make_run_id(policy, suite.name, protocol, sha, tasks)
    check_output_dir(Path(cfg.output_dir))
    server = make_config(ServerSettings, OmegaConf.to_container(cfg.server), what="server") \
        if "server" in cfg else None
    spec = RunSpec(run_id, Path(cfg.output_dir) / run_id, suite, protocol, policy, settings.videos_per_task,
                   settings.num_workers, {t: s.name for t, s in specs.items()},
                   {t: s.instruction for t, s in specs.items()}, settings.infra_retries, sha,
                   server if server and server.enabled else None, settings.render_on_demand, settings.video_stride,
                   settings.first_episode)
    return spec, plan_shards(tasks, episodes, settings.episodes_per_shard)


def summarize(run_dir: Path) -> dict:
    """Aggregate every record of a run and write ``summary.json``."""
    layout = RunDir(run_dir)
    records = layout.load_records()
    if not records:
        raise InvalidConfig(f"No episode records under {run_dir}")
    first = records[0]
    summary = {
        "run_id": first.run_id,
        "policy": first.policy,
        "checkpoint": first.checkpoint,
        "protocol": first.protocol,
        "protocol_hash": first.protocol_hash,
        "sfbench_version": sfbench_versions(records),  # what ran the episodes, not what summed them
        **aggregate(records),
    }
    write_json_atomic(layout.summary, summary)
    return summary


def _check_same_run(spec: RunSpec, records: list[EpisodeRecord]) -> None:
    """Refuse to add episodes of another policy or protocol to an existing run."""
    for rec in records[:1]:
        if (rec.policy, rec.protocol_hash) != (spec.policy["name"], spec.protocol.hash):
            raise InvalidConfig(
                f"Run {spec.run_id} holds {rec.policy} episodes under protocol {rec.protocol} ({rec.protocol_hash}); "
                f"this command asks for {spec.policy['name']} under {spec.protocol.name} ({spec.protocol.hash}). "
                "Use another run_id."
            )


def start_run(cfg: DictConfig, spec: RunSpec, shards: list[Shard], overrides: list[str]) -> set[tuple]:
    """Check the run directory against ``spec``, then write its start files; returns the recorded keys.

    A resume with the run's plan keeps the start files as first written: the config that began the run
    stays its record, whichever command (``eval``, ``curves``, a trainer) resumes it.

    ``overrides`` are saved so that ``sfbench merge`` can print the command that finishes the run.
    """
    layout = RunDir(spec.run_dir)
    layout.path.mkdir(parents=True, exist_ok=True)
    with held(layout.start_lock):  # two commands started at once: the second sees the first's identity
        records = layout.load_records()
        _check_same_run(spec, records)
        identity = run_identity(spec, shards)
        plan = [{"task_id": s.task_id, "episodes": list(s.episodes)} for s in shards]
        stored = layout.load_command() if layout.has_command() else None
        if stored is not None:
            check_same_identity(spec.run_id, stored.get("identity"), identity)
        if stored is None or stored.get("shards") != plan:  # a resume of the same plan keeps the files that began it
            command = [o for o in overrides if not o.startswith("run_id=")] + [f"run_id={spec.run_id}"]
            layout.write_start(OmegaConf.to_yaml(cfg), {"hash": spec.protocol.hash, **spec.protocol.to_dict()},
                               {"identity": identity, "overrides": command, "shards": plan})
        return {r.key for r in layout.load_records()}  # under the plan now on disk


def run_identity(spec: RunSpec, shards: list[Shard]) -> dict:
    """What a run is: policy config, the weights' content hash, suite, task set and protocol hash."""
    return {"policy": spec.policy, "checkpoint_sha": spec.checkpoint_sha, "suite": spec.suite.name,
            "tasks": sorted({s.task_id for s in shards}), "protocol_hash": spec.protocol.hash}


def check_same_identity(run_id: str, stored: dict | None, wanted: dict) -> None:
    """Refuse to add episodes to a run of another identity, naming what differs."""
    if stored is None or stored == wanted:
        return
    keys = sorted({*stored, *wanted})
    diffs = [f"{k}: {stored.get(k)!r} -> {wanted.get(k)!r}" for k in keys
             if k != "policy" and stored.get(k) != wanted.get(k)]
    p_old, p_new = stored.get("policy", {}), wanted["policy"]
    diffs += [f"policy.{k}: {p_old.get(k)!r} -> {p_new.get(k)!r}" for k in sorted({*p_old, *p_new})
              if p_old.get(k) != p_new.get(k)]
    raise InvalidConfig(f"Run {run_id} was started with other settings ({'; '.join(diffs)}); "
                        "use another run_id, or the run's own command (sfbench merge shows it)")


def run_eval(cfg: DictConfig, overrides: list[str]) -> tuple[RunSpec, dict | None]:
    """Run, resume or submit the evaluation described by ``cfg``.

    Everything is validated before the run directory is created. Returns the run spec and its
    summary, or None for a submitted run that was not waited for.
    """
    spec, shards = make_run_spec(cfg)
    launcher = make_config(LauncherConfig, OmegaConf.to_container(cfg.launcher), what="launcher")
    recorded = start_run(cfg, spec, shards, overrides)
    log.info("Run %s: %d shards -> %s", spec.run_id, len(shards), spec.run_dir)
    dispatch(launcher, spec, shards, recorded, progress=cfg.eval.progress)
    return spec, summarize(spec.run_dir) if launcher.blocks else None
