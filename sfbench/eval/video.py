"""Episode videos: both views side by side, the instruction on top, a step counter and at the end the outcome below."""

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
NEUTRAL_RGB = (70, 70, 70)


def _banner(width: int, text: str, colour: tuple[int, int, int]) -> np.ndarray:
    img = Image.new("RGB", (width, BANNER_PX), colour)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    lines = textwrap.wrap(text, width=max(20, width // 7))[:2]
    for i, line in enumerate(lines):
        draw.text((6, 4 + 14 * i), line, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def annotate(frames: list[np.ndarray], instruction: str, outcome: str, success: bool, *,
             steps: list[int] | None = None, hold: int = 0) -> list[np.ndarray]:
    """Stack the instruction above every frame and a step counter below it; the outcome only at the end.

    Until the episode's last frame the lower banner is neutral and shows the step of the frame, so
    a viewer is never told the outcome before the robot has finished. The last frame carries the
    outcome (green or red) and is held ``hold`` extra frames so that it can be read.

    Args:
        frames: HWC uint8 renders of one episode, in order.
        instruction: the task's instruction (top banner).
        outcome: the verdict text shown on the last frame.
        success: colours the verdict banner green (else red).
        steps: the env step of each frame (``None``: the frame index).
        hold: extra copies of the last, annotated frame.
    """
    width = frames[0].shape[1]
    steps = list(range(len(frames))) if steps is None else steps
    if len(steps) != len(frames):
        raise ValueError(f"annotate: {len(steps)} step numbers for {len(frames)} frames")
    top = _banner(width, instruction, (30, 30, 30))
    out = [np.concatenate([top, f, _banner(width, f"step {k}", NEUTRAL_RGB)], axis=0)
           for f, k in zip(frames[:-1], steps[:-1], strict=True)]
    last = _banner(width, f"step {steps[-1]}: {outcome}", SUCCESS_RGB if success else FAILURE_RGB)
    return out + [np.concatenate([top, frames[-1], last], axis=0)] * (1 + hold)


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 20) -> Path:
    """Encode ``frames`` (HWC uint8) as H.264 MP4, atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.mp4")
    imageio.mimwrite(tmp, frames, fps=fps, codec="libx264", quality=7, macro_block_size=8)
    os.replace(tmp, path)
    return path
