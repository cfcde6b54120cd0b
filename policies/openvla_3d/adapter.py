"""``policy=openvla_3d``: OpenVLA-OFT with 3D-CAVLA's depth tokens, from and to OFT's checkpoint layout.

A checkpoint is an OFT checkpoint plus ``depth_projector1--*.pt`` and ``depth_projector2--*.pt``;
``config.json`` may name the depth branch's sizes under ``sfbench_depth_spec`` (3D-CAVLA's own
sizes otherwise). Everything else (prompt, heads, LoRA recipe, training, DDP) is the OFT adapter's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from sfbench.core.constants import OBS_DEPTH, OBS_INTRINSICS
from sfbench.core.errors import InvalidConfig
from sfbench.policies.base import Requirements
from sfbench.policies.openvla_3d.model import DEPTH_PREFIXES, OpenVLA3D
from sfbench.policies.openvla_3d.pointnet import PointNetSpec
from sfbench.policies.openvla_oft.adapter import VIEWS, OpenVLAOFTConfig, OpenVLAOFTPolicy
from sfbench.policies.openvla_oft.checkpoint import OFTCheckpoint
from sfbench.policies.openvla_oft.constants import AUX_PREFIXES
from sfbench.policies.trainable import TrainingBatch

DEPTH_SPEC_KEY = "sfbench_depth_spec"


@dataclass
class OpenVLA3DConfig(OpenVLAOFTConfig):
    """``configs/policy/openvla_3d.yaml``: the OFT fields plus the depth branch of a fresh model.

    Args:
        pointnet_widths: PointNet's shared MLP (3D-CAVLA: 64, 128, 1024).
        pointnet_stn_fc: Its input transform's fully connected widths (512, 256).
        depth_stride: Pixel stride of the point clouds (1: every pixel, as 3D-CAVLA).
    """

    name: str = "openvla_3d"
    pointnet_widths: list[int] | None = None
    pointnet_stn_fc: list[int] | None = None
    depth_stride: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.depth_stride < 1:
            raise InvalidConfig(f"policy.depth_stride={self.depth_stride} must be >= 1")

    def spec(self) -> PointNetSpec:
        """The depth branch these fields describe (defaults: 3D-CAVLA's)."""
        d = PointNetSpec()
        return PointNetSpec(tuple(self.pointnet_widths or d.widths), tuple(self.pointnet_stn_fc or d.stn_fc),
                            self.depth_stride)


def _depth_arrays(obs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Both views' depth (2, H, W) and intrinsics (2, 3, 3) of one observation, checked."""
    if OBS_DEPTH not in obs or OBS_INTRINSICS not in obs:
        raise InvalidConfig("openvla_3d needs depth and intrinsics in the observation (the env renders them when "
                            "the policy asks: Requirements(depth=True))")
    depth = [np.asarray(obs[OBS_DEPTH][v], np.float32) for v in VIEWS]
    shapes = {d.shape for d in depth}
    if len(shapes) != 1 or len(depth[0].shape) != 2:
        raise InvalidConfig(f"depth maps must be (H, W), one size for both views; got {[d.shape for d in depth]}")
    return np.stack(depth), np.stack([np.asarray(obs[OBS_INTRINSICS][v], np.float32) for v in VIEWS])


class OpenVLA3DPolicy(OpenVLAOFTPolicy):
    """OFT's ``predict_action`` with one depth token per view (3D-CAVLA)."""

    name = "openvla_3d"
    config_class = OpenVLA3DConfig
    aux_prefixes = (*AUX_PREFIXES, *DEPTH_PREFIXES)
    extra_inputs = ("depth", "intrinsics")

    @classmethod
    def reads_depth(cls, config: OpenVLA3DConfig) -> bool:
        """Always: the depth tokens are part of the model."""
        return True

    @property
    def requirements(self) -> Requirements:
        """Both RGB views with their metric depth and camera matrices."""
        return Requirements(views=VIEWS, depth=True)

    def _build(self, ckpt: OFTCheckpoint) -> OpenVLA3D:
        saved = ckpt.config.get(DEPTH_SPEC_KEY)
        spec = PointNetSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}) if saved \
            else self.config.spec()
        return OpenVLA3D(ckpt.dino, ckpt.siglip, ckpt.llama, spec)

    def _extra(self, obs_batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        depth, intrinsics = zip(*(_depth_arrays(obs) for obs in obs_batch), strict=True)
        return {"depth": torch.from_numpy(np.stack(depth)), "intrinsics": torch.from_numpy(np.stack(intrinsics))}

    def training_batch(self, items: list[dict[str, Any]], generator: torch.Generator, augment: Any) -> TrainingBatch:
        """OFT's batch plus each sample's full-frame depth and intrinsics (the point clouds are not cropped)."""
        batch = super().training_batch(items, generator, augment)
        missing = [k for k in ("depth", "intrinsics") if k not in items[0]]
        if missing:
            raise InvalidConfig(f"openvla_3d trains on demos with depth and camera matrices; these have no {missing} "
                                "(collect them with sfbench collect)")
        batch.tensors["depth"] = torch.from_numpy(np.stack([it["depth"] for it in items])).float()
        batch.tensors["intrinsics"] = torch.from_numpy(np.stack([it["intrinsics"] for it in items])).float()
        return batch

    def _config_json(self) -> dict[str, Any]:
        return {**super()._config_json(), DEPTH_SPEC_KEY: asdict(self.model.depth_spec)}
