"""Dataset items -> TinyVLA inputs: OFT-style random crops + colour jitter, geometry input."""

from __future__ import annotations

import numpy as np
import torch

from sfbench.core.augment import JitterRanges, color_jitter
from sfbench.core.images import Box, center_box, crop_resize, random_box
from sfbench.policies.tiny_vla.config import TinyVLAConfig
from sfbench.policies.tiny_vla.transforms import geometry_channels, tokenize


def _boxes(n: int, v: int, size: int, cfg: TinyVLAConfig, augment: bool, gen: torch.Generator) -> list[list[Box]]:
    if augment:
        return [[random_box(size, size, cfg.center_crop_area, gen) for _ in range(v)] for _ in range(n)]
    return [[center_box(size, size, cfg.center_crop_area)] * v for _ in range(n)]


def model_batch(items: list[dict], cfg: TinyVLAConfig, augment: JitterRanges | None,
                gen: torch.Generator) -> tuple[dict[str, torch.Tensor], list[list[Box]]]:
    """Stack ``items`` into TinyVLA inputs; returns the batch and the crop box of every view."""
    images = torch.from_numpy(np.stack([it["images"] for it in items])).permute(0, 1, 4, 2, 3).float() / 255
    n, v, _, h, _ = images.shape
    boxes = _boxes(n, v, h, cfg, augment is not None, gen)
    views = torch.stack([torch.stack([crop_resize(images[i, j], boxes[i][j], cfg.image_size) for j in range(v)])
                         for i in range(n)]).clamp(0, 1)
    if augment is not None:
        views = color_jitter(views.flatten(0, 1), augment, gen).reshape(views.shape)
    batch = {
        "images": views,
        "proprio": torch.from_numpy(np.stack([it["proprio"] for it in items])),
        "tokens": tokenize([it["instruction"] for it in items], cfg.max_text_tokens),
        "actions": torch.from_numpy(np.stack([it["actions"] for it in items])),
    }
    if cfg.input_geometry is not None:
        batch["geometry"] = torch.stack([torch.stack([
            crop_resize(geometry_channels(it["depth"][j], it["intrinsics"][j], cfg.input_geometry,
                                          cfg.max_depth_m), boxes[i][j], cfg.image_size)
            for j in range(v)]) for i, it in enumerate(items)])
    return batch, boxes
