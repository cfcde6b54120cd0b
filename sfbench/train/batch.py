"""Dataset items -> model batch: OFT-style random crops + colour jitter, geometry input, teacher targets.

Teacher features are computed on the *uncropped* frame (so a content-hash cache hits on every
epoch) and then cropped with the same box as the image, which keeps augmentation and caching
compatible for any teacher.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sfbench.policies.tiny_vla import Box, TinyVLAConfig, center_box, crop_resize, random_box, tokenize
from sfbench.policies.tiny_vla_depth import geometry_channels
from sfbench.train.data import DataConfig, color_jitter
from sfbench.train.teachers import FeatureCache, Teacher


def _boxes(n: int, v: int, size: int, cfg: TinyVLAConfig, augment: bool, gen: torch.Generator) -> list[list[Box]]:
    if augment:
        return [[random_box(size, size, cfg.center_crop_area, gen) for _ in range(v)] for _ in range(n)]
    return [[center_box(size, size, cfg.center_crop_area)] * v for _ in range(n)]


def model_batch(items: list[dict], cfg: TinyVLAConfig, data: DataConfig, gen: torch.Generator,
                augment: bool) -> tuple[dict[str, torch.Tensor], list[list[Box]]]:
    """Stack ``items`` into TinyVLA inputs; returns the batch and the crop box of every view."""
    images = torch.from_numpy(np.stack([it["images"] for it in items])).permute(0, 1, 4, 2, 3).float() / 255
    n, v, _, h, _ = images.shape
    boxes = _boxes(n, v, h, cfg, augment, gen)
    views = torch.stack([torch.stack([crop_resize(images[i, j], boxes[i][j], cfg.image_size) for j in range(v)])
                         for i in range(n)]).clamp(0, 1)
    if augment:
        views = color_jitter(views.flatten(0, 1), data, gen).reshape(views.shape)
    batch = {
        "images": views,
        "proprio": torch.from_numpy(np.stack([it["proprio"] for it in items])),
        "tokens": tokenize([it["instruction"] for it in items], cfg.max_text_tokens),
        "actions": torch.from_numpy(np.stack([it["actions"] for it in items])),
    }
    if cfg.input_geometry is not None:
        batch["geometry"] = torch.stack([torch.stack([
            crop_resize(geometry_channels(it["depth"][j], it["intrinsics"][j], cfg.input_geometry,
                                          cfg.max_depth_m), boxes[i][j], cfg.image_size)  # type: ignore[attr-defined]
            for j in range(v)]) for i, it in enumerate(items)])
    return batch, boxes


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
    """Teacher features per sample (cached by content), cropped like the sample's views."""

    def __init__(self, teacher: Teacher, cache_dir: str | None):
        self.teacher = teacher
        self.cache = FeatureCache(cache_dir, teacher) if cache_dir else None
        self.memory: dict[str, torch.Tensor] = {}

    def _full(self, item: dict) -> torch.Tensor:
        """(V, D_t, Ht, Wt) features of the uncropped frame, float16."""
        if item["key"] in self.memory:
            return self.memory[item["key"]]
        images = torch.from_numpy(item["images"]).permute(0, 3, 1, 2)[None].float() / 255
        geometry = {k: torch.from_numpy(item[k])[None] for k in ("depth", "intrinsics", "extrinsics") if k in item}

        def compute() -> torch.Tensor:
            return self.teacher.features(images, geometry)[0]

        arrays: list[Any] = [item["images"], *(item[k] for k in ("depth", "intrinsics", "extrinsics") if k in item)]
        # Stored (and always returned) in half precision, so that a step sees the same targets
        # whether or not the features were computed in this process (exact resume).
        feats = (self.cache.get_or_compute(arrays, compute) if self.cache else compute()).half()
        self.memory[item["key"]] = feats
        return feats

    def __call__(self, items: list[dict], boxes: list[list[Box]]) -> torch.Tensor:
        """Targets (B, V, D_t, Ht, Wt) for a batch."""
        full = torch.stack([self._full(it) for it in items]).float()  # (B, V, D_t, Ht, Wt)
        flat_boxes = [box for views in boxes for box in views]
        cropped = crop_features(full.flatten(0, 1), flat_boxes, items[0]["images"].shape[1])
        return cropped.reshape(full.shape)
