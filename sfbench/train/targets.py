"""Spatial Forcing targets: a frozen teacher's features per sample, cropped like the sample's views.

Teacher features are computed on the *uncropped* frame (so a content-hash cache hits on every
epoch) and then cropped with the same box as the image, which keeps augmentation and caching
compatible for any teacher.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F

from sfbench.core.images import Box
from sfbench.train.teachers import FeatureCache, Teacher


def crop_features(features: torch.Tensor, boxes: list[Box], image_size: int) -> torch.Tensor:
    """Crop teacher maps (N, D, Ht, Wt) of full ``image_size`` frames to ``boxes`` (pixels), same size out.

    One ``grid_sample`` call for the whole batch: box n becomes an affine sampling grid in the
    normalised [-1, 1] coordinates of frame n.
    """
    n, d, ht, wt = features.shape
    b = torch.tensor(boxes, dtype=features.dtype)  # (N, 4): top, left, h, w
    theta = torch.zeros(n, 2, 3, dtype=features.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = b[:, 3] / image_size, b[:, 2] / image_size
    theta[:, 0, 2] = (b[:, 1] + b[:, 3] / 2) / image_size * 2 - 1
    theta[:, 1, 2] = (b[:, 0] + b[:, 2] / 2) / image_size * 2 - 1
    grid = F.affine_grid(theta, [n, d, ht, wt], align_corners=False)
    return F.grid_sample(features, grid, mode="bilinear", align_corners=False)


class TeacherTargets:
    """Teacher features per sample (cached by content), cropped like the sample's views.

    Features of recent samples are kept in memory, least recently used first out beyond
    ``memory_gb`` (VGGT-1B: 11 MB per two-view sample, so a LIBERO suite would not fit).
    """

    def __init__(self, teacher: Teacher, cache_dir: str | None, memory_gb: float = 4.0):
        self.teacher = teacher
        self.cache = FeatureCache(cache_dir, teacher) if cache_dir else None
        self.memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.budget, self.used = int(memory_gb * 2**30), 0

    def _remember(self, key: str, feats: torch.Tensor) -> None:
        self.memory[key] = feats
        self.used += feats.nbytes
        while self.used > self.budget and self.memory:
            self.used -= self.memory.popitem(last=False)[1].nbytes

    def _full(self, item: dict) -> torch.Tensor:
        """(V, D_t, Ht, Wt) features of the uncropped frame, float16."""
        if item["key"] in self.memory:
            self.memory.move_to_end(item["key"])
            return self.memory[item["key"]]
        device = self.teacher.device
        images = torch.from_numpy(item["images"]).to(device).permute(0, 3, 1, 2)[None].float() / 255
        geometry = {k: torch.from_numpy(item[k])[None].to(device) for k in ("depth", "intrinsics", "extrinsics")
                    if k in item}

        def compute() -> torch.Tensor:
            return self.teacher.features(images, geometry)[0].cpu()

        arrays: list[Any] = [item["images"], *(item[k] for k in ("depth", "intrinsics", "extrinsics") if k in item)]
        # Stored (and always returned) in half precision, so that a step sees the same targets
        # whether or not the features were computed in this process (exact resume).
        feats = (self.cache.get_or_compute(arrays, compute) if self.cache else compute()).half()
        self._remember(item["key"], feats)
        return feats

    def __call__(self, items: list[dict], boxes: list[list[Box]]) -> torch.Tensor:
        """Targets (B, V, D_t, Ht, Wt) for a batch."""
        full = torch.stack([self._full(it) for it in items]).float()  # (B, V, D_t, Ht, Wt)
        flat_boxes = [box for views in boxes for box in views]
        cropped = crop_features(full.flatten(0, 1), flat_boxes, items[0]["images"].shape[1])
        return cropped.reshape(full.shape)
