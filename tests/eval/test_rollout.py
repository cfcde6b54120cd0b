from __future__ import annotations

import numpy as np
import pytest

from sfbench.config.tree import load_protocol
from sfbench.eval.rollout import run_episode
from sfbench.policies.base import Policy, Requirements
from tests.fakes import FAKE_SUITE, ReachEnv

PROTOCOL = load_protocol("libero_oft")


class Scripted(Policy):
    """Returns whatever ``make_chunk(obs)`` gives; counts queries."""

    name = "test_scripted"
    config_class = dict

    def __init__(self, make_chunk):
        self.make_chunk, self.queries = make_chunk, 0

    @property
    def requirements(self):
        return Requirements(views=())

    def reset(self, task, *, seed=None):
        self.queries = 0

    def act(self, obs):
        self.queries += 1
        return self.make_chunk(obs)


def towards_target(obs):
    x, target = obs["proprio"][:2]
    chunk = np.zeros((8, 7), dtype=np.float32)
    chunk[:, 0] = np.clip((target - x) / 0.1, -1, 1) / 8 * 8  # saturates for most of the way
    return chunk


def episode(policy, env=None, **kw):
    env = env or ReachEnv(FAKE_SUITE.name, 0, PROTOCOL)
    return run_episode(env, policy, PROTOCOL, task_id=0, init_state_index=kw.pop("init", 0), seed=7, **kw)


def test_success_ends_the_episode_and_chunks_run_open_loop():
    policy = Scripted(towards_target)
    out = episode(policy)
    assert out.success and out.failure_reason is None
    assert out.steps == 10, "x moves 0.1 per step to reach target 1.0"
    assert policy.queries == 2, "8 actions per chunk are executed before re-querying"


def test_budget_exhaustion_is_a_plain_failure():
    out = episode(Scripted(lambda obs: np.zeros((8, 7), dtype=np.float32)))
    assert (out.success, out.steps, out.failure_reason) == (False, PROTOCOL.max_steps_for("libero_spatial"), None)


@pytest.mark.parametrize(("chunk", "reason"), [
    (np.full((8, 7), np.nan), "policy_nan"),
    (np.full((2, 7), np.inf), "policy_nan"),
    (np.zeros((8, 6)), "bad_action_shape"),
    (np.zeros(7), "bad_action_shape"),
    ([[0.0] * 7], "bad_action_shape"),
])
def test_invalid_actions_fail_the_episode_with_a_reason(chunk, reason):
    out = episode(Scripted(lambda obs: chunk))
    assert not out.success and out.failure_reason.startswith(reason)


def test_policy_exception_is_recorded():
    def boom(obs):
        raise ValueError("weights exploded")

    out = episode(Scripted(boom))
    assert out.failure_reason == "policy_error: ValueError: weights exploded"


def test_simulator_exception_is_recorded():
    env = ReachEnv(FAKE_SUITE.name, 0, PROTOCOL, crash_at_step=3)
    out = episode(Scripted(towards_target), env=env)
    assert out.failure_reason.startswith("sim_error: RuntimeError") and out.steps == 2


def test_recording_collects_one_frame_per_step_plus_reset():
    out = episode(Scripted(towards_target), record=True)
    assert len(out.frames) == out.steps + 1
