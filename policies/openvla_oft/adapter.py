"""``policy=openvla_oft``: a released OpenVLA-OFT (or Spatial Forcing) checkpoint, evaluated as OFT does."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sfbench.core.constants import OBS_AGENTVIEW, OBS_PROPRIO, OBS_WRIST
from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.task import TaskSpec
from sfbench.core.weights_id import weights_id
from sfbench.policies.base import Requirements
from sfbench.policies.openvla_oft.checkpoint import OFTCheckpoint, load_model, read_checkpoint
from sfbench.policies.openvla_oft.constants import ACTION_DIM, AUX_PREFIXES, NUM_ACTIONS_CHUNK
from sfbench.policies.openvla_oft.lora_eval import adapter_weights, attach_adapter, unmerged_checkpoint
from sfbench.policies.openvla_oft.model import OpenVLAOFT
from sfbench.policies.openvla_oft.processing import (
    IMAGE_CHAINS,
    env_actions,
    image_pixels,
    load_tokenizer,
    normalize_proprio,
    prompt_ids,
    unnorm_key,
)
from sfbench.policies.openvla_oft.training import (
    add_lora,
    checkpoint_stats,
    load_training_checkpoint,
    save_training_checkpoint,
    train_everything,
    training_tensors,
)
from sfbench.policies.openvla_oft.vit import IMAGE
from sfbench.policies.trainable import StepOutput, TrainablePolicy, TrainingBatch

VIEWS = (OBS_AGENTVIEW, OBS_WRIST)  # primary, then wrist: OFT's num_images_in_input = 2


@dataclass
class OpenVLAOFTConfig:
    """``configs/policy/openvla_oft.yaml``.

    Args:
        name: Policy name recorded in every episode.
        checkpoint: Local checkpoint directory in OFT's released layout (required).
        unnorm_key: Key of ``dataset_statistics.json``; None = the suite, or ``<suite>_no_noops``.
        center_crop: OFT's 90%-area centre crop (its checkpoints were trained with random crops).
        image_chain: How a view becomes the processor's image. ``oft_tf``: OFT's TensorFlow chain
            (JPEG round trip, Lanczos-3 to 224, sub-pixel centre crop, truncation), ported to numpy
            and equal to TensorFlow's uint8 output on the golden fixture; training uses the same chain.
            Part of the run identity, so scores of another chain never share a leaderboard cell.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:<i>``; bf16 on CUDA, float32 on CPU.
        lora_adapter: A run's LoRA adapter directory (OFT's or sfbench's ``<run>/lora_adapter``) to
            evaluate unmerged, in float32, on top of ``checkpoint`` (then the base VLA, e.g.
            openvla-7b); the heads and statistics come from the adapter's parent directory.
        base: Training only: the VLA to fine-tune (``openvla-7b``, an OFT checkpoint directory, or an
            sfbench training checkpoint, e.g. a tiny base made by full fine-tuning); its heads are
            loaded when it has them.
        lora_rank: LoRA rank on all linear layers (OFT / SF: 32), or 0 for full fine-tuning (every weight
            on the forward path trains; frozen: only the LM head and the towers' unused last block, norm and MAP
            head). Checkpoints keep OFT's layout, with ``full_weights/`` (fp32) in place of ``lora_adapter/``.
        lora_alpha, lora_dropout: The rest of the LoRA recipe (OFT / SF: 16, 0.0).
    """

    name: str = "openvla_oft"
    checkpoint: str | None = None
    unnorm_key: str | None = None
    center_crop: bool = True
    image_chain: str = "oft_tf"
    device: str = "auto"
    lora_adapter: str | None = None
    base: str | None = None
    lora_rank: int = 32
    lora_alpha: int = 16
    lora_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise InvalidConfig(f"policy.lora_rank={self.lora_rank} must be >= 0 (0 = full fine-tuning)")
        if self.image_chain not in IMAGE_CHAINS:
            raise InvalidConfig(f"policy.image_chain={self.image_chain!r} is not a known image chain; "
                                f"choices: {', '.join(IMAGE_CHAINS)}")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if torch.device(name).type == "cuda" and not torch.cuda.is_available():
        raise InvalidConfig(f"policy.device={name}, but this machine has no CUDA device; use cpu or auto")
    return torch.device(name)




class OpenVLAOFTPolicy(TrainablePolicy):
    """OpenVLA-OFT's ``predict_action`` with the L1 head, proprio and two views; 8-action chunks."""

    name = "openvla_oft"
    config_class = OpenVLAOFTConfig
    batchable = True
    aux_prefixes: tuple[str, ...] = AUX_PREFIXES  # the checkpoint's auxiliary .pt files
    extra_inputs: tuple[str, ...] = ()  # model inputs beyond pixels, prompt and proprio

    def __init__(self, config: OpenVLAOFTConfig | None = None):
        self.config = config or self.config_class()
        self.ckpt = self._checkpoint(self.config)
        self.device = _device(self.config.device)
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.model = load_model(self.ckpt, dtype=dtype, device=str(self.device), build=self._build)
        if self.config.lora_adapter:
            attach_adapter(self.model, Path(self.config.lora_adapter), self.config.lora_alpha)
        self.tokenizer = load_tokenizer(self.ckpt.path / "tokenizer.json")
        self.stats: dict[str, Any] = {}
        self.checkpoint_hash = self.content_id(self.config)

    @classmethod
    def check_config(cls, config: OpenVLAOFTConfig, task: TaskSpec) -> None:
        """The directory is an OFT checkpoint with statistics for the suite; LIBERO's 7-D actions."""
        _device(config.device)
        ckpt = cls._checkpoint(config)
        unnorm_key(ckpt.stats, config.unnorm_key, task.suite)
        if task.action_dim != ACTION_DIM:
            raise InvalidConfig(f"OpenVLA-OFT acts in {ACTION_DIM} dimensions; suite {task.suite} has "
                                f"{task.action_dim}")

    @classmethod
    def content_id(cls, config: OpenVLAOFTConfig) -> str | None:
        """Hash of the weights' tensors, shards and aux heads (:func:`~sfbench.core.weights_id.weights_id`)."""
        adapter = (adapter_weights(Path(config.lora_adapter)),) if config.lora_adapter else ()
        return weights_id((*cls._checkpoint(config).weight_files, *adapter))[:12]

    @classmethod
    def _checkpoint(cls, config: OpenVLAOFTConfig) -> OFTCheckpoint:
        if config.checkpoint is None:
            raise MissingAsset(f"Policy {config.name} needs policy.checkpoint=<OpenVLA-OFT checkpoint directory>")
        if config.lora_adapter:
            return unmerged_checkpoint(config.checkpoint, Path(config.lora_adapter), cls.aux_prefixes)
        return read_checkpoint(config.checkpoint, aux=cls.aux_prefixes)

    def _build(self, ckpt: OFTCheckpoint) -> OpenVLAOFT:
        """The network of ``ckpt``, freshly initialised (a family member may add modules)."""
        return OpenVLAOFT(ckpt.dino, ckpt.siglip, ckpt.llama)

    def _extra(self, obs_batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The :attr:`extra_inputs` of raw observations, as model inputs."""
        return {}

    @property
    def checkpoint_id(self) -> str:
        """Content hash of the weights (see :meth:`content_id`), computed once when loaded."""
        return self.checkpoint_hash

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
        proprio = np.stack([normalize_proprio(np.asarray(obs[OBS_PROPRIO], np.float64), self.stats["proprio"])
                            for obs in obs_batch])
        return self._run(obs_batch, ids, torch.from_numpy(proprio))["actions"].float().cpu().numpy()

    def _run(self, obs_batch: list[dict[str, Any]], ids: list[list[int]], proprio: torch.Tensor) -> dict:
        """The network on raw observations (both views preprocessed) with prompts of one length."""
        dtype = next(self.model.parameters()).dtype
        pixels = image_pixels([obs[v] for obs in obs_batch for v in VIEWS], self.ckpt.image_stats,
                              self.config.center_crop).reshape(len(obs_batch), -1, IMAGE, IMAGE)  # view after view
        extra = {k: v.to(self.device) for k, v in self._extra(obs_batch).items()}
        return self.model(pixels.to(self.device, dtype), torch.tensor(ids, device=self.device),
                          proprio.to(self.device, dtype), **extra)


    # ------------------------------------------------------------------ trainable-policy hooks
    @classmethod
    def check_training(cls, config: OpenVLAOFTConfig) -> OFTCheckpoint:
        """A training run needs ``policy.base``: a VLA directory in the released layout (returned, parsed)."""
        if config.base is None:
            raise MissingAsset(f"sfbench train policy={config.name} needs policy.base=<openvla-7b or OpenVLA-OFT "
                               "checkpoint directory> (a tiny one: python -m sfbench.policies.openvla_oft.tiny <dir>)")
        if config.checkpoint is not None or config.lora_adapter is not None:
            raise InvalidConfig("policy.checkpoint and policy.lora_adapter are for evaluation; training starts from "
                                "policy.base")
        return read_checkpoint(config.base, heads=False, aux=cls.aux_prefixes)

    @classmethod
    def for_training(cls, config: OpenVLAOFTConfig) -> OpenVLAOFTPolicy:
        """The base VLA with LoRA adapters (or all trainable: ``lora_rank=0``) and (fresh or the base's) heads.

        float32, on CPU until moved.
        """
        policy = cls.__new__(cls)
        policy.config, policy.ckpt = config, cls.check_training(config)
        policy.device, policy.stats, policy.checkpoint_hash = torch.device("cpu"), {}, "untrained"
        policy.model = load_model(policy.ckpt, build=policy._build)
        if config.lora_rank:
            add_lora(policy.model, config.lora_rank, config.lora_alpha, config.lora_dropout)
        else:
            train_everything(policy.model)
        policy.tokenizer = load_tokenizer(policy.ckpt.path / "tokenizer.json")
        return policy

    @property
    def views(self) -> tuple[str, ...]:
        """Primary, then wrist."""
        return VIEWS

    @property
    def chunk_size(self) -> int:
        """OFT's 8 actions per query."""
        return NUM_ACTIONS_CHUNK

    @property
    def num_layers(self) -> int:
        """Llama layers (``hidden_states[1..L]``)."""
        return self.ckpt.llama.num_hidden_layers

    @property
    def hidden_dim(self) -> int:
        """Llama width."""
        return self.ckpt.llama.hidden_size

    @property
    def crop_area(self) -> float:
        """OFT's 90% centre crop."""
        return 0.9

    def _grid(self) -> tuple[int, int, int]:
        side = int(self.model.num_patches ** 0.5)
        return len(VIEWS), side, side

    def training_batch(self, items: list[dict[str, Any]], generator: torch.Generator, augment: Any) -> TrainingBatch:
        """Random 90% crops (+ colour jitter) when ``augment`` is given, else centre crops."""
        tensors, boxes = training_tensors(items, self.ckpt, self.tokenizer, self.stats, augment, generator)
        return TrainingBatch(tensors, boxes)

    def training_step(self, batch: TrainingBatch, *, hidden_layer: int | None = None) -> StepOutput:
        """L1 on the normalised chunk; with ``hidden_layer``, that layer's 512 visual-token hidden states."""
        t = batch.tensors
        out = self.model(t["pixels"], t["input_ids"], t["proprio"], t["lengths"],
                         **{k: t[k] for k in self.extra_inputs})
        loss = F.l1_loss(out["actions"], t["actions"])
        visual = None
        if hidden_layer is not None:
            visual = out["hidden_states"][hidden_layer][:, 1 : 1 + len(VIEWS) * self.model.num_patches]
        return StepOutput(loss, {"action_loss": loss.item()}, visual, self._grid())

    @torch.no_grad()
    def visual_hidden(self, obs_batch: list[dict[str, Any]], layer: int) -> torch.Tensor:
        """Visual-token hidden states (B, 2, D, 16, 16) after ``layer`` (one forward pass per prompt length)."""
        ids = [prompt_ids(self.tokenizer, obs["instruction"]) for obs in obs_batch]
        v, hp, wp = self._grid()
        out: list[torch.Tensor | None] = [None] * len(obs_batch)
        for length in sorted({len(i) for i in ids}):
            group = [k for k, i in enumerate(ids) if len(i) == length]
            # a probe reads the model without the run's statistics: the proprio token is the normalised 0
            hidden = self._run([obs_batch[k] for k in group], [ids[k] for k in group],
                               torch.zeros(len(group), 8))["hidden_states"][layer]
            for k, h in zip(group, hidden, strict=True):
                out[k] = h[1 : 1 + v * hp * wp].float()
        visual = torch.stack(out)  # type: ignore[arg-type]
        return visual.reshape(len(visual), v, hp, wp, -1).permute(0, 1, 4, 2, 3)

    def reinitialized(self, seed: int) -> OpenVLAOFTPolicy:
        """Same shapes, every weight freshly drawn from ``seed`` (the probe's untrained control)."""
        torch.manual_seed(seed)
        fresh = copy.copy(self)
        fresh.model = self._build(self.ckpt).eval()
        fresh.checkpoint_hash = "random_init"
        return fresh

    def save(self, path: Path, *, step: int, extra: dict[str, Any] | None = None) -> Path:
        """A complete OFT checkpoint (LoRA merged) + ``lora_adapter/`` or ``full_weights/`` + ``trainer_state.json``."""
        key = self.config.unnorm_key or "sfbench_demos"
        return save_training_checkpoint(path, self.model, self.ckpt, self._config_json(),
                                        checkpoint_stats(self.stats, key), {"step": step, **(extra or {})})

    def _config_json(self) -> dict[str, Any]:
        """What a checkpoint's ``config.json`` gets beside the base's keys: the policy that loads it."""
        return {"family": self.name, "name": self.config.name}

    def load_weights(self, path: Path) -> dict[str, Any]:
        """Resume: the LoRA (or all fp32) tensors and heads of a training checkpoint; returns its trainer state."""
        return load_training_checkpoint(path, self.model)
