"""One episode: env x policy x protocol -> outcome. No file I/O; the only rollout loop."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from sfbench.policies.base import Policy
from sfbench.protocol import Protocol
from sfbench.task import TaskSpec


class EpisodeFailure(Exception):
    """An episode ended by something other than the task: a crash or an invalid action."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class EpisodeOutcome:
    """Result of :func:`run_episode`; ``frames`` is filled only when recording."""

    success: bool
    steps: int
    wall_s: float
    failure_reason: str | None = None
    frames: list[np.ndarray] = field(default_factory=list)


def check_chunk(chunk: object, action_dim: int) -> np.ndarray:
    """Validate a policy output: a finite ``(chunk, action_dim)`` array, else :class:`EpisodeFailure`."""
    if not isinstance(chunk, np.ndarray) or chunk.ndim != 2 or chunk.shape[0] < 1 or chunk.shape[1] != action_dim:
        shape = getattr(chunk, "shape", type(chunk).__name__)
        raise EpisodeFailure(f"bad_action_shape: got {shape}, expected (chunk>=1, {action_dim})")
    if not np.all(np.isfinite(chunk)):
        raise EpisodeFailure("policy_nan: action chunk contains NaN or inf")
    return chunk


def _query(policy: Policy, obs: dict, action_dim: int) -> np.ndarray:
    try:
        chunk = policy.act(obs)
    except Exception as e:  # a policy bug fails this episode only; the reason is recorded
        raise EpisodeFailure(f"policy_error: {type(e).__name__}: {e}") from e
    return check_chunk(chunk, action_dim)


def _reset_policy(policy: Policy, task: TaskSpec, seed: int) -> None:
    try:
        policy.reset(task, seed=seed)
    except Exception as e:  # e.g. a task the policy cannot handle: recorded, never a silent miss
        raise EpisodeFailure(f"policy_error: {type(e).__name__}: {e}") from e


def _step(env: gym.Env, action: np.ndarray) -> tuple:
    try:
        return env.step(action)
    except Exception as e:  # simulator crash: recorded, the run goes on with a fresh env
        raise EpisodeFailure(f"sim_error: {type(e).__name__}: {e}") from e


def run_episode(
    env: gym.Env,
    policy: Policy,
    task: TaskSpec,
    protocol: Protocol,
    *,
    init_state_index: int,
    seed: int,
    record: bool = False,
) -> EpisodeOutcome:
    """Run one episode from init state ``init_state_index`` until success or the step budget.

    Each chunk is executed open-loop for at most ``protocol.open_loop_steps`` actions. With
    ``record``, ``env.render()`` frames are collected (both views side by side).
    """
    start = time.perf_counter()
    steps, frames = 0, []
    try:
        obs, info = env.reset(seed=protocol.env_seed, options={"init_state_index": init_state_index})
    except Exception as e:
        return EpisodeOutcome(False, 0, time.perf_counter() - start, f"sim_error: {type(e).__name__}: {e}")
    if record:
        frames.append(env.render())
    success = done = bool(info["is_success"])
    try:
        _reset_policy(policy, task, seed)
        while not done:
            for action in _query(policy, obs, env.action_space.shape[0])[: protocol.open_loop_steps]:
                obs, _, terminated, truncated, info = _step(env, action)
                steps += 1
                if record:
                    frames.append(env.render())
                success, done = bool(info["is_success"]), terminated or truncated
                if done:
                    break
    except EpisodeFailure as failure:
        return EpisodeOutcome(False, steps, time.perf_counter() - start, failure.reason, frames)
    return EpisodeOutcome(success, steps, time.perf_counter() - start, None, frames)
