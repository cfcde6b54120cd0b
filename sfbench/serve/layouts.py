"""Observation layouts on the wire: what a client sends for one query, and what the server reads back.

- ``openpi_libero``: openpi's LIBERO example. ``observation/image`` and ``observation/wrist_image``
  (uint8, resized with zero padding to 224 x 224, PIL bilinear, as ``openpi_client.image_tools``),
  ``observation/state`` (the 8-D proprio) and ``prompt``; the answer's ``actions`` is (horizon, 7).
- ``sfbench``: sfbench's own observation dict as the env returns it (views, proprio, depth,
  privileged state, ``instruction``), plus, on the first query of each episode, ``sfbench/episode``
  (the task and seed), which lets a server run stateful policies such as the scripted expert.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from PIL import Image

from sfbench.core.constants import OBS_AGENTVIEW, OBS_PROPRIO, OBS_WRIST
from sfbench.core.task import TaskSpec

LAYOUTS = ("openpi_libero", "sfbench")
EPISODE_KEY = "sfbench/episode"
OPENPI_IMAGE = "observation/image"
OPENPI_WRIST = "observation/wrist_image"
OPENPI_STATE = "observation/state"
OPENPI_PROMPT = "prompt"
OPENPI_SIZE = 224


class LayoutError(ValueError):
    """A request that fits neither layout."""


def resize_with_pad(image: np.ndarray, size: int = OPENPI_SIZE) -> np.ndarray:
    """Resize keeping the aspect ratio, then zero-pad to ``size`` x ``size`` (openpi's ``resize_with_pad``)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    scale = size / max(h, w)
    nh, nw = round(h * scale), round(w * scale)
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((size, size, image.shape[2]), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out


def episode_info(task: TaskSpec, seed: int | None) -> dict[str, Any]:
    """The ``sfbench/episode`` entry for ``task`` (msgpack-able: no ``extra``)."""
    fields = asdict(task)
    fields.pop("extra")
    return {"task": fields, "seed": seed}


def task_of(info: dict[str, Any]) -> tuple[TaskSpec, int | None]:
    """The task and seed of an ``sfbench/episode`` entry."""
    t = dict(info["task"])
    t["goal"] = tuple(tuple(g) for g in t.get("goal", ()))
    t["objects"], t["fixtures"] = tuple(t.get("objects", ())), tuple(t.get("fixtures", ()))
    return TaskSpec(**t), info.get("seed")


def request(obs: dict[str, Any], layout: str, episode: dict[str, Any] | None) -> dict[str, Any]:
    """The message a client sends for ``obs`` (``episode``: the first query of an episode, else None)."""
    if layout == "openpi_libero":
        return {OPENPI_IMAGE: resize_with_pad(obs[OBS_AGENTVIEW]), OPENPI_WRIST: resize_with_pad(obs[OBS_WRIST]),
                OPENPI_STATE: np.asarray(obs[OBS_PROPRIO], np.float32), OPENPI_PROMPT: obs["instruction"]}
    return {**obs, **({EPISODE_KEY: episode} if episode else {})}


def observation(message: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The sfbench observation and episode entry (or None) of a request in either layout."""
    if not isinstance(message, dict):
        raise LayoutError(f"a request is a map of observations, got {type(message).__name__}")
    if OPENPI_IMAGE in message:
        missing = [k for k in (OPENPI_WRIST, OPENPI_STATE, OPENPI_PROMPT) if k not in message]
        if missing:
            raise LayoutError(f"openpi LIBERO request without {missing}")
        return {OBS_AGENTVIEW: np.array(message[OPENPI_IMAGE]), OBS_WRIST: np.array(message[OPENPI_WRIST]),
                OBS_PROPRIO: np.array(message[OPENPI_STATE]), "instruction": message[OPENPI_PROMPT]}, None
    obs = {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in message.items()}  # writable, as an env's
    return obs, obs.pop(EPISODE_KEY, None)
