"""A fake benchmark: a 1-D reach task that runs in microseconds, for runner and rollout tests."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sfbench.config.tree import SuiteConfig
from sfbench.core.protocol import Protocol
from sfbench.core.task import TaskSpec

FAKE_SUITE = SuiteConfig(name="fake_suite", benchmark="tests.fakes", protocol_suite="libero_spatial",
                         num_tasks=3, num_init_states=50)


class ReachEnv(gym.Env):
    """Move x from 0 to the target ``1 + init_state_index / 10`` with action[0]; succeeds within 0.05.

    ``crash_at_step`` makes ``step`` raise, as a simulator error would.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, suite: str, task_id: int, protocol: Protocol, *, crash_at_step: int | None = None,
                 **_: Any):
        self.spec_task = task_spec(suite, task_id)
        self.max_steps = protocol.max_steps_for("libero_spatial")
        self.crash_at_step = crash_at_step
        self.action_space = spaces.Box(-1.0, 1.0, (7,), dtype=np.float32)
        self.observation_space = spaces.Dict({"proprio": spaces.Box(-np.inf, np.inf, (8,), dtype=np.float32)})
        self.steps_taken = 0

    def _obs(self) -> dict:
        p = np.zeros(8, dtype=np.float32)
        p[0], p[1] = self.x, self.target
        return {"proprio": p}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        self.target = 1.0 + (options or {}).get("init_state_index", 0) / 10
        return self._obs(), {"is_success": False}

    def step(self, action):
        self.t += 1
        self.steps_taken += 1
        if self.crash_at_step is not None and self.t >= self.crash_at_step:
            raise RuntimeError("simulated MuJoCo instability")
        self.x += 0.1 * float(action[0])
        success = abs(self.x - self.target) < 0.05
        return self._obs(), float(success), success, self.t >= self.max_steps and not success, {"is_success": success}

    def render(self):
        return np.full((8, 16, 3), int(self.x * 100) % 255, dtype=np.uint8)


def task_spec(suite: str, task_id: int) -> TaskSpec:
    return TaskSpec(suite=suite, task_id=task_id, name=f"reach_{task_id}", instruction=f"reach target {task_id}",
                    action_dim=7)


def make_env(suite: str, task_id: int, protocol: Protocol, **kwargs: Any) -> ReachEnv:
    return ReachEnv(suite, task_id, protocol, **kwargs)
