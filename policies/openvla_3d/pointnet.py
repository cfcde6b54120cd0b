"""3D-CAVLA's depth branch: each view's depth -> camera-frame point cloud -> PointNet -> one LLM token.

The modules keep 3D-CAVLA's parameter names (``STN3d``: ``conv1-3``, ``fc1-3``, ``bn1-5``;
``PointNetfeat``: ``stn``, ``conv1-3``, ``bn1-3``, ``proj``), so its ``depth_projector<k>--*.pt``
files load. Two differences, both deliberate:

- The point cloud uses the env's real intrinsics (3D-CAVLA hard-codes fx = fy = 309.02,
  cx = cy = 128) and metric depth (3D-CAVLA feeds robosuite's normalised depth buffer).
- Invalid depth (NaN, inf, <= 0: holes) is masked out of both max-pools. Such points enter the
  shared MLP as the camera origin, but never reach the token. A view without any valid point
  gives a zero feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sfbench.core.errors import InvalidConfig
from sfbench.core.geometry import point_map


@dataclass(frozen=True)
class PointNetSpec:
    """Sizes of the depth branch (3D-CAVLA: 64 / 128 / 1024, STN fc 512 / 256, every pixel)."""

    widths: tuple[int, int, int] = (64, 128, 1024)
    stn_fc: tuple[int, int] = (512, 256)
    stride: int = 1  # pixel stride of the point cloud


def _masked_max(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Max over points (B, C, N) of the valid ones (B, N); 0 where a row has none."""
    pooled = x.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=2)
    return torch.where(valid.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


class STN3d(nn.Module):
    """PointNet's input transform: a 3 x 3 matrix per cloud, identity plus a learned offset."""

    def __init__(self, spec: PointNetSpec):
        super().__init__()
        (a, b, c), (d, e) = spec.widths, spec.stn_fc
        self.conv1, self.conv2, self.conv3 = nn.Conv1d(3, a, 1), nn.Conv1d(a, b, 1), nn.Conv1d(b, c, 1)
        self.fc1, self.fc2, self.fc3 = nn.Linear(c, d), nn.Linear(d, e), nn.Linear(e, 9)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm1d(a), nn.BatchNorm1d(b), nn.BatchNorm1d(c)
        self.bn4, self.bn5 = nn.BatchNorm1d(d), nn.BatchNorm1d(e)

    def forward(self, points: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, 3, N) points -> (B, 3, 3)."""
        x = F.relu(self.bn1(self.conv1(points)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = _masked_max(F.relu(self.bn3(self.conv3(x))), valid)
        x = F.relu(self.bn4(self.fc1(x)))
        x = self.fc3(F.relu(self.bn5(self.fc2(x))))
        return x.view(-1, 3, 3) + torch.eye(3, dtype=x.dtype, device=x.device)


class PointNetfeat(nn.Module):
    """A cloud's global PointNet feature, projected to the LLM width: (B, 3, N) -> (B, llm_dim)."""

    def __init__(self, spec: PointNetSpec, llm_dim: int):
        super().__init__()
        a, b, c = spec.widths
        self.stn = STN3d(spec)
        self.conv1, self.conv2, self.conv3 = nn.Conv1d(3, a, 1), nn.Conv1d(a, b, 1), nn.Conv1d(b, c, 1)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm1d(a), nn.BatchNorm1d(b), nn.BatchNorm1d(c)
        self.proj = nn.Linear(c, llm_dim)

    def forward(self, points: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Points (B, 3, N) in metres and their validity (B, N) -> (B, llm_dim)."""
        x = torch.bmm(points.transpose(1, 2), self.stn(points, valid)).transpose(1, 2)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(x)))))
        return self.proj(_masked_max(x, valid))


def point_clouds(depth: torch.Tensor, intrinsics: torch.Tensor, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-frame clouds (B, V, 3, N) and validity (B, V, N) from depth (B, V, H, W) and K (B, V, 3, 3).

    Every ``stride``-th pixel of each row and column is kept; invalid depth becomes the origin.
    """
    if depth.ndim != 4 or intrinsics.shape != (*depth.shape[:2], 3, 3):
        raise InvalidConfig(f"depth must be (batch, views, H, W) with intrinsics (batch, views, 3, 3); got "
                            f"{tuple(depth.shape)} and {tuple(intrinsics.shape)}")
    valid = torch.isfinite(depth) & (depth > 0)
    z = torch.where(valid, depth, torch.zeros_like(depth))
    points = point_map(z, intrinsics.to(z.dtype))[..., ::stride, ::stride]  # (B, V, 3, h, w)
    b, v = depth.shape[:2]
    return points.reshape(b, v, 3, -1), valid[..., ::stride, ::stride].reshape(b, v, -1)
