"""OFT's inputs and outputs: images per tower, the prompt's token ids, q01/q99 (un)normalisation, gripper.

Image path (``run_libero_eval.py`` + ``PrismaticImageProcessor``): the env's 256 px views (already
rotated by the protocol) -> 224 px -> 90%-area centre crop resized back to 224 -> per-tower
normalisation with the checkpoint's saved statistics -> [DINOv2 3 ch, SigLIP 3 ch] per view.
OFT resizes with TensorFlow (JPEG round trip, lanczos3); here torch's antialiased bicubic and
bilinear resizes stand in, rounded to uint8 where OFT rounds: close, not bit-exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from sfbench.core.errors import InvalidConfig
from sfbench.core.images import center_box, crop_resize
from sfbench.policies.openvla_oft.constants import (
    BOS_ID,
    NUM_ACTION_TOKENS,
    PLACEHOLDER_ID,
    PROMPT,
    SPACE_ID,
    STOP_ID,
)
from sfbench.policies.openvla_oft.vit import IMAGE

CROP_AREA = 0.9
EPS = 1e-8


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0.0, 1.0) * 255.0).round() / 255.0


def image_pixels(view: np.ndarray, image_stats: tuple, center_crop: bool) -> torch.Tensor:
    """HWC uint8 view -> (6, 224, 224): the DINOv2- and the SigLIP-normalised copies."""
    x = torch.from_numpy(np.ascontiguousarray(view)).permute(2, 0, 1).float()[None] / 255.0
    x = _to_uint8(F.interpolate(x, size=(IMAGE, IMAGE), mode="bicubic", antialias=True, align_corners=False))
    if center_crop:
        x = _to_uint8(crop_resize(x, center_box(IMAGE, IMAGE, CROP_AREA), IMAGE))
    return tower_channels(x[0], image_stats)


def tower_channels(x: torch.Tensor, image_stats: tuple) -> torch.Tensor:
    """Images (..., 3, H, W) in [0, 1] -> (..., 3 * towers, H, W): one normalised copy per tower."""
    return torch.cat([(x - torch.tensor(m).view(3, 1, 1)) / torch.tensor(s).view(3, 1, 1) for m, s in image_stats],
                     dim=-3)


def load_tokenizer(path: Path) -> Tokenizer:
    """The checkpoint's ``tokenizer.json`` (HF ``tokenizers``; no Python tokenizer code is run)."""
    return Tokenizer.from_file(str(path))


def prompt_ids(tokenizer: Tokenizer, instruction: str) -> list[int]:
    """BOS + prompt (ending with "▁") + 56 action placeholders + stop, as ``predict_action`` builds it."""
    ids = tokenizer.encode(PROMPT.format(instruction=instruction.lower())).ids
    ids = ids if ids and ids[0] == BOS_ID else [BOS_ID, *ids]
    ids = ids if ids[-1] == SPACE_ID else [*ids, SPACE_ID]
    return [*ids, *[PLACEHOLDER_ID] * NUM_ACTION_TOKENS, STOP_ID]


def unnorm_key(stats: dict[str, Any], wanted: str | None, suite: str) -> str:
    """The statistics key: ``wanted``, else the suite or ``<suite>_no_noops``, else the only one."""
    candidates = [wanted] if wanted else [suite, f"{suite}_no_noops", *(list(stats) if len(stats) == 1 else [])]
    for key in candidates:
        if key in stats:
            return key
    what = f"policy.unnorm_key={wanted}" if wanted else f"suite {suite} (nor {suite}_no_noops)"
    raise InvalidConfig(f"dataset_statistics.json has no statistics for {what}; it has: {sorted(stats)}")


def normalize_proprio(x: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """``clip(2 (x - q01) / (q99 - q01) - 1, -1, 1)`` where the mask is set (default: every dim)."""
    q01, q99 = np.asarray(stats["q01"]), np.asarray(stats["q99"])
    mask = np.asarray(stats.get("mask", np.ones_like(q01, dtype=bool)), dtype=bool)
    return np.clip(np.where(mask, 2 * (x - q01) / (q99 - q01 + EPS) - 1, x), -1, 1)


def env_actions(normed: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """Normalised chunk (..., 7) -> LIBERO actions: q01/q99 where masked, gripper binarised and inverted."""
    q01, q99 = np.asarray(stats["q01"]), np.asarray(stats["q99"])
    mask = np.asarray(stats.get("mask", np.ones_like(q01, dtype=bool)), dtype=bool)
    actions = np.where(mask, 0.5 * (normed + 1) * (q99 - q01 + EPS) + q01, normed)
    actions[..., -1] = -np.sign(2 * actions[..., -1] - 1)  # OFT 1 = open -> LIBERO -1 = open
    return actions
