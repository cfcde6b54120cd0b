"""Uniformly random actions: a sanity baseline with a seeded, per-episode RNG."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sfbench.core.task import TaskSpec
from sfbench.policies.base import Policy, Requirements


@dataclass
class RandomConfig:
    """Configuration of :class:`RandomPolicy`.

    Args:
        chunk_size: Actions per returned chunk.
        scale: Half-width of the uniform distribution of the motion dimensions (actions in [-1, 1]).
    """

    chunk_size: int = 8
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if not 0.0 <= self.scale <= 1.0:
            raise ValueError(f"scale must be in [0, 1], got {self.scale}")


class RandomPolicy(Policy):
    """Samples each motion dimension in ``[-scale, scale]`` and the gripper in ``{-1, 1}``."""

    name = "random"
    config_class = RandomConfig

    def __init__(self, config: RandomConfig | None = None):
        self.config = config or RandomConfig()
        self._rng = np.random.default_rng(0)
        self._action_dim = 7

    @property
    def requirements(self) -> Requirements:
        """Needs nothing rendered."""
        return Requirements(views=())

    def reset(self, task: TaskSpec, *, seed: int | None = None) -> None:
        """Re-seed the RNG so that an episode is reproducible on its own; take the suite's action dimension."""
        self._action_dim = task.action_dim
        self._rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """A chunk of uniformly random actions."""
        c = self.config
        chunk = self._rng.uniform(-c.scale, c.scale, (c.chunk_size, self._action_dim))
        chunk[:, -1] = self._rng.choice([-1.0, 1.0], size=c.chunk_size)
        return chunk.astype(np.float32)
