"""Evaluation runs: plan shards of (task, episodes), run them, skip episodes already recorded."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sfbench import provenance
from sfbench.config import SuiteConfig
from sfbench.envs import make_env
from sfbench.policies import Policy, make_policy
from sfbench.protocol import Protocol
from sfbench.records import RECORDS_DIR, EpisodeRecord, append_record, load_records
from sfbench.rollout import EpisodeOutcome, run_episode
from sfbench.video import annotate, write_mp4

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
    extra: dict[str, Any] = field(default_factory=dict)


def make_run_id(policy: dict[str, Any], suite: str, protocol: Protocol) -> str:
    """Deterministic run id, so that rerunning the same command resumes the same run."""
    blob = json.dumps({"policy": policy, "suite": suite, "protocol": protocol.hash}, sort_keys=True, default=str)
    return f"{policy['name']}-{suite}-{protocol.name}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def plan_shards(task_ids: list[int], episodes: range, episodes_per_shard: int) -> list[Shard]:
    """Split every task's episodes into consecutive shards of at most ``episodes_per_shard``."""
    eps = list(episodes)
    return [
        Shard(t, tuple(eps[i : i + episodes_per_shard])) for t in task_ids for i in range(0, len(eps), episodes_per_shard)
    ]


def pending(spec: RunSpec, shard: Shard) -> list[int]:
    """Episodes of ``shard`` that have no record yet."""
    done = {r.key for r in load_records(spec.run_dir)}
    return [e for e in shard.episodes if (spec.suite.name, shard.task_id, e) not in done]


def _make_task_env(spec: RunSpec, task_id: int, policy: Policy) -> Any:
    req = policy.requirements
    return make_env(
        spec.suite, task_id, spec.protocol, views=req.views, depth=req.depth, privileged=req.privileged
    )


def _save_video(spec: RunSpec, task_id: int, episode: int, out: EpisodeOutcome, instruction: str) -> str:
    verdict = "SUCCESS" if out.success else f"FAILURE ({out.failure_reason or 'budget exhausted'})"
    text = f"{verdict} after {out.steps} steps - task {task_id}, episode {episode}"
    path = spec.run_dir / "videos" / f"task{task_id:03d}_ep{episode:04d}.mp4"
    write_mp4(path, annotate(out.frames, instruction, text, out.success))
    return str(path.relative_to(spec.run_dir))


def _record(spec: RunSpec, policy: Policy, env: Any, episode: int, out: EpisodeOutcome, video: str | None):
    task = env.unwrapped.spec_task
    return EpisodeRecord(
        run_id=spec.run_id,
        policy=spec.policy["name"],
        checkpoint=policy.checkpoint_id,
        suite=spec.suite.name,
        task_id=task.task_id,
        task_name=task.name,
        episode_index=episode,
        init_state_index=episode,
        seed=spec.protocol.global_seed + episode,
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


def run_shard(spec: RunSpec, shard: Shard, on_episode: Callable[[EpisodeRecord], None] | None = None) -> int:
    """Run the episodes of ``shard`` that are not recorded yet; return how many were run.

    Each finished episode is appended to ``records/<shard>.jsonl`` at once, so an interrupted
    shard loses at most the episode in flight. A simulator error closes and rebuilds the env.
    """
    todo = pending(spec, shard)
    if not todo:
        return 0
    policy = make_policy(spec.policy)
    env = _make_task_env(spec, shard.task_id, policy)
    records_path = spec.run_dir / RECORDS_DIR / f"{shard.name}.jsonl"
    try:
        for episode in todo:
            record_video = episode < spec.videos_per_task
            out = run_episode(
                env,
                policy,
                env.unwrapped.spec_task,
                spec.protocol,
                init_state_index=episode,
                seed=spec.protocol.global_seed + episode,
                record=record_video,
            )
            video = _save_video(spec, shard.task_id, episode, out, env.unwrapped.spec_task.instruction) if out.frames else None
            rec = _record(spec, policy, env, episode, out, video)
            append_record(records_path, rec)
            if on_episode:
                on_episode(rec)
            if out.failure_reason and out.failure_reason.startswith("sim_error"):
                env.close()
                env = _make_task_env(spec, shard.task_id, policy)
    finally:
        env.close()
    return len(todo)
