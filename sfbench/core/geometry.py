"""Camera geometry shared by policies and teachers: back-projection of depth to point maps."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def point_map(depth: Array, k: Array) -> Array:
    """Back-project metric depth (..., H, W) with intrinsics (..., 3, 3) to camera-frame XYZ (..., 3, H, W).

    Pixel (row i, col j) has its centre at (u, v) = (j + 0.5, i + 0.5) (robosuite's convention).
    Each point is ``z * K^-1 [u, v, 1]``, i.e. x = (u - cx) z / fx, y = (v - cy) z / fy for zero
    skew (camera looks along +z, x right, y down). A negative focal length, which the env uses to
    fold an image mirror into K, needs no special case. Works on numpy arrays or torch tensors.
    """
    as_numpy = isinstance(depth, np.ndarray)
    z = torch.as_tensor(depth, dtype=torch.float64 if as_numpy else None)
    k = torch.as_tensor(k, dtype=z.dtype, device=z.device)
    h, w = z.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(h, dtype=z.dtype, device=z.device) + 0.5,
        torch.arange(w, dtype=z.dtype, device=z.device) + 0.5,
        indexing="ij",
    )
    pixels = torch.stack([u, v, torch.ones_like(u)]).reshape(3, h * w)  # (3, H*W)
    rays = torch.linalg.solve(k, pixels.expand(*k.shape[:-2], 3, h * w))  # (..., 3, H*W), z-component 1
    points = rays.reshape(*k.shape[:-2], 3, h, w) * z.unsqueeze(-3)
    return points.numpy().astype(np.float32) if as_numpy else points
