"""Benchmark inputs: synthetic demos in LIBERO's HDF5 layout (random images, depth, cameras), camera-like frames."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from sfbench.train.data.demos import ROTATED, append_demo, demo_arrays

VIEWS = ("agentview", "wrist")


def write_demos(path: Path, demos: int = 2, steps: int = 12, size: int = 128, geometry: bool = False) -> Path:
    """``demos`` random demos of ``steps`` steps at ``size`` px; with ``geometry``, depth and cameras too."""
    rng = np.random.default_rng(0)
    k = np.array([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1]], np.float32)
    for d in range(demos):
        traj = []
        for _ in range(steps):
            obs = {v: rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for v in VIEWS}
            obs |= {"proprio": rng.normal(size=8).astype(np.float32), "joint_states": np.zeros(7, np.float32)}
            if geometry:
                obs |= {"depth": {v: rng.uniform(0.5, 2.0, (size, size)).astype(np.float32) for v in VIEWS},
                        "intrinsics": dict.fromkeys(VIEWS, k),
                        "extrinsics": {v: np.eye(4, dtype=np.float32) for v in VIEWS}}
            traj.append((obs, rng.uniform(-1, 1, 7).astype(np.float32)))
        append_demo(path, demo_arrays(traj), init_state_index=d,
                    file_attrs={"instruction": "pick up the black bowl", "task_id": 0, "image_convention": ROTATED})
    return path


def camera_like_frames(n: int, seed: int, noise_sigma: float, encode: Callable[[np.ndarray], bytes]) -> list[bytes]:
    """``n`` encoded 256x256 frames: smooth colour fields (bicubic 8x8 cells) plus Gaussian noise.

    ``noise_sigma`` (grey levels) sets how well they compress: pick it so that the encoded size is
    close to the released dataset's frames.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        cells = Image.fromarray(rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8))
        smooth = np.asarray(cells.resize((256, 256), Image.BICUBIC), np.float32)
        out.append(encode(np.clip(smooth + rng.normal(0, noise_sigma, smooth.shape), 0, 255).astype(np.uint8)))
    return out
