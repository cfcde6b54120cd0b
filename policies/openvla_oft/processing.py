"""OFT's inputs and outputs: images per tower, the prompt's token ids, q01/q99 (un)normalisation, gripper.

Image path, ``image_chain: oft_tf`` (``run_libero_eval.py`` + ``PrismaticImageProcessor``): the env's
256 px view (already rotated by the protocol) -> JPEG round trip (quality 95, 4:2:0, TensorFlow's
fast-integer-IDCT decode) -> Lanczos-3 antialiased resize to 224, rounded to uint8 -> 90%-area centre
crop: ``crop_and_resize`` of the sub-pixel box of side sqrt(0.9), bilinear and corner-aligned, then
truncated to uint8 as ``convert_image_dtype`` does -> ``u / 255`` and per-tower normalisation with the
checkpoint's saved statistics -> [DINOv2 3 ch, SigLIP 3 ch] per view. Each TensorFlow step is ported
to numpy in :mod:`~sfbench.policies.openvla_oft.tf_image`; on the golden fixture (real LIBERO frames
of three suites, both views, and synthetic hard cases) the uint8 images equal tensorflow-cpu 2.21's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from sfbench.core.errors import InvalidConfig
from sfbench.policies.openvla_oft.constants import (
    BOS_ID,
    NUM_ACTION_TOKENS,
    PLACEHOLDER_ID,
    PROMPT,
    SPACE_ID,
    STOP_ID,
)
from sfbench.policies.openvla_oft.tf_image import (
    crop_and_resize,
    float_to_uint8,
    jpeg_round_trip,
    resize_lanczos3,
    square_box,
    uint8_to_float,
)
from sfbench.policies.openvla_oft.vit import IMAGE

CROP_AREA = 0.9
CROP_SIDE = np.sqrt(np.float32(CROP_AREA))  # tf.sqrt(0.9) in float32: the crop box's side, normalised
IMAGE_CHAINS = ("oft_tf",)  # the values of policy.image_chain (recorded in every run's identity)
EPS = 1e-8


def resized_view(view: np.ndarray, *, jpeg: bool = True) -> np.ndarray:
    """HWC uint8 view -> (224, 224, 3) uint8: JPEG round trip (unless already decoded from JPEG), Lanczos-3."""
    return resize_lanczos3(jpeg_round_trip(view) if jpeg else view, IMAGE)


def crop_box(offset: float | None) -> tuple[np.float32, ...]:
    """The normalised 90%-area box: centred (``offset=None``) or at ``offset`` in [0, 1) of the free margin.

    OFT's training crop (dlimp's ``random_resized_crop`` with scale 0.9, ratio 1) draws its vertical
    and horizontal offsets from one seed, so they are equal: the box slides along the diagonal.
    """
    margin = np.float32(1.0) - CROP_SIDE
    start = margin / np.float32(2.0) if offset is None else np.float32(offset) * margin
    return square_box(CROP_SIDE, start, start)


def crop_float(resized: np.ndarray, offset: float | None = None) -> torch.Tensor:
    """(224, 224, 3) uint8 -> its 90%-area crop resized to 224, (3, 224, 224) float32 in [0, 1], before any jitter."""
    return crop_and_resize(uint8_to_float(torch.from_numpy(resized)), crop_box(offset), IMAGE).clamp_(0.0, 1.0)


def policy_levels(view: np.ndarray, center_crop: bool) -> torch.Tensor:
    """HWC uint8 view -> the (3, 224, 224) uint8 image OFT's evaluation hands its processor."""
    resized = resized_view(view)
    if center_crop:
        return float_to_uint8(crop_float(resized))
    return torch.from_numpy(resized).permute(2, 0, 1).contiguous()


def policy_image(view: np.ndarray, center_crop: bool) -> np.ndarray:
    """HWC uint8 view -> the (224, 224, 3) uint8 image OFT's evaluation hands its processor."""
    return policy_levels(view, center_crop).permute(1, 2, 0).numpy()


def image_pixels(views: list[np.ndarray], image_stats: tuple, center_crop: bool) -> torch.Tensor:
    """HWC uint8 views -> (N, 6, 224, 224): the DINOv2- and the SigLIP-normalised copies of :func:`policy_image`."""
    levels = torch.stack([policy_levels(view, center_crop) for view in views])
    return tower_channels(levels.float().div_(255.0), image_stats)


def crop_pixel_box(offset: float | None, height: int, width: int) -> tuple[float, float, float, float]:
    """The crop of :func:`crop_box` as (top, left, height, width) in pixels of a ``height`` x ``width`` frame.

    Sub-pixel, in the half-pixel convention (pixel i covers [i, i + 1)), the region whose 224 samples
    the crop takes; what the trainer crops teacher features and depth maps with.
    """
    y1, x1, y2, _ = (float(v) for v in crop_box(offset))
    side = y2 - y1  # = the spacing of the samples, in pixels of the 224 px image
    top, left = y1 * (IMAGE - 1) + 0.5 - side / 2, x1 * (IMAGE - 1) + 0.5 - side / 2
    sy, sx = height / IMAGE, width / IMAGE
    return top * sy, left * sx, side * IMAGE * sy, side * IMAGE * sx


def tower_channels(x: torch.Tensor, image_stats: tuple) -> torch.Tensor:
    """Images (..., 3, H, W) in [0, 1] -> (..., 3 * towers, H, W): one normalised copy per tower."""
    out = x.new_empty((*x.shape[:-3], 3 * len(image_stats), *x.shape[-2:]))
    for k, (mean, std) in enumerate(image_stats):
        tower = out[..., 3 * k:3 * k + 3, :, :]
        torch.sub(x, torch.tensor(mean).view(3, 1, 1), out=tower)
        tower.div_(torch.tensor(std).view(3, 1, 1))
    return out


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
