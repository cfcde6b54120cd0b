"""Frozen 3-D teachers for Spatial Forcing: ``features(images, geometry) -> (B, V, D_t, H_t, W_t)``.

- ``geometry`` (:class:`GeometryTeacher`, the default here): exact 3-D supervision built from the
  simulator's own depth and camera matrices, encoded with fixed random Fourier features. It is a
  stand-in for VGGT where VGGT-1B cannot be downloaded, and is named as such in every result.
- ``vggt`` (:class:`VGGTTeacher`): the paper's teacher, VGGT-1B's last aggregator layer (plain torch).
- ``dinov2`` (:class:`DinoV2Teacher`): the 2-D-only ablation teacher (paper: VGGT > DINOv2).

Teachers have no trainable parameters and run without gradient. :class:`FeatureCache` stores their
outputs on disk keyed by a content hash of the teacher and its inputs.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from sfbench.core.errors import MissingAsset, UnknownChoice
from sfbench.core.geometry import point_map
from sfbench.train.vggt import PATCH, SPECIAL_TOKENS, load_aggregator

__all__ = ["DinoV2Teacher", "FeatureCache", "GeometryTeacher", "Teacher", "VGGTTeacher", "make_teacher"]

log = logging.getLogger(__name__)

# ImageNet statistics expected by DINOv2 (VGGT normalises internally).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Teacher(abc.ABC):
    """A frozen feature extractor. Subclasses set ``name`` and ``requires_geometry``."""

    name: ClassVar[str]
    requires_geometry: ClassVar[bool] = False
    feature_dim: int

    @abc.abstractmethod
    def features(self, images: torch.Tensor, geometry: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Feature maps (B, V, D_t, H_t, W_t) of ``images`` (B, V, 3, H, W) in [0, 1].

        ``geometry`` holds ``depth`` (B, V, H, W) metres, ``intrinsics`` (B, V, 3, 3) and
        ``extrinsics`` (B, V, 4, 4) camera-to-world, for teachers with ``requires_geometry``.
        """

    @abc.abstractmethod
    def cache_key(self) -> str:
        """A string that changes whenever the features for the same input would change."""

    # Where :meth:`features` expects its inputs: the weights' device (teachers without weights stay on CPU).
    device = torch.device("cpu")

    def to(self, device: torch.device | str) -> Teacher:
        """Move any model weights to ``device`` (no-op for teachers without weights)."""
        return self


class GeometryTeacher(Teacher):
    """Per-patch world-frame geometry from simulator depth, as fixed random Fourier features.

    Per view: back-project depth to a camera-frame point map with K, move it to the world frame with
    the camera-to-world extrinsics, estimate normals from the point map's image gradients, and
    average-pool points, camera depth and normals to a ``grid`` x ``grid`` patch map. Each patch's
    vector c = [XYZ_world, depth, normal * normal_length_m] (metres) is encoded as
    ``[sin(2 pi c W), cos(2 pi c W)]``; W's columns have random directions and magnitudes
    log-uniform in [min_freq_per_m, max_freq_per_m] cycles per metre, drawn once from ``seed``.
    The cosine similarity of two such features is then a kernel on their geometry that decays
    gradually from ~1 (same point) to ~0 over the workspace's length scales, so aligning to them
    asks the VLA to encode where each patch is in 3-D, at centimetre to metre scales.
    """

    name = "geometry"
    requires_geometry = True

    def __init__(
        self,
        feature_dim: int = 256,
        grid: int = 16,
        seed: int = 0,
        min_freq_per_m: float = 0.25,
        max_freq_per_m: float = 8.0,
        normal_length_m: float = 0.1,
        use_depth: bool = True,
        use_normals: bool = True,
    ):
        if feature_dim < 2 or feature_dim % 2:
            raise ValueError(f"feature_dim must be an even number >= 2, got {feature_dim}")
        if grid < 1 or not 0 < min_freq_per_m <= max_freq_per_m or normal_length_m <= 0:
            raise ValueError(
                "need grid >= 1, 0 < min_freq_per_m <= max_freq_per_m and normal_length_m > 0; got "
                f"grid={grid}, min_freq_per_m={min_freq_per_m}, max_freq_per_m={max_freq_per_m}, "
                f"normal_length_m={normal_length_m}"
            )
        self.feature_dim, self.grid, self.seed = feature_dim, grid, seed
        self.min_freq_per_m, self.max_freq_per_m = min_freq_per_m, max_freq_per_m
        self.normal_length_m, self.use_depth, self.use_normals = normal_length_m, use_depth, use_normals
        generator = torch.Generator().manual_seed(seed)
        directions = F.normalize(
            torch.randn(
                3 + use_depth + 3 * use_normals, feature_dim // 2, generator=generator, dtype=torch.float64
            ),
            dim=0,
        )
        log_range = torch.tensor([min_freq_per_m, max_freq_per_m], dtype=torch.float64).log()
        u = torch.rand(feature_dim // 2, generator=generator, dtype=torch.float64)
        self.frequencies = directions * torch.exp(log_range[0] + u * (log_range[1] - log_range[0]))

    def cache_key(self) -> str:
        """All settings that change the features."""
        names = (
            "feature_dim",
            "grid",
            "seed",
            "min_freq_per_m",
            "max_freq_per_m",
            "normal_length_m",
            "use_depth",
            "use_normals",
        )
        return json.dumps({"teacher": self.name, **{k: getattr(self, k) for k in names}})

    def world_points(self, geometry: dict[str, torch.Tensor]) -> torch.Tensor:
        """World-frame point maps (B, V, 3, H, W) in metres from depth, K and camera-to-world poses."""
        cam = point_map(geometry["depth"].double(), geometry["intrinsics"].double())  # (B, V, 3, H, W)
        pose = geometry["extrinsics"].double()
        world = torch.einsum("bvij,bvjhw->bvihw", pose[..., :3, :3], cam)
        return world + pose[..., :3, 3, None, None]

    def patch_inputs(self, geometry: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled per-patch inputs (B, V, C, grid, grid): world XYZ, camera depth, unit normals."""
        world = self.world_points(geometry)
        channels = [world]
        if self.use_depth:
            channels.append(geometry["depth"].double().unsqueeze(2))
        if self.use_normals:
            channels.append(_normals(world))
        x = torch.cat(channels, dim=2)
        b, v = x.shape[:2]
        pooled = F.adaptive_avg_pool2d(x.flatten(0, 1), self.grid).reshape(b, v, -1, self.grid, self.grid)
        if self.use_normals:
            pooled[:, :, -3:] = F.normalize(pooled[:, :, -3:], dim=2)
        return pooled

    def encoded_inputs(self, geometry: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`patch_inputs` with normals scaled to ``normal_length_m`` (all channels in metres)."""
        x = self.patch_inputs(geometry)
        if self.use_normals:
            x[:, :, -3:] *= self.normal_length_m
        return x

    @torch.no_grad()
    def features(self, images: torch.Tensor, geometry: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Fourier features (B, V, feature_dim, grid, grid); ``images`` are not used."""
        if geometry is None:
            raise ValueError("GeometryTeacher needs geometry: depth, intrinsics and extrinsics")
        x = self.encoded_inputs(geometry)
        angles = 2 * torch.pi * torch.einsum("bvchw,cf->bvfhw", x, self.frequencies.to(x.device))
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=2).float()


def _normals(points: torch.Tensor) -> torch.Tensor:
    """Unit normals (..., 3, H, W) of a point map from central differences (edges replicated)."""
    flat = points.flatten(0, -4)
    padded = F.pad(flat, (1, 1, 1, 1), mode="replicate")
    du = padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]
    dv = padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]
    normals = F.normalize(torch.cross(du, dv, dim=-3), dim=-3)
    return normals.reshape(points.shape)


class VGGTTeacher(Teacher):
    """VGGT's last aggregator layer, patch tokens only (the paper's teacher; VGGT-1B: 2048-d, 37 x 37).

    Plain torch (:mod:`sfbench.train.vggt`), loaded from a local ``model.pt``. All views of a
    sample go in jointly as one multi-view set; each is resized bicubically to the model's input
    size (518 px for VGGT-1B), without antialiasing or clamping, as SF's OpenVLA path does; the
    camera and register tokens are dropped. bf16 autocast on CUDA.
    """

    name = "vggt"

    def __init__(self, checkpoint: str, heads: int = 16, embed_heads: int = 16):
        self.checkpoint = str(checkpoint)
        self.model = load_aggregator(checkpoint, heads, embed_heads)
        self.image_size = self.model.shape.image_size
        self.feature_dim = 2 * self.model.shape.dim

    def cache_key(self) -> str:
        """Teacher name + weights identity (path, size, mtime)."""
        return _file_key(self.name, Path(self.checkpoint))

    def to(self, device: torch.device | str) -> VGGTTeacher:
        """Move the model to ``device``."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def features(self, images: torch.Tensor, geometry: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Last-layer patch tokens (B, V, 2 * dim, side, side)."""
        b, v = images.shape[:2]
        size, side = self.image_size, self.image_size // PATCH
        x = F.interpolate(images.flatten(0, 1).float(), size=(size, size), mode="bicubic", align_corners=False)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
            tokens = self.model(x.reshape(b, v, 3, size, size))
        patches = tokens[:, :, SPECIAL_TOKENS:].float()
        return patches.reshape(b, v, side, side, -1).permute(0, 1, 4, 2, 3)


class DinoV2Teacher(Teacher):
    """DINOv2 last-layer patch tokens via ``transformers`` (the paper's 2-D teacher ablation)."""

    name = "dinov2"

    def __init__(self, checkpoint: str, image_size: int = 224):
        try:
            from transformers import Dinov2Model
        except ImportError:
            raise MissingAsset("The dinov2 teacher needs transformers: pip install transformers") from None
        path = Path(checkpoint)
        if not path.is_dir():
            raise MissingAsset(f"DINOv2 model directory not found: '{path}' (a save_pretrained directory)")
        self.checkpoint, self.image_size = str(path), image_size
        self.model = Dinov2Model.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)
        self.feature_dim = self.model.config.hidden_size

    def cache_key(self) -> str:
        """Teacher name + model directory identity + input size."""
        return _file_key(self.name, Path(self.checkpoint) / "config.json") + f":{self.image_size}"

    def to(self, device: torch.device | str) -> DinoV2Teacher:
        """Move the model to ``device``."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def features(self, images: torch.Tensor, geometry: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Patch tokens (B, V, D, H/14, W/14); the CLS and register tokens are dropped."""
        b, v = images.shape[:2]
        x = F.interpolate(
            images.flatten(0, 1).float(), size=(self.image_size,) * 2, mode="bicubic", align_corners=False
        )
        mean, std = (torch.tensor(s, device=x.device)[:, None, None] for s in (IMAGENET_MEAN, IMAGENET_STD))
        hidden = self.model(pixel_values=(x.clamp(0.0, 1.0) - mean) / std).last_hidden_state
        side = self.image_size // self.model.config.patch_size
        patches = hidden[:, -side * side :]
        return patches.reshape(b, v, side, side, -1).permute(0, 1, 4, 2, 3)


def _file_key(name: str, path: Path) -> str:
    stat = path.stat()
    return f"{name}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


TEACHERS: dict[str, type[Teacher]] = {t.name: t for t in (GeometryTeacher, VGGTTeacher, DinoV2Teacher)}


def make_teacher(name: str, **config: Any) -> Teacher:
    """Build the teacher called ``name`` (``geometry``, ``vggt`` or ``dinov2``) from ``config``."""
    if name not in TEACHERS:
        raise UnknownChoice("teacher", name, TEACHERS)
    return TEACHERS[name](**config)


class FeatureCache:
    """On-disk cache of teacher features: ``<dir>/<sha256>.npy`` per (teacher, inputs) pair.

    The key hashes the teacher's :meth:`Teacher.cache_key` with the dtype, shape and bytes of every
    input array, so changed settings or inputs never hit a stale entry. Files are written to a
    temporary name and renamed, so a killed run leaves no half-written entry.
    """

    def __init__(self, directory: str | Path, teacher: Teacher):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.teacher_key = teacher.cache_key()

    def key(self, arrays: Sequence[np.ndarray | torch.Tensor]) -> str:
        """Content hash of the teacher settings and ``arrays``."""
        digest = hashlib.sha256(self.teacher_key.encode())
        for a in arrays:
            a = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a)
            digest.update(f"{a.dtype.str}{a.shape}".encode())
            digest.update(a.tobytes())
        return digest.hexdigest()

    def get_or_compute(
        self, key_arrays: Sequence[np.ndarray | torch.Tensor], fn: Callable[[], torch.Tensor]
    ) -> torch.Tensor:
        """Features for ``key_arrays``: loaded if cached, else ``fn()`` (stored on CPU as float32)."""
        path = self.directory / f"{self.key(key_arrays)}.npy"
        if path.is_file():
            return torch.from_numpy(np.load(path))
        features = fn().detach().float().cpu()
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, features.numpy())
        tmp.replace(path)
        log.debug("cached teacher features %s", path.name)
        return features
