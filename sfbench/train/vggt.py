"""VGGT's aggregator in plain torch, under VGGT's own ``aggregator.*`` parameter names.

The ``vggt`` package is not on any package index, so the feature path that Spatial Forcing reads
is rebuilt here: a DINOv2-with-registers patch embedding (final-normed patch tokens), then
``depth`` rounds of frame attention (within each view) and global attention (over all views),
with per-view camera + register tokens, QK LayerNorm, LayerScale and 2-D RoPE (frequency 100,
patches at positions +1, special tokens at 0). Each round outputs concat(frame, global): 2 x dim.
``model.pt`` of VGGT-1B is loaded with its heads (camera, depth, point, track) dropped; widths and
depths are read from the weights, so a tiny test model in the same key layout loads the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sfbench.core.errors import InvalidConfig, MissingAsset

PREFIX = "aggregator."
PATCH = 14
SPECIAL_TOKENS = 5  # camera 1 + registers 4 (``patch_start_idx``)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AggregatorShape:
    """Sizes of an aggregator (VGGT-1B: 1024-d, 24 rounds, 16 heads, a ViT-L/14 patch embed at 518 px)."""

    dim: int = 1024
    depth: int = 24
    heads: int = 16
    embed_depth: int = 24
    embed_heads: int = 16
    image_size: int = 518
    registers: int = 4


class LayerScale(nn.Module):
    """Per-channel residual scale (``gamma``)."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale ``x``."""
        return x * self.gamma


def _rotate(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_2d(x: torch.Tensor, pos: torch.Tensor, frequency: float = 100.0) -> torch.Tensor:
    """2-D rotary embedding of ``x`` (B, H, N, d): first half by row, second half by column (``pos`` (B, N, 2))."""
    out = []
    for part, p in zip(x.chunk(2, dim=-1), (pos[..., 0], pos[..., 1]), strict=True):
        d = part.shape[-1]
        inv_freq = 1.0 / frequency ** (torch.arange(0, d, 2, device=x.device).float() / d)
        angles = p.float()[..., None] * inv_freq  # (B, N, d / 2)
        angles = torch.cat((angles, angles), dim=-1)[:, None].to(x.dtype)
        out.append(part * angles.cos() + _rotate(part) * angles.sin())
    return torch.cat(out, dim=-1)


class Attention(nn.Module):
    """Self-attention; optional QK LayerNorm and 2-D RoPE (the aggregator's blocks)."""

    def __init__(self, dim: int, heads: int, qk_norm: bool):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.q_norm = nn.LayerNorm(dim // heads) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(dim // heads) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Attend over the tokens of ``x`` (B, N, C)."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        if pos is not None:
            q, k = rope_2d(q, pos), rope_2d(k, pos)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP."""
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm block with LayerScale; ``eps`` 1e-6 in the patch embed, torch's 1e-5 in the aggregator."""

    def __init__(self, dim: int, heads: int, *, eps: float, qk_norm: bool, ls_init: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn, self.mlp = Attention(dim, heads, qk_norm), Mlp(dim)
        self.ls1, self.ls2 = LayerScale(dim, ls_init), LayerScale(dim, ls_init)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Residual attention then residual MLP."""
        x = x + self.ls1(self.attn(self.norm1(x), pos))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchProj(nn.Module):
    """The 14 px patch convolution (``patch_embed.patch_embed.proj``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH, PATCH)


class DinoPatchEmbed(nn.Module):
    """DINOv2 with registers; returns the final-normed patch tokens (``x_norm_patchtokens``)."""

    def __init__(self, s: AggregatorShape):
        super().__init__()
        n = (s.image_size // PATCH) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, s.dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, s.registers, s.dim))
        self.mask_token = nn.Parameter(torch.zeros(1, s.dim))  # used only for masked pre-training
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + n, s.dim))
        self.patch_embed = PatchProj(s.dim)
        self.blocks = nn.ModuleList(Block(s.dim, s.embed_heads, eps=1e-6, qk_norm=False, ls_init=1.0)
                                    for _ in range(s.embed_depth))
        self.norm = nn.LayerNorm(s.dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) ImageNet-normalised -> (N, (S/14)^2, dim)."""
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        x = torch.cat([x[:, :1], self.register_tokens.expand(len(x), -1, -1), x[:, 1:]], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1 + self.register_tokens.shape[1] :]


class Aggregator(nn.Module):
    """Alternating frame / global attention over the views of each sample."""

    def __init__(self, s: AggregatorShape):
        super().__init__()
        self.shape = s
        self.patch_embed = DinoPatchEmbed(s)
        self.frame_blocks = nn.ModuleList(Block(s.dim, s.heads, eps=1e-5, qk_norm=True, ls_init=0.01)
                                          for _ in range(s.depth))
        self.global_blocks = nn.ModuleList(Block(s.dim, s.heads, eps=1e-5, qk_norm=True, ls_init=0.01)
                                           for _ in range(s.depth))
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, s.dim))  # [first view, other views]
        self.register_token = nn.Parameter(torch.zeros(1, 2, s.registers, s.dim))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)

    def _special(self, token: torch.Tensor, b: int, s: int) -> torch.Tensor:
        per_view = torch.cat([token[:, :1].expand(b, 1, -1, -1), token[:, 1:].expand(b, s - 1, -1, -1)], dim=1)
        return per_view.flatten(0, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, S, 3, H, W) in [0, 1] -> the last round's tokens (B, S, 5 + patches, 2 * dim)."""
        b, s, _, h, w = images.shape
        if (h, w) != (self.shape.image_size,) * 2:
            raise ValueError(f"VGGT input must be {self.shape.image_size} px square, got {h}x{w}")
        patches = self.patch_embed(((images - self.mean) / self.std).flatten(0, 1))
        tokens = torch.cat([self._special(self.camera_token, b, s), self._special(self.register_token, b, s),
                            patches], dim=1)
        n, c = tokens.shape[1:]
        side = h // PATCH
        grid = torch.cartesian_prod(torch.arange(side), torch.arange(side)).to(images.device) + 1
        pos = torch.cat([torch.zeros(SPECIAL_TOKENS, 2, dtype=grid.dtype, device=grid.device), grid])
        for frame, glob in zip(self.frame_blocks, self.global_blocks, strict=True):
            tokens = frame(tokens.reshape(b * s, n, c), pos.expand(b * s, -1, -1))
            frame_out = tokens.reshape(b, s, n, c)
            tokens = glob(tokens.reshape(b, s * n, c), pos.repeat(s, 1).expand(b, -1, -1))
            global_out = tokens.reshape(b, s, n, c)
        return torch.cat([frame_out, global_out], dim=-1)


def shape_of(state: dict[str, torch.Tensor], heads: int, embed_heads: int) -> AggregatorShape:
    """The aggregator's sizes, read from its weights (head counts are not in the weights)."""
    dim = state["camera_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("frame_blocks."))
    embed_depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("patch_embed.blocks."))
    side = round((state["patch_embed.pos_embed"].shape[1] - 1) ** 0.5)
    return AggregatorShape(dim, depth, heads, embed_depth, embed_heads, side * PATCH,
                           state["register_token"].shape[2])


def load_aggregator(path: str | Path, heads: int = 16, embed_heads: int = 16) -> Aggregator:
    """The aggregator of a VGGT ``model.pt`` (a raw state dict); the heads' weights are ignored."""
    path = Path(path)
    if not path.is_file():
        raise MissingAsset(f"VGGT weights not found: '{path}' (VGGT-1B's model.pt)")
    full = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix(PREFIX): v for k, v in full.items() if k.startswith(PREFIX)}
    if not state:
        raise InvalidConfig(f"{path} has no {PREFIX}* tensors: not a VGGT checkpoint "
                            f"(its keys start with {sorted({k.split('.')[0] for k in full})[:5]})")
    model = Aggregator(shape_of(state, heads, embed_heads))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InvalidConfig(f"{path}: aggregator tensors do not match VGGT's layout "
                            f"(missing {missing[:2]}, unexpected {unexpected[:2]})")
    return model.eval().requires_grad_(False)
