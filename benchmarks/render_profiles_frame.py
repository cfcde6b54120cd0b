"""Save one PNG comparing the render profiles on the same simulator state.

Left: ``faithful`` (``libero_oft``, LIBERO's renderer); right: ``fast`` (``libero_oft_fast``),
upscaled to the same size with nearest-neighbour so its pixels stay visible. Each half shows the
agent view and the wrist view as the policy receives them (rotated 180 degrees). The physics of
both profiles is bit-identical, so the same init state gives the same scene.

    python benchmarks/render_profiles_frame.py [--out results/figures/render_profiles.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sfbench.config.tree import load_protocol, load_suite
from sfbench.core.constants import VIEWS
from sfbench.envs import make_env

PROFILES = ("libero_oft", "libero_oft_fast")
LABEL_PX = 18


def render_views(suite: str, task_id: int, init_state: int, protocol_name: str, size: int) -> np.ndarray:
    """Both views after reset, side by side and resized to ``size`` px each, ``(size, 2 size, 3)``."""
    protocol = load_protocol(protocol_name)
    env = make_env(load_suite(suite), task_id, protocol, views=VIEWS)
    obs, _ = env.reset(options={"init_state_index": init_state})
    env.close()
    views = [Image.fromarray(obs[v]).resize((size, size), Image.NEAREST) for v in VIEWS]
    return np.concatenate([np.asarray(v) for v in views], axis=1)


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` with a white strip of text above it."""
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + LABEL_PX), "white")
    canvas.paste(Image.fromarray(image), (0, LABEL_PX))
    ImageDraw.Draw(canvas).text((4, 3), text, fill="black")
    return np.asarray(canvas)


def main() -> None:
    """Render each profile and write the side-by-side PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--init-state", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/figures/render_profiles.png"))
    args = parser.parse_args()
    size = max(load_protocol(p).render_size for p in PROFILES)
    halves = []
    for name in PROFILES:
        protocol = load_protocol(name)
        text = f"{protocol.render_profile} ({name}, {protocol.render_size} px): {' | '.join(VIEWS)}"
        halves.append(labelled(render_views(args.suite, args.task, args.init_state, name, size), text))
    gap = np.full((halves[0].shape[0], 8, 3), 255, dtype=np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([halves[0], gap, halves[1]], axis=1)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
