"""The only rollout loop: episodes on N env slots, one policy query per step for the live batch.

A slot is an env in this process (:class:`LocalSlot`) or in a worker process (``sfbench.eval.workers``).
Slots step concurrently; a finished slot takes the next queued episode or stops stepping. No file
I/O here: each finished episode is handed to a callback.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from sfbench.core.protocol import Protocol as EvalProtocol
from sfbench.core.task import TaskSpec
from sfbench.envs.base import request_images
from sfbench.policies.base import Policy, PolicyTimeout, PolicyUnavailable, UnsupportedTask

# Prefix of failure reasons caused by the machine, not by the policy or the task (a worker killed
# from outside, e.g. by the OOM killer): such episodes are not scored; a rerun retries them.
INFRA_ERROR = "infra_error"


class EpisodeFailure(Exception):
    """An episode ended by something other than the task: a crash or an invalid action."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Episode:
    """One episode to run: task, init state and policy seed."""

    task_id: int
    index: int
    seed: int
    record: bool = False
    keep_trajectory: bool = False
    # Drop no-op actions unexecuted (OFT's rule, :func:`is_noop`): demo collection's ``collect.drop_noops``.
    drop_noops: bool = False


@dataclass
class EpisodeOutcome:
    """Result of one episode; ``frames`` is filled only when recording."""

    success: bool
    steps: int
    wall_s: float
    failure_reason: str | None = None
    frames: list[np.ndarray] = field(default_factory=list)
    # (observation, action) pairs of every executed step, when the episode asked to keep them.
    trajectory: list[tuple[dict, np.ndarray]] = field(default_factory=list)
    noops_dropped: int = 0  # policy actions dropped unexecuted (``Episode.drop_noops``)


class EnvSlot(Protocol):
    """An env that can be reset and stepped asynchronously (``*_async`` then ``wait``)."""

    def reset_async(self, episode: Episode) -> None:
        """Start resetting to ``episode``'s task and init state."""

    def step_async(self, action: np.ndarray, *, images: bool = True, frame: bool = False) -> None:
        """Start one step; ``images``: render the observation's views, ``frame``: a video frame."""

    def wait(self) -> tuple:
        """Result of the last call, or :class:`EpisodeFailure`.

        ``(obs, info, task)`` after a reset, ``(obs, terminated, truncated, info)`` after a step;
        ``info["frame"]`` holds a render when recording.
        """

    def close(self) -> None:
        """Release the simulator."""


def _sim_failure(e: Exception) -> EpisodeFailure:
    return EpisodeFailure(f"sim_error: {type(e).__name__}: {e}")


class LocalSlot:
    """An env in this process, built per task by ``make_env(task_id)`` (rebuilt after a crash)."""

    def __init__(self, make_env: Callable[[int], gym.Env], protocol: EvalProtocol):
        self.make_env, self.protocol = make_env, protocol
        self.env: gym.Env | None = None
        self.task_id: int | None = None
        self.record = False
        self._result: tuple | EpisodeFailure = ()

    def _env_for(self, task_id: int) -> gym.Env:
        if self.env is None or self.task_id != task_id:
            self.close()
            self.env, self.task_id = self.make_env(task_id), task_id
        return self.env

    def _run(self, fn: Callable[[], tuple]) -> None:
        try:
            self._result = fn()
        except Exception as e:  # simulator crash: recorded; the next reset gets a fresh env
            self.close()
            self._result = _sim_failure(e)

    def _reset(self, episode: Episode) -> tuple:
        env = self._env_for(episode.task_id)
        self.record = episode.record
        request_images(env, True)  # the policy's first query reads the reset observation
        obs, info = env.reset(seed=self.protocol.env_seed, options={"init_state_index": episode.index})
        info = {**info, "frame": env.render()} if self.record else info
        return obs, info, env.get_wrapper_attr("spec_task")

    def _step(self, action: np.ndarray, images: bool, frame: bool) -> tuple:
        request_images(self.env, images)
        obs, _, terminated, truncated, info = self.env.step(action)
        info = {**info, "frame": self.env.render()} if self.record and frame else info
        return obs, terminated, truncated, info

    def reset_async(self, episode: Episode) -> None:
        """Reset now (in-process); the result is returned by :meth:`wait`."""
        self._run(lambda: self._reset(episode))

    def step_async(self, action: np.ndarray, *, images: bool = True, frame: bool = False) -> None:
        """Step now (in-process); the result is returned by :meth:`wait`."""
        self._run(lambda: self._step(action, images, frame))

    def wait(self) -> tuple:
        """The result of the last reset or step."""
        if isinstance(self._result, EpisodeFailure):
            raise self._result
        return self._result

    def close(self) -> None:
        """Close the current env."""
        if self.env is not None:
            self.env.close()
            self.env, self.task_id = None, None


def check_chunk(chunk: object, action_dim: int) -> np.ndarray:
    """Validate a policy output: a finite ``(chunk, action_dim)`` array, else :class:`EpisodeFailure`."""
    if not isinstance(chunk, np.ndarray) or chunk.ndim != 2 or chunk.shape[0] < 1 or chunk.shape[1] != action_dim:
        shape = getattr(chunk, "shape", type(chunk).__name__)
        raise EpisodeFailure(f"bad_action_shape: got {shape}, expected (chunk>=1, {action_dim})")
    if not np.all(np.isfinite(chunk)):
        raise EpisodeFailure("policy_nan: action chunk contains NaN or inf")
    return chunk


# Policy queries in a row answered only with no-ops (all dropped) before the episode fails: the sim
# does not advance while they are dropped, so a policy that only ever stands still would never end.
MAX_NOOP_QUERIES = 200


def is_noop(action: np.ndarray, prev_kept: np.ndarray | None, threshold: float = 1e-4) -> bool:
    """OpenVLA-OFT's no-op rule for 7-D LIBERO actions (``regenerate_libero_dataset.py``).

    A no-op moves nothing (``norm(action[:6]) < threshold``) and keeps the gripper command of the previous
    *kept* action. An episode's first action has no previous one: then only the motion counts, as in OFT.
    """
    if float(np.linalg.norm(action[:-1])) >= threshold:
        return False
    return prev_kept is None or bool(action[-1] == prev_kept[-1])


def _policy_failure(e: Exception) -> EpisodeFailure:
    if isinstance(e, UnsupportedTask):
        return EpisodeFailure(f"unsupported_task: {e}")
    if isinstance(e, PolicyTimeout):
        return EpisodeFailure(f"policy_timeout: {e}")
    if isinstance(e, PolicyUnavailable):  # not the policy's fault: not scored, retried
        return EpisodeFailure(f"{INFRA_ERROR}: policy unavailable: {e}")
    return EpisodeFailure(f"policy_error: {type(e).__name__}: {e}")


def _act(state: _Live) -> np.ndarray | EpisodeFailure:
    try:
        return state.policy.act(state.obs)
    except Exception as e:  # a policy bug fails this episode only; the reason is recorded
        return _policy_failure(e)


@dataclass
class _Live:
    """A slot's episode in progress."""

    episode: Episode
    policy: Policy
    start: float
    action_dim: int = 0
    obs: dict = field(default_factory=dict)
    actions: deque = field(default_factory=deque)
    steps: int = 0
    success: bool = False
    frames: list = field(default_factory=list)
    trajectory: list = field(default_factory=list)
    kept: np.ndarray | None = None  # the last executed action (the no-op rule's reference)
    noops_dropped: int = 0
    noop_queries: int = 0  # queries in a row whose every action was dropped

    def outcome(self, failure: str | None = None) -> EpisodeOutcome:
        return EpisodeOutcome(self.success and failure is None, self.steps, time.perf_counter() - self.start,
                              failure, self.frames, self.trajectory, self.noops_dropped)

    def next_action(self) -> np.ndarray | None:
        """Pop the next action to execute; None when every planned one was a dropped no-op (query again)."""
        if not self.episode.drop_noops:
            return self.actions.popleft()
        while self.actions:
            action = self.actions.popleft()
            if not is_noop(action, self.kept):
                self.kept, self.noop_queries = action, 0
                return action
            self.noops_dropped += 1
        self.noop_queries += 1
        if self.noop_queries >= MAX_NOOP_QUERIES:
            raise EpisodeFailure(f"policy_stalled: {MAX_NOOP_QUERIES} queries in a row gave only no-op actions, "
                                 "all dropped (collect.drop_noops)")
        return None


class RolloutLoop:
    """Runs queued episodes on ``slots``; policies come from ``policies`` (one per slot).

    When the policy class is ``batchable`` (stateless between queries), one instance answers the
    whole batch of live observations with a single :meth:`Policy.act_batch` call per step.

    With ``on_demand`` the envs render camera images only for the steps after which the policy is
    queried (and every step of an episode that keeps its trajectory); recorded episodes get a
    video frame every ``video_stride`` steps.
    """

    def __init__(self, slots: Sequence[EnvSlot], policies: Sequence[Policy], protocol: EvalProtocol, *,
                 on_demand: bool = True, video_stride: int = 1):
        self.slots, self.policies, self.protocol = list(slots), list(policies), protocol
        self.on_demand, self.video_stride = on_demand, video_stride
        self.pool: ThreadPoolExecutor | None = None

    def run(self, episodes: Sequence[Episode], on_done: Callable[[Episode, EpisodeOutcome], None]) -> None:
        """Run every episode; call ``on_done`` as each finishes (in completion order)."""
        queue, live = deque(episodes), {}
        concurrent = len(self.slots) > 1 and any(type(p).concurrent for p in self.policies)
        with ThreadPoolExecutor(len(self.slots)) if concurrent else nullcontext() as pool:
            self.pool = pool  # one thread pool for the run, not one per query
            while queue or live:
                self._start(queue, live, on_done)
                self._plan(live, on_done)
                self._advance(live, on_done)

    def _start(self, queue: deque, live: dict, on_done: Callable) -> None:
        idle = [i for i in range(len(self.slots)) if i not in live][: len(queue)]
        started = []
        for i in idle:
            episode = queue.popleft()
            live[i] = _Live(episode, self.policies[i], time.perf_counter())
            self.slots[i].reset_async(episode)
            started.append(i)
        for i in started:
            try:
                obs, info, task = self.slots[i].wait()
                self._reset_policy(live[i], task)
            except EpisodeFailure as f:
                on_done(live[i].episode, live.pop(i).outcome(f.reason))
                continue
            self._observe(live[i], obs, info)
            if live[i].success:  # solved at reset: nothing to do
                on_done(live[i].episode, live.pop(i).outcome())

    @staticmethod
    def _reset_policy(state: _Live, task: TaskSpec) -> None:
        state.action_dim = task.action_dim
        try:
            state.policy.reset(task, seed=state.episode.seed)
        except Exception as e:  # e.g. a task the policy cannot do: recorded, never a silent miss
            raise _policy_failure(e) from e

    @staticmethod
    def _observe(state: _Live, obs: dict, info: dict) -> None:
        state.obs, state.success = obs, bool(info["is_success"])
        if "frame" in info:
            state.frames.append(info["frame"])

    def _plan(self, live: dict, on_done: Callable) -> None:
        need = [i for i, s in live.items() if not s.actions]
        if not need:
            return
        for i, result in zip(need, self._query([live[i] for i in need]), strict=True):
            if isinstance(result, EpisodeFailure):
                on_done(live[i].episode, live.pop(i).outcome(result.reason))
            else:
                live[i].actions.extend(result[: self.protocol.open_loop_steps])

    def _query(self, states: list[_Live]) -> list[np.ndarray | EpisodeFailure]:
        policy = states[0].policy
        if type(policy).batchable:
            try:
                chunks: list[Any] = policy.act_batch([s.obs for s in states])
            except Exception as e:  # a policy bug fails these episodes only; the reason is recorded
                return [_policy_failure(e)] * len(states)
        elif type(policy).concurrent and len(states) > 1:
            chunks = list(self.pool.map(_act, states))
        else:
            chunks = [_act(s) for s in states]
        results: list[np.ndarray | EpisodeFailure] = []
        for state, chunk in zip(states, chunks, strict=True):
            try:
                results.append(chunk if isinstance(chunk, EpisodeFailure) else check_chunk(chunk, state.action_dim))
            except EpisodeFailure as f:
                results.append(f)
        return results

    def _advance(self, live: dict, on_done: Callable) -> None:
        stepped = []
        for i, state in list(live.items()):
            try:
                action = state.next_action()
            except EpisodeFailure as f:
                on_done(state.episode, live.pop(i).outcome(f.reason))
                continue
            if action is None:  # dropped unexecuted: the policy is asked again on the same observation
                continue
            keep = state.episode.keep_trajectory
            if keep:
                state.trajectory.append((state.obs, action))
            # the policy reads the next obs (with drop_noops, maybe after the actions left are dropped)
            images = not self.on_demand or keep or not state.actions or state.episode.drop_noops
            frame = state.episode.record and (state.steps + 1) % self.video_stride == 0
            self.slots[i].step_async(action, images=images, frame=frame)
            stepped.append(i)
        for i in stepped:
            state = live[i]
            try:
                obs, terminated, truncated, info = self.slots[i].wait()
            except EpisodeFailure as f:
                on_done(state.episode, live.pop(i).outcome(f.reason))
                continue
            state.steps += 1
            self._observe(state, obs, info)
            if terminated or truncated:
                on_done(state.episode, live.pop(i).outcome())


def run_episode(
    env: gym.Env,
    policy: Policy,
    protocol: EvalProtocol,
    *,
    task_id: int,
    init_state_index: int,
    seed: int,
    record: bool = False,
) -> EpisodeOutcome:
    """Run one episode of ``env`` in this process (the loop above with a single slot)."""
    slot = LocalSlot(lambda _task_id: env, protocol)
    outcomes: list[EpisodeOutcome] = []
    RolloutLoop([slot], [policy], protocol).run(
        [Episode(task_id, init_state_index, seed, record)], lambda _e, out: outcomes.append(out)
    )
    return outcomes[0]

