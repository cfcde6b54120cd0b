"""Teacher targets: the in-memory feature store stays within its budget and moves the teacher's inputs."""

from __future__ import annotations

import numpy as np
import torch

from sfbench.train.targets import TeacherTargets
from sfbench.train.teachers import GeometryTeacher


def _item(key: str, rng: np.random.Generator) -> dict:
    views = 2
    return {"key": key, "images": rng.integers(0, 255, (views, 32, 32, 3), dtype=np.uint8),
            "depth": rng.uniform(0.5, 2, (views, 32, 32)).astype(np.float32),
            "intrinsics": np.tile(np.array([[30, 0, 16], [0, 30, 16], [0, 0, 1]], np.float32), (views, 1, 1)),
            "extrinsics": np.tile(np.eye(4, dtype=np.float32), (views, 1, 1))}


def test_memory_keeps_the_most_recent_samples_within_its_budget():
    teacher = GeometryTeacher(feature_dim=16, grid=4)
    per_sample = 2 * 16 * 4 * 4 * 2  # views x D_t x grid^2 x float16 bytes
    targets = TeacherTargets(teacher, None, memory_gb=2.5 * per_sample / 2**30)
    rng = np.random.default_rng(0)
    items = [_item(str(i), rng) for i in range(4)]
    box = [[(0, 0, 32, 32)] * 2]
    first = targets([items[0]], box)
    for it in items[1:3]:
        targets([it], box)
    assert list(targets.memory) == ["1", "2"] and targets.used == 2 * per_sample, "oldest out first"
    targets([items[1]], box)  # a hit moves "1" to the recent end
    targets([items[3]], box)
    assert list(targets.memory) == ["1", "3"]
    assert torch.equal(targets([items[0]], box), first), "an evicted sample is recomputed identically"
