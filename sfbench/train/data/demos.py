"""Demonstrations in LIBERO's own HDF5 layout (robomimic style): write collected demos, read any.

Layout of one file per task::

    data/                       attrs: problem_info (JSON with language_instruction), env_args (JSON),
                                       total, and sfbench extras: suite, task_id, task_name,
                                       instruction, protocol, protocol_hash, render_profile,
                                       image_convention, drop_noops
      demo_<i>/                 attrs: num_samples, init_state_index, noops_dropped (sfbench collect)
        actions                 (T, 7) float64
        rewards, dones          (T,)
        obs/agentview_rgb       (T, H, W, 3) uint8
        obs/eye_in_hand_rgb     (T, H, W, 3) uint8
        obs/ee_pos (T, 3)  obs/ee_ori (T, 3, axis-angle)  obs/gripper_states (T, 2)  obs/joint_states (T, 7)
        obs/agentview_depth, obs/eye_in_hand_depth             (T, H, W) float32, metres   [sfbench extra]
        obs/<view>_intrinsics (T, 3, 3), obs/<view>_extrinsics (T, 4, 4, camera-to-world) [sfbench extra]

Suites other than LIBERO (the bimanual ones) store their proprio as ``obs/proprio`` (T, D), their
views under their own names (``obs/head_rgb``, ...) and ``image_convention`` ``upright``.

LIBERO's released files store images as robosuite renders them (upside down); sfbench stores them
after the protocol's 180-degree rotation and says so in ``image_convention``. The reader returns
every demo in the rotated convention, so released and collected demos train through one path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sfbench.core.constants import (
    ALL_VIEWS,
    OBS_AGENTVIEW,
    OBS_DEPTH,
    OBS_EXTRINSICS,
    OBS_INTRINSICS,
    OBS_JOINTS,
    OBS_PROPRIO,
    PROPRIO_DIM,
)
from sfbench.core.errors import InvalidConfig, MissingAsset

# sfbench view name -> LIBERO dataset key prefix.
DATASET_VIEWS = {OBS_AGENTVIEW: "agentview", "wrist": "eye_in_hand"}
ROTATED = "rotated_180"  # sfbench's LIBERO demos: after the protocol's rotation
UPRIGHT = "upright"  # suites whose cameras need no rotation
LIBERO_PROPRIO = ("ee_pos", "ee_ori", "gripper_states")


def dataset_key(view: str) -> str:
    """HDF5 key prefix of a view (LIBERO's names for LIBERO's views)."""
    return DATASET_VIEWS.get(view, view)


@dataclass
class Demo:
    """One demonstration, images in the rotated (upright) convention.

    Attributes:
        actions: (T, 7) float32.
        proprio: (T, 8) float32: ee_pos, ee_ori (axis-angle), gripper_states.
        images: view -> (T, H, W, 3) uint8: an array, or a lazily decoded sequence of frames
            (:mod:`sfbench.train.data.frames`) with the same ``len`` and ``[t]``.
        instruction: The task's instruction.
        task_id: Index of the task in its suite (-1 when unknown).
        camera: view -> {"depth": (T, H, W), "intrinsics": (T, 3, 3), "extrinsics": (T, 4, 4)}, when present.
        source: ``<file>:<demo name>``, for error messages.
        init_state: Index of the suite init state the demo started from (-1 when unknown).
        group: What ``data.fraction`` subsets are drawn within: empty for an HDF5 demo (its file, one task),
            ``<suite>/<task id>`` (or the instruction) for a released dataset's episode.
    """

    actions: np.ndarray
    proprio: np.ndarray
    images: dict[str, np.ndarray]
    instruction: str
    task_id: int
    camera: dict[str, dict[str, np.ndarray]]
    source: str
    init_state: int = -1
    group: str = ""


def demo_arrays(trajectory: list[tuple[dict, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack an episode's (observation, action) pairs into the dataset's per-demo arrays."""
    obs = [o for o, _ in trajectory]
    out = {"actions": np.stack([a for _, a in trajectory]).astype(np.float64)}
    proprio = np.stack([o[OBS_PROPRIO] for o in obs])
    if proprio.shape[1] == PROPRIO_DIM:  # LIBERO's 8-D proprio under LIBERO's keys
        out |= {"obs/ee_pos": proprio[:, :3], "obs/ee_ori": proprio[:, 3:6], "obs/gripper_states": proprio[:, 6:8]}
    else:
        out["obs/proprio"] = proprio
    out["obs/joint_states"] = np.stack([o[OBS_JOINTS] for o in obs])
    for view in (v for v in ALL_VIEWS if v in obs[0] or v in obs[0].get(OBS_DEPTH, {})):
        key = dataset_key(view)
        if view in obs[0]:
            out[f"obs/{key}_rgb"] = np.stack([o[view] for o in obs])
        if OBS_DEPTH in obs[0] and view in obs[0][OBS_DEPTH]:
            out[f"obs/{key}_depth"] = np.stack([o[OBS_DEPTH][view] for o in obs])
            out[f"obs/{key}_intrinsics"] = np.stack([o[OBS_INTRINSICS][view] for o in obs])
            out[f"obs/{key}_extrinsics"] = np.stack([o[OBS_EXTRINSICS][view] for o in obs])
    return out


def append_demo(path: Path, arrays: dict[str, np.ndarray], *, init_state_index: int, file_attrs: dict,
                demo_attrs: dict | None = None) -> str:
    """Append one demo to ``path`` (created with ``file_attrs`` if new); return its group name.

    ``demo_attrs`` are extra attributes of the demo's group (e.g. ``noops_dropped``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "a") as f:
        data = f.require_group("data")
        for k, v in file_attrs.items():
            data.attrs[k] = v
        name = f"demo_{len(data)}"
        group = data.create_group(name)
        t = len(arrays["actions"])
        for key, value in arrays.items():
            compress = {"compression": "gzip", "compression_opts": 4} if value.ndim >= 3 else {}
            group.create_dataset(key, data=value, **compress)
        group.create_dataset("rewards", data=np.eye(1, t, t - 1, dtype=np.float64)[0])
        group.create_dataset("dones", data=np.eye(1, t, t - 1, dtype=np.int64)[0])
        group.attrs["num_samples"] = t
        group.attrs["init_state_index"] = init_state_index
        for k, v in (demo_attrs or {}).items():
            group.attrs[k] = v
        data.attrs["total"] = int(sum(data[d].attrs["num_samples"] for d in data))
    return name


def _instruction(data: h5py.Group, path: Path) -> str:
    if "instruction" in data.attrs:
        return str(data.attrs["instruction"])
    if "problem_info" in data.attrs:
        return str(json.loads(data.attrs["problem_info"])["language_instruction"])
    raise InvalidConfig(f"{path}: no instruction (expected attribute data.problem_info or data.instruction)")


def _missing_key(group: h5py.Group) -> str | None:
    """The first key a demo lacks: actions, one view's images, and LIBERO's proprio or ``obs/proprio``."""
    if "actions" not in group or "obs" not in group:
        return "actions" if "actions" not in group else "obs"
    obs = group["obs"]
    if not any(k.endswith("_rgb") for k in obs):
        return "obs/agentview_rgb"
    if "proprio" in obs:
        return None
    return next((f"obs/{k}" for k in LIBERO_PROPRIO if k not in obs), None)


def _read_demo(group: h5py.Group, rotate: bool, instruction: str, task_id: int, source: str) -> Demo:
    missing = _missing_key(group)
    if missing:
        raise InvalidConfig(f"{source}: missing key {missing}")
    obs = group["obs"]
    keys = {dataset_key(v): v for v in ALL_VIEWS}
    views = {keys[k[:-4]]: k[:-4] for k in obs if k.endswith("_rgb") and k[:-4] in keys}
    libero = "proprio" not in obs
    fix = (lambda a: a[:, ::-1, ::-1]) if rotate else (lambda a: a)  # noqa: E731
    images = {view: np.ascontiguousarray(fix(obs[f"{key}_rgb"][()])) for view, key in views.items()}
    proprio = (np.concatenate([obs[k][()] for k in LIBERO_PROPRIO], axis=1) if libero else obs["proprio"][()])
    camera = {
        view: {"depth": obs[f"{key}_depth"][()], "intrinsics": obs[f"{key}_intrinsics"][()],
               "extrinsics": obs[f"{key}_extrinsics"][()]}
        for view, key in views.items() if f"{key}_depth" in obs
    }
    actions = group["actions"][()].astype(np.float32)
    if len(actions) == 0 or len(proprio) != len(actions):
        raise InvalidConfig(f"{source}: {len(actions)} actions for {len(proprio)} observations")
    init_state = int(group.attrs.get("init_state_index", -1))
    return Demo(actions, proprio.astype(np.float32), images, instruction, task_id, camera, source, init_state)


def load_demos(path: Path) -> list[Demo]:
    """Every demo of one LIBERO-layout HDF5 file, with clear errors naming the file and key."""
    if not path.is_file():
        raise MissingAsset(f"Dataset file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InvalidConfig(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        if "data" not in f or not len(f["data"]):
            raise InvalidConfig(f"{path}: missing key data/demo_* (no demonstrations)")
        data = f["data"]
        rotate = data.attrs.get("image_convention") not in (ROTATED, UPRIGHT)
        instruction = _instruction(data, path)
        task_id = int(data.attrs.get("task_id", -1))
        names = sorted(data, key=lambda n: int(n.split("_")[-1]) if n.split("_")[-1].isdigit() else 0)
        return [_read_demo(data[n], rotate, instruction, task_id, f"{path}:{n}") for n in names]
