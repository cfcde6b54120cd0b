"""OFT's no-op rule and its use in the rollout loop: dropped actions are never executed."""

from __future__ import annotations

import numpy as np
import pytest

from sfbench.config.tree import load_protocol
from sfbench.eval.rollout import MAX_NOOP_QUERIES, Episode, LocalSlot, RolloutLoop, is_noop
from tests.eval.test_rollout import Scripted
from tests.fakes import FAKE_SUITE, ReachEnv

PROTOCOL = load_protocol("libero_oft")
OPEN, CLOSE = -1.0, 1.0


def act(x: float = 0.0, grip: float = OPEN, y: float = 0.0) -> np.ndarray:
    return np.array([x, y, 0, 0, 0, 0, grip])


@pytest.mark.parametrize(("action", "prev", "noop"), [
    (act(), act(0.5), True),  # still, same gripper
    (act(grip=CLOSE), act(0.5), False),  # still, but the gripper command changes
    (act(5e-5), act(0.5), True),  # below the threshold
    (act(2e-4), act(0.5), False),
    (act(8e-5, y=8e-5), act(0.5), False),  # the norm of the 6 motion dims counts, not each dim
    (act(grip=CLOSE), None, True),  # the first action: only the motion counts (OFT's special case)
    (act(0.3), None, False),
])
def test_is_noop_follows_oft(action, prev, noop):
    assert is_noop(action, prev) is noop


class RecordingEnv(ReachEnv):
    """A reach env that remembers every action it executed."""

    def __init__(self):
        super().__init__(FAKE_SUITE.name, 0, PROTOCOL)
        self.executed: list[np.ndarray] = []

    def step(self, action):
        self.executed.append(np.asarray(action).copy())
        return super().step(action)


def run(policy, *, drop_noops=True):
    env, outcomes = RecordingEnv(), []
    RolloutLoop([LocalSlot(lambda _t: env, PROTOCOL)], [policy], PROTOCOL).run(
        [Episode(0, 0, 7, keep_trajectory=True, drop_noops=drop_noops)], lambda _e, out: outcomes.append(out))
    return env, outcomes[0]


STREAM = [act(), act(0.5), act(), act(grip=CLOSE), act(grip=CLOSE), act(1e-5, grip=CLOSE), act(grip=OPEN),
          act(0.5)]
KEPT = [1, 3, 6, 7]  # act() first: no motion; then the same gripper as the last kept action, twice


def stream_then_reach(obs):
    """STREAM (one chunk of 8 actions) at the first query, then straight towards the target."""
    return np.stack(STREAM if obs["proprio"][0] == 0 else [act(1.0)] * 8)


def test_dropped_noops_are_not_executed_and_the_trajectory_stays_consistent():
    env, out = run(Scripted(stream_then_reach))
    executed = np.stack(env.executed)
    np.testing.assert_array_equal(executed[:4], np.stack(STREAM)[KEPT])
    assert out.noops_dropped == 4 and out.steps == len(env.executed)
    np.testing.assert_array_equal(np.stack([a for _, a in out.trajectory]), executed)
    xs = np.array([o["proprio"][0] for o, _ in out.trajectory])
    expected = np.concatenate([[0.0], np.cumsum(0.1 * executed[:-1, 0])]).astype(np.float32)
    np.testing.assert_allclose(xs, expected, atol=1e-6, err_msg="each kept step sees the state its predecessor left")


def test_without_drop_noops_every_action_is_executed():
    env, out = run(Scripted(stream_then_reach), drop_noops=False)
    np.testing.assert_array_equal(np.stack(env.executed)[:len(STREAM)], np.stack(STREAM))
    assert out.noops_dropped == 0


def test_a_chunk_of_only_noops_is_asked_again_on_the_same_observation():
    seen = []

    def chunk(obs):
        seen.append(obs["proprio"].copy())
        return np.stack([act(0.5)] if len(seen) % 2 else [act(), act()])

    policy = Scripted(chunk)
    env, out = run(policy)
    assert all(np.allclose(a[0], 0.5) for a in env.executed), "no no-op reached the env"
    assert out.success and out.noops_dropped == 2 * (policy.queries // 2)
    np.testing.assert_array_equal(seen[1], seen[2], err_msg="a dropped chunk does not advance the sim")


def test_a_policy_giving_only_noops_fails_instead_of_running_forever():
    policy = Scripted(lambda obs: np.stack([act()] * 8))
    env, out = run(policy)
    assert out.failure_reason.startswith("policy_stalled") and not out.success
    assert env.executed == [] and policy.queries == MAX_NOOP_QUERIES
    assert out.noops_dropped == 8 * MAX_NOOP_QUERIES
