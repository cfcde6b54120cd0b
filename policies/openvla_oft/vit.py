"""Plain-torch ViTs under timm's parameter names: OFT's DINOv2-with-registers and SigLIP towers.

timm cannot be imported here (it needs torchvision), so the towers are rebuilt with the exact
state-dict keys of the HF port of OpenVLA (timm 0.9.10 names, LayerScale ``gamma`` renamed
``scale_factor``). OFT reads the output of the second-to-last block, without the final norm and
without the prefix tokens (``get_intermediate_layers(x, n={depth - 2})``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sfbench.core.errors import InvalidConfig

PATCH = 14
IMAGE = 224
EPS = 1e-6


@dataclass(frozen=True)
class TowerSpec:
    """Shape of one vision tower."""

    dim: int
    depth: int
    heads: int
    mlp: int
    registers: int = 0
    class_token: bool = False
    layer_scale: bool = False
    attn_pool: bool = False  # SigLIP's MAP head: saved in checkpoints, unused by OFT

    @property
    def prefix_tokens(self) -> int:
        """Tokens before the patches (class + registers)."""
        return int(self.class_token) + self.registers


def _dinov2(dim: int, depth: int, heads: int) -> TowerSpec:
    return TowerSpec(dim, depth, heads, 4 * dim, registers=4, class_token=True, layer_scale=True)


# The timm ids OpenVLA checkpoints name in ``config.json`` (``timm_model_ids``).
TOWERS = {
    "vit_large_patch14_reg4_dinov2.lvd142m": _dinov2(1024, 24, 16),
    "vit_base_patch14_reg4_dinov2.lvd142m": _dinov2(768, 12, 12),
    "vit_small_patch14_reg4_dinov2.lvd142m": _dinov2(384, 12, 6),
    "vit_so400m_patch14_siglip_224": TowerSpec(1152, 27, 16, 4304, attn_pool=True),
}


def tower_spec(timm_id: str, override: dict | None = None) -> TowerSpec:
    """The spec of ``timm_id``, or ``override`` (a ``TowerSpec`` dict, for sfbench's tiny checkpoints)."""
    if override is not None:
        return TowerSpec(**override)
    if timm_id not in TOWERS:
        raise InvalidConfig(f"Unknown vision tower {timm_id!r} in config.json timm_model_ids; known: {sorted(TOWERS)}")
    return TOWERS[timm_id]


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch (timm's ``gamma``, saved as ``scale_factor``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale_factor = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module to ``x`` (B, N, C)."""
        return x * self.scale_factor


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module to ``x`` (B, N, C)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module to ``x`` (B, N, C)."""
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerScale on DINOv2)."""

    def __init__(self, spec: TowerSpec):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(spec.dim, eps=EPS), nn.LayerNorm(spec.dim, eps=EPS)
        self.attn, self.mlp = Attention(spec.dim, spec.heads), Mlp(spec.dim, spec.mlp)
        self.ls1 = LayerScale(spec.dim) if spec.layer_scale else nn.Identity()
        self.ls2 = LayerScale(spec.dim) if spec.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module to ``x`` (B, N, C)."""
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class AttentionPool(nn.Module):
    """SigLIP's MAP head: its parameters only (OFT never runs it)."""

    def __init__(self, spec: TowerSpec):
        super().__init__()
        self.latent = nn.Parameter(torch.zeros(1, 1, spec.dim))
        self.q, self.kv, self.proj = nn.Linear(spec.dim, spec.dim), nn.Linear(spec.dim, 2 * spec.dim), \
            nn.Linear(spec.dim, spec.dim)
        self.norm, self.mlp = nn.LayerNorm(spec.dim, eps=EPS), Mlp(spec.dim, spec.mlp)


class PatchEmbed(nn.Module):
    """14 px patches -> tokens (B, 256, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH, PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module to ``x`` (B, N, C)."""
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTower(nn.Module):
    """A timm ``VisionTransformer`` at 224 px, patch 14 (256 patches), position embedding on patches only."""

    def __init__(self, spec: TowerSpec):
        super().__init__()
        self.spec = spec
        self.patch_embed = PatchEmbed(spec.dim)
        self.pos_embed = nn.Parameter(torch.randn(1, (IMAGE // PATCH) ** 2, spec.dim) * 0.02)
        if spec.class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, spec.dim))
        if spec.registers:
            self.reg_token = nn.Parameter(torch.zeros(1, spec.registers, spec.dim))
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(spec.dim, eps=EPS)
        if spec.attn_pool:
            self.attn_pool = AttentionPool(spec)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) normalised pixels -> (B, 256, dim): block ``depth - 2``'s patch tokens."""
        x = self.patch_embed(pixels) + self.pos_embed
        prefix = [t.expand(len(x), -1, -1) for t in (getattr(self, "cls_token", None),
                                                    getattr(self, "reg_token", None)) if t is not None]
        x = torch.cat([*prefix, x], dim=1)
        for block in self.blocks[: self.spec.depth - 1]:
            x = block(x)
        return x[:, self.spec.prefix_tokens :]
