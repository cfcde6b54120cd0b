"""Spatial Forcing (SF): align a VLA's visual-token hidden states with a frozen 3-D teacher.

Paper Eq. 3-4 as implemented by the official code (``openvla-SF``):

1. the VLA's hidden states at the visual-token positions after layer k, ``(B, V * Hp * Wp, D)``;
2. projector ``LayerNorm(D) -> Linear(D, hidden) -> GELU -> Linear(hidden, D_t)`` (the paper says
   batch norm, the code uses LayerNorm), Xavier-uniform weights and zero biases;
3. the teacher's patch map ``(B, V, D_t, H_t, W_t)`` plus ``pe_scale`` times a 2-D sin-cos position
   embedding, bilinearly resampled (``align_corners=True``) to the VLA's grid and flattened
   view-major, row-major like the VLA's visual tokens;
4. ``L_align = 1 - cos(projected, target)`` averaged over tokens, then over the batch; the target
   is detached, so the frozen teacher gets no gradient. The trainer adds ``alpha * L_align`` to L1.

Any policy that exposes ``visual_hidden`` + ``grid`` (the trainable-policy contract) can use
:class:`SpatialForcing`; projector and teacher are dropped at inference.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AlignProjector", "AlignSettings", "SpatialForcing", "alignment_loss", "resample_to_grid",
           "sincos_pos_embed_2d"]

# Base period of the sin-cos embedding (VGGT's ``position_grid_to_embed`` uses omega_0 = 100).
PE_OMEGA_0 = 100.0


@dataclass
class AlignSettings:
    """The ``align`` section of ``configs/train.yaml`` (``configs/align/sf.yaml``); absent = no SF.

    Args:
        method: ``sf`` (Spatial Forcing, the only method so far).
        layer: Policy layer whose visual tokens are aligned (1-based, like HF ``hidden_states[k]``);
            None = 3/4 of the policy's layers, rounded (24 of 32 in the paper).
        alpha: Weight of the alignment loss, L = L_action + alpha * L_align (paper: 0.5).
        use_pe: Add a 2-D sin-cos position embedding to the teacher's features before resampling
            (official ``--use_vggt_pe``).
        pe_scale: Scale of that embedding (official: 0.1).
    """

    method: str = "sf"
    layer: int | None = None
    alpha: float = 0.5
    use_pe: bool = True
    pe_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.method != "sf":
            raise ValueError(f"align.method={self.method!r}; choices: sf")
        if self.alpha < 0 or self.pe_scale < 0:
            raise ValueError(f"align.alpha={self.alpha} and align.pe_scale={self.pe_scale} must be >= 0")

    def layer_of(self, num_layers: int) -> int:
        """The aligned layer for a policy with ``num_layers`` layers (checked to exist)."""
        layer = max(1, round(num_layers * 3 / 4)) if self.layer is None else self.layer
        if not 1 <= layer <= num_layers:
            raise ValueError(f"align.layer={layer} is outside the policy's layers 1..{num_layers}")
        return layer


class AlignProjector(nn.Module):
    """Maps VLA hidden states (..., D) to the teacher's feature space (..., D_t)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim)
        )
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Project (..., D) -> (..., D_t)."""
        return self.net(hidden)


def sincos_pos_embed_2d(dim: int, height: int, width: int) -> torch.Tensor:
    """2-D sin-cos embedding (dim, height, width) of a normalised UV grid.

    The grid keeps the aspect ratio and spans a unit diagonal (pixel centres in (-x_max, x_max),
    as VGGT's ``create_uv_grid``). The first half of the channels encodes u, the second v; each half
    is ``[sin(p * w_i), cos(p * w_i)]`` with geometric frequencies w_i = omega_0^(-i / (dim / 4)).
    Values lie in [-1, 1].
    """
    if dim % 4:
        raise ValueError(f"sincos_pos_embed_2d needs dim divisible by 4, got {dim}")
    diag = math.hypot(width, height)
    half_u, half_v = (width - 1) / diag, (height - 1) / diag
    v, u = torch.meshgrid(
        torch.linspace(-half_v, half_v, height), torch.linspace(-half_u, half_u, width), indexing="ij"
    )
    freqs = PE_OMEGA_0 ** (-torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    parts = []
    for pos in (u, v):
        angles = pos.double()[None] * freqs[:, None, None]  # (dim/4, H, W)
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts).float()


def resample_to_grid(
    teacher: torch.Tensor, grid: tuple[int, int, int], *, pe_scale: float = 0.0
) -> torch.Tensor:
    """Resample teacher maps (B, V, D_t, H_t, W_t) to the VLA grid (V, Hp, Wp) -> (B, V * Hp * Wp, D_t).

    With ``pe_scale > 0``, ``pe_scale * sincos_pos_embed_2d`` is added to each view's map *before*
    resampling, as the official ``_apply_pos_embed`` does.
    """
    b, n_views, d_t, h_t, w_t = teacher.shape
    v, hp, wp = grid
    if n_views != v:
        raise ValueError(f"teacher has {n_views} views but the VLA grid has {v}")
    maps = F.interpolate(teacher.flatten(0, 1).float(), size=(hp, wp), mode="bilinear", align_corners=True)
    if pe_scale > 0:  # resampling is linear: resample(maps + pe) = resample(maps) + resample(pe), computed once
        maps = maps + pe_scale * _resampled_pe(d_t, h_t, w_t, hp, wp, maps.device)
    return maps.reshape(b, v, d_t, hp * wp).transpose(2, 3).reshape(b, v * hp * wp, d_t)


@functools.lru_cache(maxsize=16)
def _resampled_pe(dim: int, height: int, width: int, hp: int, wp: int, device: torch.device) -> torch.Tensor:
    """:func:`sincos_pos_embed_2d` of the teacher's map, resampled to the VLA grid: (1, dim, hp, wp)."""
    pe = sincos_pos_embed_2d(dim, height, width)[None]
    return F.interpolate(pe, size=(hp, wp), mode="bilinear", align_corners=True).to(device)


def alignment_loss(projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - cosine similarity`` of (B, N, D_t) pairs: mean over tokens, then over the batch.

    ``target`` is detached: the teacher never receives gradient.
    """
    cos = F.cosine_similarity(projected.float(), target.detach().float(), dim=-1)  # (B, N)
    return (1.0 - cos.mean(dim=1)).mean()


class SpatialForcing(nn.Module):
    """The SF alignment term: projector + settings; trained with the VLA, dropped at inference.

    Args:
        vla_dim: Width D of the VLA's hidden states.
        teacher_dim: Width D_t of the teacher's features.
        layer: VLA layer whose visual tokens are aligned (1-based; pass as ``hidden_layer``).
        alpha: Weight of the alignment loss in the total loss.
        use_pe: Add the sin-cos position embedding to the teacher's features.
        pe_scale: Scale of that embedding.
        hidden_dim: Projector hidden width (default: ``teacher_dim``, as the official 2048).
    """

    def __init__(
        self,
        vla_dim: int,
        teacher_dim: int,
        *,
        layer: int,
        alpha: float = 0.5,
        use_pe: bool = True,
        pe_scale: float = 0.1,
        hidden_dim: int | None = None,
    ):
        super().__init__()
        self.projector = AlignProjector(vla_dim, teacher_dim, hidden_dim)
        self.layer, self.alpha = layer, alpha
        self.pe_scale = pe_scale if use_pe else 0.0

    def loss(
        self, visual_hidden: torch.Tensor, grid: tuple[int, int, int], teacher_features: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted alignment loss ``alpha * L_align`` (add it to L_action) and metrics.

        Args:
            visual_hidden: VLA hidden states at the visual tokens (B, V * Hp * Wp, D).
            grid: The VLA's visual grid (V, Hp, Wp).
            teacher_features: Frozen teacher maps (B, V, D_t, H_t, W_t).

        Returns:
            The loss (scalar tensor) and ``{"align_loss": L_align, "align_cos": mean cosine}``.
        """
        target = resample_to_grid(teacher_features, grid, pe_scale=self.pe_scale)
        if target.shape[:2] != visual_hidden.shape[:2]:
            raise ValueError(
                f"teacher targets {tuple(target.shape)} do not match tokens {tuple(visual_hidden.shape)}"
            )
        l_align = alignment_loss(self.projector(visual_hidden), target)
        value = float(l_align.detach())
        metrics = {"align_loss": value, "align_cos": 1.0 - value}
        return self.alpha * l_align, metrics
