"""The 3D-input baseline: :class:`~sfbench.policies.tiny_vla.TinyVLA` fed sensor geometry.

Same trunk, data and training as ``tiny_vla``, but each view's patch tokens also receive a
patch-embedded geometry map computed from the simulator's metric depth: a camera-frame XYZ point
map (``input_geometry="points"``, default) or the depth itself (``"depth"``). This is the
"explicit 3D input" family of the SF paper (GeoVLA, 3D-CAVLA, PointVLA: depth sensor -> points),
against which Spatial Forcing's "implicit 3D from 2D" is compared. It needs depth at test time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from sfbench.constants import OBS_DEPTH, OBS_INTRINSICS
from sfbench.geometry import point_map
from sfbench.policies.tiny_vla import TinyVLAConfig, TinyVLAPolicy, center_box, crop_resize

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass
class TinyVLADepthConfig(TinyVLAConfig):
    """Configuration of :class:`TinyVLADepthPolicy`: :class:`TinyVLAConfig` plus geometry input.

    Args:
        input_geometry: "points" (camera-frame XYZ point map, m; default) or "depth" (metric
            depth, m), patch-embedded and added to the RGB patch tokens.
        max_depth_m: Depth is clipped to [0, max_depth_m] metres before use, so that far
            background (or a missing reading) cannot blow up the input scale.
    """

    policy_name: ClassVar[str] = "tiny_vla_depth"
    allowed_geometry: ClassVar[tuple[str | None, ...]] = ("points", "depth")

    input_geometry: str | None = "points"
    max_depth_m: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.max_depth_m > 0:
            raise ValueError(f"max_depth_m must be > 0, got {self.max_depth_m}")


def geometry_channels(depth: np.ndarray, k: np.ndarray, kind: str, max_depth_m: float) -> torch.Tensor:
    """Full-resolution geometry input (C_g, H, W) of one view: clipped depth (1) or its point map (3)."""
    z = np.clip(np.asarray(depth, dtype=np.float32), 0.0, max_depth_m)
    if kind == "depth":
        return torch.from_numpy(z)[None]
    return torch.from_numpy(point_map(z, np.asarray(k, dtype=np.float64)))


class TinyVLADepthPolicy(TinyVLAPolicy):
    """:class:`TinyVLAPolicy` that also feeds per-view depth or point maps (needs depth rendering)."""

    name = "tiny_vla_depth"
    config_class = TinyVLADepthConfig

    def geometry_input(self, obs: dict[str, Any]) -> torch.Tensor:
        """Geometry channels (V, C_g, image_size, image_size), cropped and resized like the RGB views."""
        cfg = self.config
        out = []
        for view in cfg.views:
            full = geometry_channels(
                obs[OBS_DEPTH][view], obs[OBS_INTRINSICS][view], cfg.input_geometry, cfg.max_depth_m
            )
            box = center_box(full.shape[-2], full.shape[-1], cfg.center_crop_area)
            out.append(crop_resize(full, box, cfg.image_size))
        return torch.stack(out)
