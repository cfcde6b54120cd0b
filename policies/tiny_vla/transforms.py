"""Image, text and geometry inputs of the TinyVLA family: crops, resizes, byte tokens, point maps.

Shared by the adapter (inference: centre crop) and the batch builder (training: random crops of
the same area), so both sides transform alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sfbench.core.geometry import point_map
from sfbench.core.images import center_box, crop_resize


def tokenize(instructions: Sequence[str], max_tokens: int) -> torch.Tensor:
    """Byte-level tokens (B, max_tokens) int64: UTF-8 byte + 1, truncated, right-padded with 0."""
    tokens = torch.zeros(len(instructions), max_tokens, dtype=torch.long)
    for i, text in enumerate(instructions):
        ids = list(text.encode("utf-8")[:max_tokens])
        tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long) + 1
    return tokens


def preprocess_views(images: Sequence[np.ndarray], size: int, area: float) -> torch.Tensor:
    """HWC uint8 views -> (V, 3, size, size) float in [0, 1]: centre crop of ``area``, then resize."""
    out = []
    for img in images:
        chw = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0
        out.append(crop_resize(chw, center_box(img.shape[0], img.shape[1], area), size).clamp(0.0, 1.0))
    return torch.stack(out)


def geometry_channels(depth: np.ndarray, k: np.ndarray, kind: str, max_depth_m: float) -> torch.Tensor:
    """Full-resolution geometry input (C_g, H, W) of one view: clipped depth (1) or its point map (3)."""
    z = np.clip(np.asarray(depth, dtype=np.float32), 0.0, max_depth_m)
    if kind == "depth":
        return torch.from_numpy(z)[None]
    return torch.from_numpy(point_map(z, np.asarray(k, dtype=np.float64)))
