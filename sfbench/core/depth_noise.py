"""Depth-sensor corruption of a protocol: Gaussian noise, dropped pixels and hole patches.

Simulator depth is exact; a real sensor's is noisy and incomplete. A protocol's ``depth_noise``
mapping corrupts every depth map the env returns, so that a 3D-input policy can be measured
under realistic depth while a policy that reads no depth (Spatial Forcing) is unaffected. Missing
readings are 0, as a depth camera reports them. The draws depend only on (seed, episode, step,
view), never on which steps were rendered before.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from sfbench.core.errors import InvalidConfig


@dataclass(frozen=True)
class DepthNoise:
    """How a protocol corrupts depth maps.

    Attributes:
        gaussian_std_m: Standard deviation of additive Gaussian noise, metres (0 = none).
        dropout_p: Probability that a pixel has no reading (0 = none).
        holes: Square patches without readings per map (0 = none).
        hole_px: Side of each patch in pixels.
    """

    gaussian_std_m: float = 0.0
    dropout_p: float = 0.0
    holes: int = 0
    hole_px: int = 16

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DepthNoise:
        """Validate a protocol's ``depth_noise`` mapping (every problem named in one line)."""
        names = [f.name for f in fields(cls)]
        problems = [f"depth_noise.{k} (unknown key; valid: {', '.join(names)})" for k in d if k not in names]
        checks = {"gaussian_std_m": (lambda v: type(v) in (int, float) and v >= 0, "a number >= 0"),
                  "dropout_p": (lambda v: type(v) in (int, float) and 0 <= v < 1, "a number in [0, 1)"),
                  "holes": (lambda v: type(v) is int and v >= 0, "an integer >= 0"),
                  "hole_px": (lambda v: type(v) is int and v >= 1, "an integer >= 1")}
        problems += [f"depth_noise.{k}={d[k]!r} (must be {valid})" for k, (ok, valid) in checks.items()
                     if k in d and not ok(d[k])]
        if problems:
            raise InvalidConfig("Invalid protocol " + "; ".join(problems))
        return cls(**d)

    def apply(self, depth: np.ndarray, seed: tuple[int, ...]) -> np.ndarray:
        """``depth`` (H, W) metres, corrupted with the draws of ``seed``."""
        rng = np.random.default_rng(list(seed))
        out = depth.astype(np.float32, copy=True)
        if self.gaussian_std_m:
            out += rng.normal(0.0, self.gaussian_std_m, out.shape).astype(np.float32)
        if self.dropout_p:
            out[rng.random(out.shape) < self.dropout_p] = 0.0
        h, w = out.shape
        for _ in range(self.holes):
            top, left = rng.integers(0, max(1, h - self.hole_px + 1)), rng.integers(0, max(1, w - self.hole_px + 1))
            out[top : top + self.hole_px, left : left + self.hole_px] = 0.0
        return np.maximum(out, 0.0)
