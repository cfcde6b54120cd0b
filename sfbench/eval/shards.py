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
from sfbench.core.protocol import Protocol
from sfbench.envs import make_env
from sfbench.eval.records import EpisodeRecord, append_record
from sfbench.eval.rollout import INFRA_ERROR, Episode, EpisodeOutcome, RolloutLoop
from sfbench.eval.rundir import RunDir
from sfbench.eval.video import annotate, write_mp4
from sfbench.eval.workers import make_slots
from sfbench.policies import Requirements, family_of, make_policy

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


def make_run_id(policy: dict[str, Any], suite: str, protocol: Protocol) -> str:
    """Deterministic run id, so that rerunning the same command resumes the same run."""
    blob = json.dumps({"policy": policy, "suite": suite, "protocol": protocol.hash}, sort_keys=True, default=str)
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
    write_mp4(path, annotate(out.frames, instruction, text, out.success))
    return str(path.relative_to(spec.run_dir))


def _record(spec: RunSpec, checkpoint: str, episode: Episode, out: EpisodeOutcome, video: str | None):
    return EpisodeRecord(
        run_id=spec.run_id,
        policy=spec.policy["name"],
        checkpoint=checkpoint,
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
    recorded: set[tuple] | None = None,
) -> int:
    """Run the unrecorded episodes of ``shards`` on ``num_workers`` env workers; return how many ran.

    Each finished episode is appended to ``records/<shard>.jsonl`` at once, so an interrupted run
    loses at most the episodes in flight. ``requirements`` overrides what the envs render (e.g.
    demonstration collection renders views a privileged expert does not need); with a ``sink``
    every episode keeps its trajectory and is passed to it before its record is written.
    ``recorded`` is the set of episode keys already recorded (read from the run when None).
    """
    run_dir = RunDir(spec.run_dir)
    if recorded is None:
        recorded = {r.key for r in run_dir.load_records()}
    work = [(shard, e) for shard, todo in pending(spec, shards, recorded).items() for e in todo]
    if not work:
        return 0
    shard_of = {(s.task_id, e): s for s, e in work}
    episodes = [Episode(s.task_id, e, spec.protocol.global_seed + e, e < spec.videos_per_task, sink is not None)
                for s, e in work]
    n = max(1, min(num_workers, len(episodes)))
    policies = [make_policy(spec.policy) for _ in range(1 if family_of(spec.policy).batchable else n)]
    policies = policies * n if len(policies) == 1 else policies
    slots = make_slots(partial(make_task_env, spec, requirements or policies[0].requirements), spec.protocol, n)

    def done(episode: Episode, out: EpisodeOutcome) -> None:
        if (out.failure_reason or "").startswith(INFRA_ERROR):
            log.warning("Task %d episode %d not recorded (%s); rerun the command to retry it",
                        episode.task_id, episode.index, out.failure_reason)
            return
        instruction = spec.instructions[episode.task_id]
        if sink:
            sink(episode, out)
        video = _save_video(spec, episode, out, instruction) if out.frames else None
        rec = _record(spec, policies[0].checkpoint_id, episode, out, video)
        append_record(run_dir.record_file(shard_of[(episode.task_id, episode.index)].name), rec)
        if on_episode:
            on_episode(rec)

    try:
        RolloutLoop(slots, policies, spec.protocol).run(episodes, done)
    finally:
        for slot in slots:
            slot.close()
    return len(episodes)


def run_shard(spec: RunSpec, shard: Shard, on_episode: Callable[[EpisodeRecord], None] | None = None) -> int:
    """Run one shard in this process (what a cluster job does)."""
    return run_shards(spec, [shard], num_workers=spec.num_workers, on_episode=on_episode)
