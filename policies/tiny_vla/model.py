"""The TinyVLA network: OpenVLA-OFT's design scaled down to train on a CPU.

The model follows OpenVLA-OFT's LIBERO recipe (parallel decoding, L1 regression, proprio token):

- each view is cut into ``patch_size`` patches by one strided ``Conv2d`` (shared by the views),
  plus a learned position embedding and a learned per-view embedding;
- the instruction is byte-tokenised (UTF-8 byte + 1, 0 = pad) and embedded;
- the normalised proprio goes through a 2-layer MLP into one token;
- ``chunk_size`` learned action-query tokens (OFT's "empty action embeddings") are appended, so the
  whole chunk comes out of one forward pass;
- a pre-LN transformer encoder runs over ``[visual (view-major, row-major) | proprio | text |
  action queries]`` with bidirectional attention (text padding masked);
- a LayerNorm + MLP head maps each action-query output to one normalised action.

The visual-token hidden states after any trunk layer are exposed (``hidden_layer``) together with
their grid: what Spatial Forcing and the depth probe read.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sfbench.policies.tiny_vla.config import GEOMETRY_CHANNELS, TinyVLAConfig


class TinyVLA(nn.Module):
    """The trunk + L1 action head; see the module docstring for the token layout."""

    def __init__(self, config: TinyVLAConfig):
        super().__init__()
        self.config = config
        d = config.dim
        n_views, hp, wp = config.grid
        self.patch_embed = nn.Conv2d(3, d, config.patch_size, stride=config.patch_size)
        self.geometry_embed = (
            nn.Conv2d(
                GEOMETRY_CHANNELS[config.input_geometry], d, config.patch_size, stride=config.patch_size
            )
            if config.input_geometry
            else None
        )
        self.pos_embed = nn.Parameter(torch.randn(1, hp * wp, d) * 0.02)
        self.view_embed = nn.Parameter(torch.randn(n_views, 1, d) * 0.02)
        self.proprio_embed = nn.Sequential(nn.Linear(config.proprio_dim, d), nn.GELU(), nn.Linear(d, d))
        self.text_embed = nn.Embedding(256 + 1, d, padding_idx=0)
        self.text_pos = nn.Parameter(torch.randn(1, config.max_text_tokens, d) * 0.02)
        self.action_queries = nn.Parameter(torch.randn(1, config.chunk_size, d) * 0.02)
        self.trunk = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d,
                config.heads,
                round(d * config.mlp_ratio),
                config.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.action_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, config.action_dim))

    @property
    def num_layers(self) -> int:
        """Number of trunk layers (valid ``hidden_layer`` values are 0..num_layers)."""
        return self.config.layers

    @property
    def visual_grid(self) -> tuple[int, int, int]:
        """Grid (V, Hp, Wp) of the visual tokens, flattened view-major then row-major."""
        return self.config.grid

    @property
    def hidden_dim(self) -> int:
        """Width D of the trunk's hidden states."""
        return self.config.dim

    def _visual_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Patch tokens (B, V * Hp * Wp, D) of the images (and geometry) in ``batch``."""
        images = batch["images"]
        n_views, hp, wp = self.visual_grid
        size = self.config.image_size
        if images.shape[1:] != (n_views, 3, size, size):
            raise ValueError(f"images must be (B, {n_views}, 3, {size}, {size}), got {tuple(images.shape)}")
        x = self.patch_embed((images.flatten(0, 1) - 0.5) / 0.5)
        if self.geometry_embed is not None:
            if "geometry" not in batch:
                raise KeyError(f"input_geometry={self.config.input_geometry!r} needs batch['geometry']")
            x = x + self.geometry_embed(batch["geometry"].flatten(0, 1).float())
        x = x.flatten(2).transpose(1, 2) + self.pos_embed  # (B*V, Hp*Wp, D)
        x = x.reshape(-1, n_views, hp * wp, self.hidden_dim) + self.view_embed
        return x.flatten(1, 2)

    def forward(self, batch: dict[str, torch.Tensor], *, hidden_layer: int | None = None) -> dict[str, Any]:
        """Predict a normalised action chunk.

        Args:
            batch: ``images`` (B, V, 3, H, W) in [0, 1]; ``proprio`` (B, P) normalised to [-1, 1];
                ``tokens`` (B, L) int64 with L <= max_text_tokens (see :func:`tokenize`);
                ``geometry`` (B, V, C_g, H, W) when ``input_geometry`` is set.
            hidden_layer: If given, also return the visual tokens' hidden states after this trunk
                layer (1-based like HF ``hidden_states[k]``; 0 = the input embeddings).

        Returns:
            ``actions`` (B, chunk, action_dim) in normalised units; with ``hidden_layer`` also
            ``visual_hidden`` (B, V * Hp * Wp, D) and ``grid`` (V, Hp, Wp).
        """
        if hidden_layer is not None and not 0 <= hidden_layer <= self.num_layers:
            raise ValueError(f"hidden_layer must be in [0, {self.num_layers}], got {hidden_layer}")
        visual = self._visual_tokens(batch)
        n_visual, tokens = visual.shape[1], batch["tokens"]
        if tokens.shape[1] > self.config.max_text_tokens:
            raise ValueError(
                f"tokens has {tokens.shape[1]} columns > max_text_tokens={self.config.max_text_tokens}"
            )
        text = self.text_embed(tokens) + self.text_pos[:, : tokens.shape[1]]
        proprio = self.proprio_embed(batch["proprio"].float()).unsqueeze(1)
        queries = self.action_queries.expand(len(visual), -1, -1)
        h = torch.cat([visual, proprio, text, queries], dim=1)
        pad = torch.zeros(h.shape[:2], dtype=torch.bool, device=h.device)
        pad[:, n_visual + 1 : n_visual + 1 + tokens.shape[1]] = tokens == 0
        out: dict[str, Any] = {}
        for i, layer in enumerate([None, *self.trunk]):
            if layer is not None:
                h = layer(h, src_key_padding_mask=pad)
            if i == hidden_layer:
                out["visual_hidden"], out["grid"] = h[:, :n_visual], self.visual_grid
        out["actions"] = self.action_head(self.norm(h[:, -self.config.chunk_size :]))
        return out
