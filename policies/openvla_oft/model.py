"""The OpenVLA-OFT network: fused DINOv2 + SigLIP towers, projector, Llama-2, proprio token, L1 head.

Module names equal the released checkpoints' keys: ``vla`` holds ``vision_backbone.*``,
``projector.*`` and ``language_model.*`` (the safetensors shards), ``action_head`` and
``proprio_projector`` the two auxiliary ``.pt`` files. The Llama runs through ``transformers``
with an all-zero 4-D attention mask: fully bidirectional, as OFT's patched sdpa attention is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from sfbench.policies.openvla_oft.constants import (
    ACTION_DIM,
    ACTION_HEAD_PREFIX,
    NUM_ACTION_TOKENS,
    NUM_ACTIONS_CHUNK,
    PROPRIO_DIM,
    PROPRIO_PREFIX,
)
from sfbench.policies.openvla_oft.vit import TowerSpec, VisionTower


class FusedBackbone(nn.Module):
    """DINOv2 on channels 0-2 and SigLIP on channels 3-5 of each image; features concatenated."""

    def __init__(self, dino: TowerSpec, siglip: TowerSpec):
        super().__init__()
        self.featurizer, self.fused_featurizer = VisionTower(dino), VisionTower(siglip)

    @property
    def dim(self) -> int:
        """Channels per patch (DINOv2 + SigLIP)."""
        return self.featurizer.spec.dim + self.fused_featurizer.spec.dim

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 6 * images, 224, 224) -> (B, 256 * images, dim), image after image."""
        per_image = []
        for image in pixels.split(6, dim=1):
            per_image.append(torch.cat([self.featurizer(image[:, :3]), self.fused_featurizer(image[:, 3:])], -1))
        return torch.cat(per_image, dim=1)


class FusedProjector(nn.Module):
    """fc1 -> GELU -> fc2 -> GELU -> fc3 (``no-align+fused-gelu-mlp``)."""

    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
        self.fc3 = nn.Linear(llm_dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        return self.fc3(F.gelu(self.fc2(F.gelu(self.fc1(x)))))


class OpenVLA(nn.Module):
    """The part saved in the safetensors shards."""

    def __init__(self, dino: TowerSpec, siglip: TowerSpec, llama: LlamaConfig):
        super().__init__()
        self.vision_backbone = FusedBackbone(dino, siglip)
        self.projector = FusedProjector(self.vision_backbone.dim, llama.hidden_size)
        self.language_model = LlamaForCausalLM(llama)


class MLPResNetBlock(nn.Module):
    """x + ReLU(Linear(LayerNorm(x)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    """LN -> fc1 -> ReLU -> residual blocks -> LN -> fc2 (OFT's action-head trunk)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_blocks: int = 2):
        super().__init__()
        self.layer_norm1, self.fc1 = nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden)
        self.mlp_resnet_blocks = nn.ModuleList(MLPResNetBlock(hidden) for _ in range(num_blocks))
        self.layer_norm2, self.fc2 = nn.LayerNorm(hidden), nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        x = F.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))


class L1RegressionActionHead(nn.Module):
    """(B, chunk, 7 * llm_dim) action-token hidden states -> (B, chunk, 7) normalised actions."""

    def __init__(self, llm_dim: int):
        super().__init__()
        self.model = MLPResNet(ACTION_DIM * llm_dim, llm_dim, ACTION_DIM)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        return self.model(hidden)


class ProprioProjector(nn.Module):
    """Normalised proprio (B, 8) -> one LLM token (B, llm_dim)."""

    def __init__(self, llm_dim: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(PROPRIO_DIM, llm_dim), nn.Linear(llm_dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the module (see the class docstring)."""
        return self.fc2(F.gelu(self.fc1(x)))


class OpenVLAOFT(nn.Module):
    """The whole policy network: :class:`OpenVLA` plus the action head and the proprio projector."""

    def __init__(self, dino: TowerSpec, siglip: TowerSpec, llama: LlamaConfig):
        super().__init__()
        self.vla = OpenVLA(dino, siglip, llama)
        self.action_head = L1RegressionActionHead(llama.hidden_size)
        self.proprio_projector = ProprioProjector(llama.hidden_size)

    @property
    def aux_parts(self) -> dict[str, nn.Module]:
        """The modules saved as auxiliary ``<prefix><step>_checkpoint.pt`` files, by prefix."""
        return {ACTION_HEAD_PREFIX: self.action_head, PROPRIO_PREFIX: self.proprio_projector}

    @property
    def num_patches(self) -> int:
        """Visual tokens per image."""
        return self.vla.vision_backbone.featurizer.pos_embed.shape[1]

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, proprio: torch.Tensor,
                lengths: torch.Tensor | None = None,
                extra_tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Normalised action chunks (B, 8, 7).

        ``input_ids`` (B, L): BOS, T prompt tokens ending with "▁", the 56 placeholders and the stop
        id, right-padded when ``lengths`` (B,) gives each row's own length (training batches). The
        sequence is [BOS, patches (256 per image), proprio, ``extra_tokens`` (B, E, D) if any (e.g.
        one depth token per view, as 3D-CAVLA), rest of ``input_ids``]; attention is
        bidirectional over the unpadded tokens, and the head reads the final hidden states from the
        last prompt token on (a shift by one, as in training). Also returns every layer's
        ``hidden_states``, ``action_start`` (per row) and ``sequence_length``.
        """
        llm = self.vla.language_model.model
        b, n = input_ids.shape
        lengths = torch.full((b,), n, device=input_ids.device) if lengths is None else lengths
        col = torch.arange(n, device=input_ids.device)[None]
        placeholder = (col >= (lengths - 1 - NUM_ACTION_TOKENS)[:, None]) & (col < (lengths - 1)[:, None])
        embeds = llm.embed_tokens(input_ids).masked_fill(placeholder[..., None], 0.0)  # placeholders are zeroed
        patches = self.vla.projector(self.vla.vision_backbone(pixels))
        proprio_token = self.proprio_projector(proprio.to(patches.dtype))[:, None]
        extra = [] if extra_tokens is None else [extra_tokens.to(patches.dtype)]
        seq = torch.cat([embeds[:, :1], patches, proprio_token, *extra, embeds[:, 1:]], dim=1)
        s = seq.shape[1]
        valid = lengths + patches.shape[1] + 1 + sum(e.shape[1] for e in extra)
        keys = torch.arange(s, device=seq.device)[None] < valid[:, None]
        mask = torch.zeros(b, 1, s, s, dtype=seq.dtype, device=seq.device)  # bidirectional over valid tokens
        mask = mask.masked_fill(~keys[:, None, None, :], torch.finfo(seq.dtype).min)
        positions = torch.arange(s, device=seq.device)[None].expand(b, -1)
        out = llm(inputs_embeds=seq, attention_mask=mask, position_ids=positions, output_hidden_states=True)
        start = valid - 2 - NUM_ACTION_TOKENS
        index = start[:, None] + torch.arange(NUM_ACTION_TOKENS, device=seq.device)[None]
        hidden = out.hidden_states[-1].gather(1, index[..., None].expand(-1, -1, seq.shape[-1]))
        actions = self.action_head(hidden.reshape(b, NUM_ACTIONS_CHUNK, -1))
        return {"actions": actions, "hidden_states": out.hidden_states, "action_start": start, "sequence_length": s}
