"""``policy=openvla_oft``: a released OpenVLA-OFT (or Spatial Forcing) checkpoint, evaluated as OFT does."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sfbench.core.constants import OBS_AGENTVIEW, OBS_PROPRIO, OBS_WRIST
from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.io import file_sha256
from sfbench.core.task import TaskSpec
from sfbench.policies.base import Policy, Requirements
from sfbench.policies.openvla_oft.checkpoint import OFTCheckpoint, load_model, read_checkpoint
from sfbench.policies.openvla_oft.constants import ACTION_DIM
from sfbench.policies.openvla_oft.processing import (
    env_actions,
    image_pixels,
    load_tokenizer,
    normalize_proprio,
    prompt_ids,
    unnorm_key,
)

VIEWS = (OBS_AGENTVIEW, OBS_WRIST)  # primary, then wrist: OFT's num_images_in_input = 2
_DIGESTS: dict[tuple, str] = {}


@dataclass
class OpenVLAOFTConfig:
    """``configs/policy/openvla_oft.yaml``.

    Args:
        name: Policy name recorded in every episode.
        checkpoint: Local checkpoint directory in OFT's released layout (required).
        unnorm_key: Key of ``dataset_statistics.json``; None = the suite, or ``<suite>_no_noops``.
        center_crop: OFT's 90%-area centre crop (its checkpoints were trained with random crops).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:<i>``; bf16 on CUDA, float32 on CPU.
    """

    name: str = "openvla_oft"
    checkpoint: str | None = None
    unnorm_key: str | None = None
    center_crop: bool = True
    device: str = "auto"


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if torch.device(name).type == "cuda" and not torch.cuda.is_available():
        raise InvalidConfig(f"policy.device={name}, but this machine has no CUDA device; use cpu or auto")
    return torch.device(name)


def _checkpoint(config: OpenVLAOFTConfig) -> OFTCheckpoint:
    if config.checkpoint is None:
        raise MissingAsset(f"Policy {config.name} needs policy.checkpoint=<OpenVLA-OFT checkpoint directory>")
    return read_checkpoint(config.checkpoint)


class OpenVLAOFTPolicy(Policy):
    """OpenVLA-OFT's ``predict_action`` with the L1 head, proprio and two views; 8-action chunks."""

    name = "openvla_oft"
    config_class = OpenVLAOFTConfig
    batchable = True

    def __init__(self, config: OpenVLAOFTConfig | None = None):
        self.config = config or OpenVLAOFTConfig()
        self.ckpt = _checkpoint(self.config)
        self.device = _device(self.config.device)
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.model = load_model(self.ckpt, dtype=dtype, device=str(self.device))
        self.tokenizer = load_tokenizer(self.ckpt.path / "tokenizer.json")
        self.stats: dict[str, Any] = {}

    @classmethod
    def check_config(cls, config: OpenVLAOFTConfig, task: TaskSpec) -> None:
        """The directory is an OFT checkpoint with statistics for the suite; LIBERO's 7-D actions."""
        _device(config.device)
        ckpt = _checkpoint(config)
        unnorm_key(ckpt.stats, config.unnorm_key, task.suite)
        if task.action_dim != ACTION_DIM:
            raise InvalidConfig(f"OpenVLA-OFT acts in {ACTION_DIM} dimensions; suite {task.suite} has "
                                f"{task.action_dim}")

    @classmethod
    def content_id(cls, config: OpenVLAOFTConfig) -> str | None:
        """sha256 over the weight files (shards and aux heads), cached by (path, size, mtime)."""
        digest = hashlib.sha256()
        for path in _checkpoint(config).weight_files:
            stat = path.stat()
            key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
            _DIGESTS[key] = _DIGESTS.get(key) or file_sha256(path)
            digest.update(f"{path.name}:{_DIGESTS[key]}".encode())
        return digest.hexdigest()[:12]

    @property
    def checkpoint_id(self) -> str:
        """Content hash of the weights (see :meth:`content_id`)."""
        return self.content_id(self.config) or "none"

    @property
    def action_dim(self) -> int:
        """LIBERO's 7-D delta end-effector + gripper."""
        return ACTION_DIM

    @property
    def requirements(self) -> Requirements:
        """Both RGB views (and the proprio every observation has)."""
        return Requirements(views=VIEWS)

    def reset(self, task: TaskSpec, *, seed: int | None = None) -> None:
        """Select the suite's statistics; the model keeps no state between queries."""
        self.stats = self.ckpt.stats[unnorm_key(self.ckpt.stats, self.config.unnorm_key, task.suite)]

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """One (8, 7) action chunk."""
        return self.act_batch([obs])[0]

    @torch.no_grad()
    def act_batch(self, obs_batch: list[dict[str, Any]]) -> list[np.ndarray]:
        """One forward pass per group of equally long prompts."""
        ids = [prompt_ids(self.tokenizer, obs["instruction"]) for obs in obs_batch]
        out: list[np.ndarray | None] = [None] * len(obs_batch)
        for length in sorted({len(i) for i in ids}):
            group = [k for k, i in enumerate(ids) if len(i) == length]
            normed = self._forward([obs_batch[k] for k in group], [ids[k] for k in group])
            for k, chunk in zip(group, normed, strict=True):
                out[k] = env_actions(chunk.astype(np.float64), self.stats["action"]).astype(np.float32)
        return out  # type: ignore[return-value]

    def _forward(self, obs_batch: list[dict[str, Any]], ids: list[list[int]]) -> np.ndarray:
        dtype = next(self.model.parameters()).dtype
        pixels = torch.stack([torch.cat([image_pixels(obs[v], self.ckpt.image_stats, self.config.center_crop)
                                         for v in VIEWS]) for obs in obs_batch])
        proprio = np.stack([normalize_proprio(np.asarray(obs[OBS_PROPRIO], np.float64), self.stats["proprio"])
                            for obs in obs_batch])
        result = self.model(pixels.to(self.device, dtype), torch.tensor(ids, device=self.device),
                            torch.from_numpy(proprio).to(self.device, dtype))
        return result["actions"].float().cpu().numpy()

