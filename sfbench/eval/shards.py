"""Evaluation runs: plan shards of (task, episodes), run them, skip episodes already recorded."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from sfbench.config.tree import SuiteConfig
from sfbench.core import provenance
from sfbench.core.errors import InvalidConfig
from sfbench.core.protocol import Protocol
from sfbench.envs import make_env
from sfbench.eval.locks import held, locked
from sfbench.eval.records import EpisodeRecord, append_record
from sfbench.eval.rollout import INFRA_ERROR, Episode, EpisodeOutcome, RolloutLoop
from sfbench.eval.rundir import RunDir
from sfbench.eval.video import annotate, write_mp4
from sfbench.eval.workers import make_slots
from sfbench.policies import Policy, Requirements, family_of, make_policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """A unit of work: some episodes of one task. Its name is its records file."""

    task_id: int
    episodes: tuple[int, ...]

    @property
    def name(self) -> str:
        """Stable file-name-safe identifier."""
        return f"task{self.task_id:03d}_ep{self.episodes[0]:04d}-{self.episodes[-1]:04d}"


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to run shards of one evaluation run (picklable)."""

    run_id: str
    run_dir: Path
    suite: SuiteConfig
    protocol: Protocol
    policy: dict[str, Any]
    videos_per_task: int = 1
    num_workers: int = 1
    task_names: dict[int, str] = field(default_factory=dict)
    instructions: dict[int, str] = field(default_factory=dict)
    infra_retries: int = 1
    checkpoint_sha: str | None = None  # content hash of the policy's weights (None: no weights)
    server: Any = None  # ServerSettings of a served run (sfbench.serve.served_run); None: in process
    render_on_demand: bool = True  # render camera images only where the policy reads them
    video_stride: int = 1  # control steps per video frame
    first_episode: int = 0  # index of each task's first episode: videos are of the first videos_per_task from it


def make_run_id(policy: dict[str, Any], suite: str, protocol: Protocol, checkpoint_sha: str | None,
                tasks: list[int]) -> str:
    """Deterministic run id over what a run's identity compares, so the same command resumes the same run.

    Policy config, weights, suite, task set and protocol hash are in it; the episode count is not,
    so raising ``eval.episodes_per_task`` resumes the run and adds episodes.
    """
    key = {"policy": policy, "suite": suite, "protocol": protocol.hash, "tasks": sorted(tasks)}
    blob = json.dumps(key if checkpoint_sha is None else {**key, "checkpoint_sha": checkpoint_sha},
                      sort_keys=True, default=str)
    return f"{policy['name']}-{suite}-{protocol.name}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def plan_shards(task_ids: list[int], episodes: range, episodes_per_shard: int) -> list[Shard]:
    """Split every task's episodes into consecutive shards of at most ``episodes_per_shard``."""
    eps = list(episodes)
    step = episodes_per_shard
    return [Shard(t, tuple(eps[i : i + step])) for t in task_ids for i in range(0, len(eps), step)]


def pending(spec: RunSpec, shards: list[Shard], recorded: set[tuple]) -> dict[Shard, list[int]]:
    """Episodes of each shard whose key is not in ``recorded`` (the run's recorded episode keys)."""
    return {s: [e for e in s.episodes if (spec.suite.name, s.task_id, e) not in recorded] for s in shards}


def make_task_env(spec: RunSpec, requirements: Requirements, task_id: int) -> Any:
    """The env of one task of the run, rendering only what the policy requires (picklable via partial)."""
    return make_env(spec.suite, task_id, spec.protocol, views=requirements.views, depth=requirements.depth,
                    privileged=requirements.privileged)


def _save_video(spec: RunSpec, episode: Episode, out: EpisodeOutcome, instruction: str) -> str:
    verdict = "SUCCESS" if out.success else f"FAILURE ({out.failure_reason or 'budget exhausted'})"
    text = f"{verdict} after {out.steps} steps - task {episode.task_id}, episode {episode.index}"
    path = RunDir(spec.run_dir).video(episode.task_id, episode.index)
    fps = max(1, round(20 / spec.video_stride))
    # frame 0 is the reset; frame i follows step i * stride; the last one is the episode's end
    steps = [min(i * spec.video_stride, out.steps) for i in range(len(out.frames))]
    write_mp4(path, annotate(out.frames, instruction, text, out.success, steps=steps, hold=fps), fps=fps)
    return str(path.relative_to(spec.run_dir))


def _record(spec: RunSpec, policy: Policy, episode: Episode, out: EpisodeOutcome, video: str | None):
    return EpisodeRecord(
        run_id=spec.run_id,
        policy=spec.policy["name"],
        checkpoint=policy.checkpoint_id,
        policy_info=policy.record_info,
        suite=spec.suite.name,
        task_id=episode.task_id,
        task_name=spec.task_names[episode.task_id],
        episode_index=episode.index,
        init_state_index=episode.index,
        seed=episode.seed,
        protocol=spec.protocol.name,
        protocol_hash=spec.protocol.hash,
        success=out.success,
        steps=out.steps,
        wall_s=round(out.wall_s, 3),
        failure_reason=out.failure_reason,
        video_path=video,
        host=provenance.host(),
        job_id=provenance.job_id(),
        versions=provenance.versions(),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    )


def run_shards(
    spec: RunSpec,
    shards: list[Shard],
    *,
    num_workers: int = 1,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
    requirements: Requirements | None = None,
    sink: Callable[[Episode, EpisodeOutcome], None] | None = None,
    drop_noops: bool = False,
) -> int:
    """Run the unrecorded episodes of ``shards`` on ``num_workers`` env workers; return how many ran.

    Each finished episode is appended to ``records/<shard>.jsonl`` at once, so an interrupted run
    loses at most the episodes in flight. A shard is run only under its lock: shards that another
    process is running are waited for, then whatever that process left unrecorded is run here, so
    concurrent commands on one run share its shards and never run an episode twice.
    ``requirements`` overrides what the envs render (e.g. demonstration collection renders views
    a privileged expert does not need); with a ``sink`` every episode keeps its trajectory and is
    passed to it before its record is written. ``drop_noops``: no-op actions are dropped unexecuted
    (:func:`~sfbench.eval.rollout.is_noop`), as OFT's released demos were.
    """
    run_dir, ran = RunDir(spec.run_dir), 0
    todo = _unfinished(spec, shards)
    while todo:
        with locked(run_dir.record_file(s.name) for s in todo) as mine:
            own = [s for s in todo if run_dir.record_file(s.name) in mine]
            if own:
                ran += _run_locked(spec, own, num_workers, on_episode, requirements, sink, drop_noops)
        busy = [s for s in todo if s not in own]
        if busy:
            log.info("Shard %s of %s is being run by another process; waiting for it", busy[0].name, spec.run_id)
            with held(run_dir.record_file(busy[0].name)):
                pass  # its owner has finished or died
        todo = _unfinished(spec, busy)
    return ran


def _unfinished(spec: RunSpec, shards: list[Shard]) -> list[Shard]:
    recorded = {r.key for r in RunDir(spec.run_dir).load_records()}
    return [s for s, todo in pending(spec, shards, recorded).items() if todo]


def _run_locked(spec: RunSpec, shards: list[Shard], num_workers: int, on_episode, requirements, sink,
                drop_noops: bool = False) -> int:
    """Run the unrecorded episodes of ``shards`` (locked by the caller), retrying infrastructure errors."""
    run_dir = RunDir(spec.run_dir)
    work = [(shard, e) for shard, todo in pending(spec, shards, {r.key for r in run_dir.load_records()}).items()
            for e in todo]
    shard_of = {(s.task_id, e): s for s, e in work}
    episodes = [Episode(s.task_id, e, spec.protocol.global_seed + e, e - spec.first_episode < spec.videos_per_task,
                sink is not None, drop_noops)
                for s, e in work]
    n = max(1, min(num_workers, len(episodes)))
    policies = _policies(spec, n)
    needs = requirements or policies[0].requirements
    if needs.depth and not spec.protocol.depth:  # a remote policy's needs are known only from its server
        raise InvalidConfig(f"policy {spec.policy['name']} reads metric depth, but protocol {spec.protocol.name} "
                            "gives none (depth: false)")
    slots = make_slots(partial(make_task_env, spec, needs), spec.protocol, n)
    failed: list[Episode] = []

    def done(episode: Episode, out: EpisodeOutcome) -> None:
        shard = shard_of[(episode.task_id, episode.index)]
        if (out.failure_reason or "").startswith(INFRA_ERROR):
            run_dir.add_infra_error(shard.name, _infra_entry(episode, out.failure_reason))
            failed.append(episode)
            return
        if sink:
            sink(episode, out)
        video = _save_video(spec, episode, out, spec.instructions[episode.task_id]) if out.frames else None
        rec = _record(spec, policies[0], episode, out, video)
        append_record(run_dir.record_file(shard.name), rec)
        if on_episode:
            on_episode(rec)

    try:
        queue = episodes
        for attempt in range(spec.infra_retries + 1):
            RolloutLoop(slots, policies, spec.protocol, on_demand=spec.render_on_demand,
                        video_stride=spec.video_stride).run(queue, done)
            queue, failed[:] = list(failed), []
            if queue and attempt < spec.infra_retries:
                log.warning("Retrying %d episodes after infrastructure errors (retry %d of %d)",
                            len(queue), attempt + 1, spec.infra_retries)
    finally:
        for slot in slots:
            slot.close()
    for episode in queue:
        log.warning("Task %d episode %d not scored: infrastructure error %d times; rerun the command to retry it",
                    episode.task_id, episode.index, spec.infra_retries + 1)
    return len(episodes)


def _policies(spec: RunSpec, n: int) -> list[Policy]:
    """One policy per env slot: a shared batchable instance, or clients of the run's server."""
    if spec.server is not None:
        from sfbench.serve.served_run import remote_policy

        return [remote_policy(spec, spec.server) for _ in range(n)]
    policies = [make_policy(spec.policy) for _ in range(1 if family_of(spec.policy).batchable else n)]
    return policies * n if len(policies) == 1 else policies


def _infra_entry(episode: Episode, reason: str) -> dict[str, Any]:
    return {"task_id": episode.task_id, "episode_index": episode.index, "reason": reason,
            "host": provenance.host(), "job_id": provenance.job_id(),
            "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}


def run_shard(spec: RunSpec, shard: Shard, on_episode: Callable[[EpisodeRecord], None] | None = None) -> int:
    """Run one shard in this process (what a cluster job does)."""
    return run_shards(spec, [shard], num_workers=spec.num_workers, on_episode=on_episode)
