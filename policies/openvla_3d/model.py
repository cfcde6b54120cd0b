"""OpenVLA-OFT with 3D-CAVLA's depth tokens: one PointNet token per view after the proprio token."""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig

from sfbench.policies.openvla_3d.pointnet import PointNetfeat, PointNetSpec, point_clouds
from sfbench.policies.openvla_oft.model import OpenVLAOFT
from sfbench.policies.openvla_oft.vit import TowerSpec

# 3D-CAVLA's auxiliary files, one per view in token order (primary, then wrist).
DEPTH_PREFIXES = ("depth_projector1--", "depth_projector2--")


class OpenVLA3D(OpenVLAOFT):
    """:class:`OpenVLAOFT` plus ``depth_projectors`` (one :class:`PointNetfeat` per view)."""

    def __init__(self, dino: TowerSpec, siglip: TowerSpec, llama: LlamaConfig, spec: PointNetSpec):
        super().__init__(dino, siglip, llama)
        self.depth_spec = spec
        self.depth_projectors = nn.ModuleList(PointNetfeat(spec, llama.hidden_size) for _ in DEPTH_PREFIXES)

    @property
    def aux_parts(self) -> dict[str, nn.Module]:
        """OFT's heads, then ``depth_projector1--`` / ``depth_projector2--``."""
        return {**super().aux_parts, **dict(zip(DEPTH_PREFIXES, self.depth_projectors, strict=True))}

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, proprio: torch.Tensor,
                lengths: torch.Tensor | None = None, *, depth: torch.Tensor,
                intrinsics: torch.Tensor) -> dict[str, torch.Tensor]:
        """OFT's forward with the depth tokens of ``depth`` (B, 2, H, W) metres and ``intrinsics`` (B, 2, 3, 3)."""
        points, valid = point_clouds(depth.float(), intrinsics.float(), self.depth_spec.stride)
        dtype = self.proprio_projector.fc1.weight.dtype
        tokens = torch.stack([proj(points[:, i].to(dtype), valid[:, i])
                              for i, proj in enumerate(self.depth_projectors)], dim=1)
        return super().forward(pixels, input_ids, proprio, lengths, extra_tokens=tokens)
