"""OpenVLA-OFT's colour augmentation on whole batches: brightness, contrast, saturation, hue."""

from __future__ import annotations

from typing import Protocol

import torch


class JitterRanges(Protocol):
    """Colour jitter ranges (``data.brightness`` ... of ``configs/train.yaml``)."""

    brightness: float
    contrast: float
    saturation: float
    hue: float


def color_jitter(images: torch.Tensor, cfg: JitterRanges, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue per image; ``images`` (N, 3, H, W) in [0, 1]."""
    n = images.shape[0]

    def factor(width: float) -> torch.Tensor:
        return (1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * width).to(images)

    x = images * factor(cfg.brightness)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor(cfg.contrast) + mean
    gray = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * factor(cfg.saturation) + gray
    return _rotate_hue(x, (torch.rand(n, generator=generator) * 2 - 1) * cfg.hue).clamp(0, 1)


def _rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``turns`` (N,) of a full turn, as a rotation about the RGB grey axis."""
    angle = (turns * 2 * torch.pi).to(x)
    cos, sin = torch.cos(angle), torch.sin(angle)
    k = 1 / 3
    s3 = (1 / 3) ** 0.5
    rows = [
        [cos + (1 - cos) * k, k * (1 - cos) - s3 * sin, k * (1 - cos) + s3 * sin],
        [k * (1 - cos) + s3 * sin, cos + k * (1 - cos), k * (1 - cos) - s3 * sin],
        [k * (1 - cos) - s3 * sin, k * (1 - cos) + s3 * sin, cos + k * (1 - cos)],
    ]
    m = torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)  # (N, 3, 3)
    return torch.einsum("nij,njhw->nihw", m, x)
