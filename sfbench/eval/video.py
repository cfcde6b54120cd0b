"""Episode videos: both views side by side, the instruction on top and the outcome below (MP4)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

BANNER_PX = 36
SUCCESS_RGB = (40, 160, 60)
FAILURE_RGB = (190, 40, 40)


def _banner(width: int, text: str, colour: tuple[int, int, int]) -> np.ndarray:
    img = Image.new("RGB", (width, BANNER_PX), colour)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    lines = textwrap.wrap(text, width=max(20, width // 7))[:2]
    for i, line in enumerate(lines):
        draw.text((6, 4 + 14 * i), line, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def annotate(frames: list[np.ndarray], instruction: str, outcome: str, success: bool) -> list[np.ndarray]:
    """Stack a banner with ``instruction`` above and one with ``outcome`` below every frame."""
    width = frames[0].shape[1]
    top = _banner(width, instruction, (30, 30, 30))
    bottom = _banner(width, outcome, SUCCESS_RGB if success else FAILURE_RGB)
    return [np.concatenate([top, f, bottom], axis=0) for f in frames]


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 20) -> Path:
    """Encode ``frames`` (HWC uint8) as H.264 MP4, atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.mp4")
    imageio.mimwrite(tmp, frames, fps=fps, codec="libx264", quality=7, macro_block_size=8)
    os.replace(tmp, path)
    return path
