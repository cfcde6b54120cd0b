"""A policy that never moves: the floor of every success rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sfbench.core.task import TaskSpec
from sfbench.policies.base import Policy, Requirements


@dataclass
class ZeroConfig:
    """Configuration of :class:`ZeroPolicy`.

    Args:
        chunk_size: Actions per returned chunk.
        gripper: Gripper command held throughout (-1 open, +1 closed).
    """

    chunk_size: int = 8
    gripper: float = -1.0

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if not -1.0 <= self.gripper <= 1.0:
            raise ValueError(f"gripper must be in [-1, 1], got {self.gripper}")


class ZeroPolicy(Policy):
    """Returns zero motion with a constant gripper command."""

    name = "zero"
    config_class = ZeroConfig
    batchable = True

    def __init__(self, config: ZeroConfig | None = None):
        self.config = config or ZeroConfig()
        self._action_dim = 7

    @property
    def requirements(self) -> Requirements:
        """Needs nothing rendered."""
        return Requirements(views=())

    def reset(self, task: TaskSpec, *, seed: int | None = None) -> None:
        """Take the suite's action dimension."""
        self._action_dim = task.action_dim

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """A chunk of zero actions."""
        chunk = np.zeros((self.config.chunk_size, self._action_dim), dtype=np.float32)
        chunk[:, -1] = self.config.gripper
        return chunk
