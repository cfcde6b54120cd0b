"""Depth probes on frozen visual-token hidden states: heads, fitting and the standard depth metrics.

Features are a view's token grid (N, D, Hp, Wp); targets are metric depth maps (N, S, S) with S a
multiple of Hp. Both heads predict log-depth and are fitted with an L1 loss on valid pixels:

* ``linear``: one linear map per token to its (S/Hp)^2 output pixels (a 1x1 conv + pixel shuffle),
  so it can only read what each token holds.
* ``conv``: a small convolutional decoder (3x3 convs, two 2x upsamplings), which may also combine
  neighbouring tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("linear", "conv")


@dataclass(frozen=True)
class DepthMetrics:
    """AbsRel (mean |d^ - d| / d), RMSE (m) and delta<1.25 (share of max(d^/d, d/d^) < 1.25)."""

    abs_rel: float
    rmse: float
    delta1: float
    pixels: int


def depth_metrics(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> DepthMetrics:
    """Metrics over the ``valid`` pixels of metric depth maps ``pred`` and ``target`` (same shape)."""
    p, t = pred[valid].double(), target[valid].double()
    if t.numel() == 0:
        raise ValueError("no valid depth pixels")
    ratio = torch.maximum(p / t, t / p)
    return DepthMetrics(
        abs_rel=float(((p - t).abs() / t).mean()),
        rmse=float(((p - t) ** 2).mean().sqrt()),
        delta1=float((ratio < 1.25).double().mean()),
        pixels=int(t.numel()),
    )


class LinearHead(nn.Module):
    """Per-token linear map to the token's ``up x up`` patch of log-depth."""

    def __init__(self, dim: int, up: int):
        super().__init__()
        self.proj = nn.Conv2d(dim, up * up, kernel_size=1)
        self.shuffle = nn.PixelShuffle(up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D, Hp, Wp) -> (N, Hp * up, Wp * up)."""
        return self.shuffle(self.proj(x))[:, 0]


class ConvHead(nn.Module):
    """Small convolutional decoder: conv, then 2x upsample + conv until the output size."""

    def __init__(self, dim: int, up: int, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(dim, width, 3, padding=1), nn.GELU()]
        while up > 1:
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(width, width // 2, 3, padding=1), nn.GELU()]
            width, up = width // 2, up // 2
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D, Hp, Wp) -> (N, Hp * up, Wp * up)."""
        return self.net(x)[:, 0]


def make_head(kind: str, dim: int, up: int) -> nn.Module:
    """A ``linear`` or ``conv`` head upsampling the token grid by ``up`` (a power of two for conv)."""
    if kind == "linear":
        return LinearHead(dim, up)
    if kind == "conv":
        if up & (up - 1):
            raise ValueError(f"conv head needs a power-of-two upsampling factor, got {up}")
        return ConvHead(dim, up)
    raise ValueError(f"unknown probe head {kind!r}; choices: {', '.join(HEADS)}")


@dataclass
class FitSettings:
    """Optimisation of a probe: AdamW on minibatches for a fixed number of steps."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


class DepthProbe:
    """A head fitted on standardised features; predicts metric depth."""

    def __init__(self, head: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        self.head, self.mean, self.std = head, mean, std

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Metric depth (N, S, S) for features (N, D, Hp, Wp)."""
        self.head.eval()
        return torch.cat([self.head((f - self.mean) / self.std).exp()
                          for f in features.split(256)])


def fit_probe(kind: str, features: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor,
              settings: FitSettings) -> DepthProbe:
    """Fit a ``kind`` head from features (N, D, Hp, Wp) to depth (N, S, S) on ``valid`` pixels."""
    torch.manual_seed(settings.seed)
    mean = features.mean(dim=(0, 2, 3), keepdim=True)[0]
    std = features.std(dim=(0, 2, 3), keepdim=True)[0].clamp_min(1e-6)
    x = (features - mean) / std
    target = depth.clamp_min(1e-3).log()
    head = make_head(kind, features.shape[1], depth.shape[-1] // features.shape[-1])
    opt = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.steps)
    gen = torch.Generator().manual_seed(settings.seed)
    head.train()
    for _ in range(settings.steps):
        idx = torch.randint(0, len(x), (settings.batch_size,), generator=gen)
        m = valid[idx]
        loss = F.l1_loss(head(x[idx])[m], target[idx][m])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return DepthProbe(head, mean, std)
