"""The scripted expert in the real simulator (marker ``sim``)."""

from __future__ import annotations

import pytest

from sfbench.config.tree import load_protocol, load_suite
from sfbench.envs import make_env
from sfbench.eval.rollout import run_episode
from sfbench.policies import make_policy

pytestmark = pytest.mark.sim
PROTOCOL = load_protocol("libero_oft")


def rollout(suite: str, task_id: int, init: int):
    policy = make_policy({"name": "scripted"})
    req = policy.requirements
    env = make_env(load_suite(suite), task_id, PROTOCOL, views=req.views, privileged=req.privileged)
    try:
        return run_episode(env, policy, PROTOCOL, task_id=task_id, init_state_index=init, seed=7)
    finally:
        env.close()


def test_expert_solves_libero_spatial_task0_within_the_protocol_budget():
    out = rollout("libero_spatial", 0, 0)
    assert out.failure_reason is None
    assert out.success, f"expert failed after {out.steps} steps"
    assert out.steps <= PROTOCOL.max_steps_for("libero_spatial")


def test_expert_refuses_tasks_it_cannot_do_with_a_reason():
    out = rollout("libero_goal", 0, 0)  # "open the middle drawer of the cabinet"
    assert not out.success and out.steps == 0
    assert out.failure_reason.startswith("unsupported_task:") and "open" in out.failure_reason
