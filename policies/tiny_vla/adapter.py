"""TinyVLA as an sfbench policy: inference conventions and the trainable-policy hooks.

Images: centre crop of ``center_crop_area``, resize to ``image_size``. Proprio: q01/q99 -> [-1, 1],
clipped. Actions: [-1, 1] -> q01/q99 (not clipped), gripper binarised to -1 (open) or +1 (close)
by its sign, as LIBERO's controller expects.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sfbench.core.constants import BIMANUAL_ACTION_DIM, BIMANUAL_GRIPPERS, OBS_DEPTH, OBS_INTRINSICS, OBS_PROPRIO
from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.images import center_box, crop_resize
from sfbench.core.normalize import normalize, unnormalize
from sfbench.core.task import TaskSpec
from sfbench.core.weights_id import weights_id
from sfbench.policies.base import Requirements
from sfbench.policies.tiny_vla.batch import model_batch
from sfbench.policies.tiny_vla.checkpoint import WEIGHTS_FILE, load_checkpoint, read_config, save_checkpoint
from sfbench.policies.tiny_vla.config import TinyVLAConfig
from sfbench.policies.tiny_vla.model import TinyVLA
from sfbench.policies.tiny_vla.transforms import geometry_channels, preprocess_views, tokenize
from sfbench.policies.trainable import StepOutput, TrainablePolicy, TrainingBatch


class TinyVLAPolicy(TrainablePolicy):
    """Runs a :class:`TinyVLA` checkpoint (evaluation) or a fresh one (training, :meth:`for_training`)."""

    name = "tiny_vla"
    config_class = TinyVLAConfig
    batchable = True

    def __init__(self, config: TinyVLAConfig | None = None):
        config = config or self.config_class()
        if config.checkpoint is None:
            raise MissingAsset(
                f"Policy {config.name} needs a trained checkpoint: set policy.checkpoint=<directory written by "
                "the trainer>; it never runs with random weights."
            )
        self.model, trained, self.stats, self.trainer_state = load_checkpoint(config.checkpoint)
        _check_same_architecture(config, trained)
        self.config = config
        self.model.eval()
        self.checkpoint_hash = weights_id([Path(config.checkpoint) / WEIGHTS_FILE])

    @classmethod
    def for_training(cls, config: TinyVLAConfig) -> TinyVLAPolicy:
        """A randomly initialised TinyVLA (torch's global seed decides the weights)."""
        if config.checkpoint is not None:
            raise InvalidConfig("policy.checkpoint is for evaluation; training resumes from its own run directory")
        policy = cls.__new__(cls)
        policy.config, policy.stats, policy.trainer_state = config, {}, {}
        policy.model, policy.checkpoint_hash = TinyVLA(config), "untrained"
        return policy

    @classmethod
    def check_config(cls, config: TinyVLAConfig, task: TaskSpec) -> None:
        """The checkpoint exists, is complete, matches ``config`` and acts in the suite's action dimensions."""
        if config.checkpoint is None:
            raise MissingAsset(f"Policy {config.name} needs a trained checkpoint: set policy.checkpoint=<directory "
                               "written by the trainer>; it never runs with random weights.")
        trained = read_config(Path(config.checkpoint))
        _check_same_architecture(config, trained)
        if trained.action_dim != task.action_dim:
            raise InvalidConfig(f"Checkpoint '{config.checkpoint}' acts in {trained.action_dim} dimensions; "
                                f"the suite's actions have {task.action_dim}")

    @classmethod
    def content_id(cls, config: TinyVLAConfig) -> str | None:
        """First 12 hex digits of the weights' tensor hash (what :attr:`checkpoint_id` reports)."""
        return weights_id([Path(config.checkpoint) / WEIGHTS_FILE])[:12] if config.checkpoint else None

    @classmethod
    def reads_depth(cls, config: TinyVLAConfig) -> bool:
        """When geometry channels are an input (``tiny_vla_depth``)."""
        return config.input_geometry is not None

    @property
    def action_dim(self) -> int:
        """Action dimensions of the checkpoint (must equal the suite's)."""
        return self.config.action_dim

    @property
    def requirements(self) -> Requirements:
        """The configured views, proprio, and depth + camera matrices when geometry is an input."""
        return Requirements(
            views=self.config.views, depth=self.config.input_geometry is not None
        )

    @property
    def checkpoint_id(self) -> str:
        """First 12 hex digits of the weights' tensor hash (:func:`~sfbench.core.weights_id.weights_id`)."""
        return self.checkpoint_hash[:12]

    def reset(self, task: TaskSpec, *, seed: int | None = None) -> None:
        """Stateless: the instruction is read from each observation."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """One action chunk (chunk_size, action_dim) float32 for ``obs``."""
        return self.act_batch([obs])[0]

    def act_batch(self, obs_batch: list[dict[str, Any]]) -> list[np.ndarray]:
        """Action chunks for several observations in one forward pass."""
        with torch.no_grad():
            normed = self.model(self.make_batch(obs_batch))["actions"].double().numpy()
        actions = unnormalize(normed, self.stats["action"])
        if self.config.action_dim == BIMANUAL_ACTION_DIM:  # joint targets + gripper openings in [0, 1]
            actions[..., BIMANUAL_GRIPPERS] = np.clip(actions[..., BIMANUAL_GRIPPERS], 0.0, 1.0)
        else:  # LIBERO: the gripper command is -1 (open) or +1 (close)
            actions[..., -1] = np.where(actions[..., -1] > 0.0, 1.0, -1.0)
        return list(actions.astype(np.float32))

    def make_batch(self, obs_batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Model inputs (see :meth:`TinyVLA.forward`) for raw env observations."""
        cfg = self.config
        proprio = np.stack([np.asarray(obs[OBS_PROPRIO], dtype=np.float64) for obs in obs_batch])
        batch = {
            "images": torch.stack(
                [
                    preprocess_views([obs[v] for v in cfg.views], cfg.image_size, cfg.center_crop_area)
                    for obs in obs_batch
                ]
            ),
            "proprio": torch.from_numpy(normalize(proprio, self.stats["proprio"])).float(),
            "tokens": tokenize([obs["instruction"] for obs in obs_batch], cfg.max_text_tokens),
        }
        if cfg.input_geometry is not None:
            batch["geometry"] = torch.stack([self.geometry_input(obs) for obs in obs_batch])
        return batch

    def geometry_input(self, obs: dict[str, Any]) -> torch.Tensor:
        """Geometry channels (V, C_g, image_size, image_size), cropped and resized like the RGB views."""
        cfg = self.config
        out = []
        for view in cfg.views:
            full = geometry_channels(obs[OBS_DEPTH][view], obs[OBS_INTRINSICS][view], cfg.input_geometry,
                                     cfg.max_depth_m)
            out.append(crop_resize(full, center_box(full.shape[-2], full.shape[-1], cfg.center_crop_area),
                                   cfg.image_size))
        return torch.stack(out)

    # ------------------------------------------------------------------ trainable-policy hooks
    @property
    def views(self) -> tuple[str, ...]:
        """The configured views, in token order."""
        return self.config.views

    @property
    def chunk_size(self) -> int:
        """Actions per forward pass."""
        return self.config.chunk_size

    @property
    def num_layers(self) -> int:
        """Trunk layers."""
        return self.model.num_layers

    @property
    def hidden_dim(self) -> int:
        """Trunk width."""
        return self.model.hidden_dim

    @property
    def crop_area(self) -> float:
        """Centre-crop area at inference."""
        return self.config.center_crop_area

    def training_batch(self, items: list[dict[str, Any]], generator: torch.Generator, augment: Any) -> TrainingBatch:
        """OFT-style random crops and colour jitter when ``augment`` is given, else centre crops."""
        tensors, boxes = model_batch(items, self.config, augment, generator)
        return TrainingBatch(tensors, boxes)

    def training_step(self, batch: TrainingBatch, *, hidden_layer: int | None = None) -> StepOutput:
        """L1 between the predicted and the demonstrated (normalised) action chunks."""
        out = self.model(batch.tensors, hidden_layer=hidden_layer)
        loss = F.l1_loss(out["actions"], batch.tensors["actions"])
        return StepOutput(loss, {"action_loss": loss.item()}, out.get("visual_hidden"), out.get("grid"))

    @torch.no_grad()
    def visual_hidden(self, obs_batch: list[dict[str, Any]], layer: int) -> torch.Tensor:
        """Hidden states (B, V, D, Hp, Wp) of the visual tokens after ``layer``."""
        hidden = self.model(self.make_batch(obs_batch), hidden_layer=layer)["visual_hidden"]
        v, hp, wp = self.model.visual_grid
        return hidden.reshape(len(hidden), v, hp, wp, -1).permute(0, 1, 4, 2, 3)

    def reinitialized(self, seed: int) -> TinyVLAPolicy:
        """Same config and statistics, fresh weights drawn from ``seed``."""
        torch.manual_seed(seed)
        fresh = type(self).__new__(type(self))
        fresh.__dict__ = dict(self.__dict__)
        fresh.model, fresh.checkpoint_hash = TinyVLA(self.config).eval(), "random_init"
        return fresh

    def save(self, path: Path, *, step: int, extra: dict[str, Any] | None = None) -> Path:
        """``model.safetensors``, ``config.json``, ``normalization.json``, ``trainer_state.json``."""
        return save_checkpoint(path, self.model, self.config, self.stats, step, extra)

    def load_weights(self, path: Path) -> dict[str, Any]:
        """Load the weights of a checkpoint of the same architecture; returns its trainer state."""
        model, trained, _, state = load_checkpoint(path)
        _check_same_architecture(dataclasses.replace(self.config, checkpoint=str(path)), trained)
        self.model.load_state_dict(model.state_dict())
        return state




def _check_same_architecture(wanted: TinyVLAConfig, trained: TinyVLAConfig) -> None:
    """Raise if ``wanted`` and the checkpoint's config disagree on anything but runtime fields."""
    diffs = [
        f"{f.name}={getattr(wanted, f.name)!r} (checkpoint: {getattr(trained, f.name)!r})"
        for f in dataclasses.fields(wanted)
        if f.name not in wanted.runtime_fields and getattr(wanted, f.name) != getattr(trained, f.name)
    ]
    if wanted.name != trained.name:
        raise InvalidConfig(f"Checkpoint '{wanted.checkpoint}' was trained as {trained.name!r}, not {wanted.name!r}; "
                            f"evaluate it with policy={trained.name}")
    if diffs:
        raise InvalidConfig(
            f"Policy config disagrees with checkpoint '{wanted.checkpoint}': {', '.join(diffs)}. "
            "Set these fields to the checkpoint's values (its config.json)."
        )
