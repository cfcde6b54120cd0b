"""Rendering only where the policy reads: the same episodes as rendering every step (real LIBERO)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import pytest

from sfbench.config.tree import load_protocol, load_suite
from sfbench.core.constants import OBS_AGENTVIEW, OBS_PROPRIO, OBS_WRIST
from sfbench.core.task import TaskSpec
from sfbench.envs import make_env
from sfbench.envs.base import request_images
from sfbench.eval.rollout import Episode, LocalSlot, RolloutLoop
from sfbench.policies.base import Policy, Requirements

pytestmark = pytest.mark.sim
SUITE = load_suite("libero_spatial")


@dataclass
class _Config:
    name: str = "image_chaser"


class ImageChaser(Policy):
    """Moves by the mean colour of its views, so that any image difference changes the episode."""

    name = "image_chaser"
    config_class = _Config

    def __init__(self):
        self.config, self.seen = _Config(), []

    @property
    def requirements(self) -> Requirements:
        return Requirements(views=(OBS_AGENTVIEW, OBS_WRIST), depth=True)

    def reset(self, task: TaskSpec, *, seed: int | None = None) -> None:
        pass

    def act(self, obs: dict) -> np.ndarray:
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(obs[v]).tobytes() for v in (OBS_AGENTVIEW, OBS_WRIST)))
        self.seen.append((digest.hexdigest(), float(obs["depth"][OBS_AGENTVIEW].mean())))
        a = np.zeros((8, 7))
        a[:, :3] = (np.array([obs[OBS_AGENTVIEW].mean(), obs[OBS_WRIST].mean(), 128.0]) / 255 - 0.5) * 2
        a[:, 6] = -1.0 if len(self.seen) < 3 else 1.0
        return a


def _run(protocol, on_demand: bool):
    policy = ImageChaser()
    slot = LocalSlot(lambda t: make_env(SUITE, t, protocol, views=policy.requirements.views, depth=True), protocol)
    outcomes = []
    RolloutLoop([slot], [policy], protocol, on_demand=on_demand).run(
        [Episode(0, 2, 2, record=True)], lambda e, out: outcomes.append(out))
    slot.close()
    (out,) = outcomes
    return (out.success, out.steps, out.failure_reason), policy.seen, len(out.frames)


@pytest.mark.parametrize("profile", ["libero_oft", "libero_oft_fast"])
def test_on_demand_rendering_gives_the_same_episode_and_images(profile):
    protocol = dataclasses.replace(load_protocol(profile), max_steps={"libero_spatial": 40})
    every = _run(protocol, on_demand=False)
    demand = _run(protocol, on_demand=True)
    assert every[0] == demand[0] and every[0][1] == 40
    assert every[1] == demand[1] and len(every[1]) == 5, "identical images and depth at every query"
    assert every[2] == demand[2] == 41, "the video still gets every frame"


def test_a_step_without_images_returns_no_view_keys():
    protocol = load_protocol("libero_oft_fast")
    env = make_env(SUITE, 0, protocol, views=(OBS_AGENTVIEW,), depth=True)
    obs, _ = env.reset(options={"init_state_index": 0})
    assert OBS_AGENTVIEW in obs and "depth" in obs
    request_images(env, False)
    obs, *_ = env.step(np.zeros(7))
    assert OBS_AGENTVIEW not in obs and "depth" not in obs and OBS_PROPRIO in obs, "never a stale image"
    request_images(env, True)
    obs, *_ = env.step(np.zeros(7))
    size = protocol.render_size
    assert obs[OBS_AGENTVIEW].shape == (size, size, 3) and obs["depth"][OBS_AGENTVIEW].shape == (size, size)
    env.close()
