"""Crop boxes and antialiased crop-resize of image-like tensors (views, depth maps, feature maps)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Crop box in pixels: (top, left, height, width).
Box = tuple[int, int, int, int]


def center_box(height: int, width: int, area: float) -> Box:
    """The centred crop box keeping ``area`` of the image with the image's aspect ratio."""
    h, w = round(height * math.sqrt(area)), round(width * math.sqrt(area))
    return (height - h) // 2, (width - w) // 2, h, w


def random_box(height: int, width: int, area: float, generator: torch.Generator) -> Box:
    """A crop box of :func:`center_box`'s size at a uniformly random position (OFT's training crop)."""
    _, _, h, w = center_box(height, width, area)
    top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
    return top, left, h, w


def crop_resize(x: torch.Tensor, box: Box, size: int) -> torch.Tensor:
    """Crop ``x`` (..., C, H, W) to ``box`` and resize to (..., C, size, size), antialiased bilinear."""
    top, left, h, w = box
    crop = x[..., top : top + h, left : left + w]
    flat = crop.reshape(-1, *crop.shape[-3:]).float()
    out = F.interpolate(flat, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.reshape(*crop.shape[:-2], size, size)


def crop_intrinsics(k: torch.Tensor, box: Box, size: int) -> torch.Tensor:
    """Intrinsics (..., 3, 3) of the image cropped to ``box`` and resized to ``size``.

    Pixel (row i, col j) has its centre at (u, v) = (j + 0.5, i + 0.5), the convention of
    robosuite's intrinsics (principal point W / 2); then u' = (u - left) * size / width, so
    K' = A @ K. A negative focal length (an image mirror folded into K) stays valid.
    """
    top, left, h, w = box
    sx, sy = size / w, size / h
    a = torch.tensor(
        [[sx, 0.0, -sx * left], [0.0, sy, -sy * top], [0.0, 0.0, 1.0]], dtype=k.dtype, device=k.device
    )
    return a @ k
