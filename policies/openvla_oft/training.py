"""Fine-tuning OpenVLA-OFT as OFT and Spatial Forcing do, or in full.

LoRA on every linear layer of the VLA, the action head and proprio projector trained in full, L1
on the normalised 8-action chunk. With ``policy.lora_rank=0`` every weight on the forward path
trains instead (full fine-tuning: how a base is made before OFT's LoRA fine-tuning).

A training checkpoint is a complete OFT checkpoint (LoRA merged into bf16 shards, aux ``.pt``,
``dataset_statistics.json``), so ``policy=openvla_oft`` and OFT's own eval code load it, plus
``trainer_state.json`` and, for an exact resume, the fp32 trained tensors: ``lora_adapter/``
(LoRA) or ``full_weights/`` (every tensor of the shards, full fine-tuning).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file
from torch import nn

from sfbench.core.augment import color_jitter
from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.normalize import unnormalize
from sfbench.policies.openvla_oft.checkpoint import OFTCheckpoint, write_checkpoint
from sfbench.policies.openvla_oft.constants import ACTION_DIM, CONFIG_FILE, PAD_ID, PREPROCESSOR_FILE, TOKENIZER_FILE
from sfbench.policies.openvla_oft.model import OpenVLAOFT
from sfbench.policies.openvla_oft.processing import crop_float, crop_pixel_box, prompt_ids, resized_view, tower_channels
from sfbench.policies.openvla_oft.tf_image import float_to_uint8

LORA_DIR = "lora_adapter"
LORA_FILE = "adapter_model.safetensors"
FULL_DIR = "full_weights"  # full fine-tuning: model.vla's fp32 tensors (the shards hold them in bf16)
FULL_FILE = "model.safetensors"
TRAINER_STATE = "trainer_state.json"
ADAPTER = "default"


def add_lora(model: OpenVLAOFT, rank: int, alpha: int, dropout: float) -> list[str]:
    """LoRA (gaussian init) on every ``nn.Linear`` of ``model.vla`` but the LM head; freeze the rest of it."""
    targets = [name for name, m in model.vla.named_modules()
               if isinstance(m, nn.Linear) and not name.endswith("lm_head")]
    if not targets:
        raise InvalidConfig("LoRA needs linear layers, and this model has none")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        init_lora_weights="gaussian")
    inject_adapter_in_model(config, model.vla)
    for name, p in model.vla.named_parameters():
        p.requires_grad_("lora_" in name)
    return targets


def off_path_parameters(model: OpenVLAOFT) -> list[str]:
    """Names of ``model``'s parameters that OFT's forward pass never reads (no gradient reaches them).

    Each tower's last block, final norm and SigLIP's MAP head (OFT reads the second-to-last block's
    patch tokens) and the LM head (the L1 head reads hidden states, not logits). They stay in the
    checkpoint as the base has them.
    """
    towers = {"vision_backbone.featurizer": model.vla.vision_backbone.featurizer,
              "vision_backbone.fused_featurizer": model.vla.vision_backbone.fused_featurizer}
    prefixes = ["language_model.lm_head."]
    for name, tower in towers.items():
        prefixes += [f"{name}.blocks.{tower.spec.depth - 1}.", f"{name}.norm.", f"{name}.attn_pool."]
    return [f"vla.{n}" for n, _ in model.vla.named_parameters() if n.startswith(tuple(prefixes))]


def train_everything(model: OpenVLAOFT) -> list[str]:
    """Full fine-tuning: every parameter on the forward path trains; returns the frozen off-path ones."""
    frozen = set(off_path_parameters(model))
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    return sorted(frozen)


def is_lora(model: OpenVLAOFT) -> bool:
    """Whether ``model.vla`` carries LoRA adapters (else it is trained in full)."""
    return any(isinstance(m, LoraLayer) for m in model.vla.modules())


def full_state(model: OpenVLAOFT) -> dict[str, torch.Tensor]:
    """``model.vla``'s tensors (fp32, as trained) under the released key names."""
    return {k: v.detach().float().cpu().contiguous() for k, v in model.vla.state_dict().items()}


def lora_state(model: OpenVLAOFT) -> dict[str, torch.Tensor]:
    """The LoRA tensors of ``model.vla`` (fp32, as trained)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.vla.state_dict().items() if "lora_" in k}


def merged_state(model: OpenVLAOFT) -> dict[str, torch.Tensor]:
    """``model.vla``'s weights under the released key names, each LoRA delta merged into its layer."""
    state = {}
    for key, value in model.vla.state_dict().items():
        if "lora_" not in key:
            state[key.replace(".base_layer.", ".")] = value
    for name, module in model.vla.named_modules():
        if isinstance(module, LoraLayer):
            state[f"{name}.weight"] = module.base_layer.weight + module.get_delta_weight(ADAPTER)
    return state


def _view_pixels(view: np.ndarray, jpeg: bool, offset: float | None) -> torch.Tensor:
    """One raw view -> its (3, 224, 224) float32 crop in [0, 1], as OFT's RLDS pipeline makes it."""
    return crop_float(resized_view(view, jpeg=jpeg), offset)


def training_pixels(items: list[dict[str, Any]], augment: Any, gen: torch.Generator,
                    ) -> tuple[torch.Tensor, list[list[tuple[float, float, float, float]]]]:
    """Dataset items -> views (B, V, 3, 224, 224) in [0, 1] through OFT's training chain, and each crop box.

    Per view: a JPEG round trip for frames stored raw (none where ``item["images_jpeg"]``, a bool or
    one per view, says the frame was decoded from JPEG, as OFT's RLDS frames were), Lanczos-3 to 224, then the 90%-area
    crop at a random offset (``augment``) or centred, colour jitter (``augment``), and truncation to
    uint8 as dlimp's ``augment_image`` ends. Boxes are sub-pixel, in pixels of the raw frame.
    """
    views, boxes = [], []
    for item in items:
        _, h, w, _ = item["images"].shape
        offsets = [float(torch.rand((), generator=gen)) if augment is not None else None for _ in item["images"]]
        jpeg = item.get("images_jpeg", False)
        jpeg = [jpeg] * len(offsets) if isinstance(jpeg, bool) else list(jpeg)
        views.append(torch.stack([_view_pixels(v, not j, o)
                                  for v, j, o in zip(item["images"], jpeg, offsets, strict=True)]))
        boxes.append([crop_pixel_box(o, h, w) for o in offsets])
    x = torch.stack(views)
    if augment is not None:
        x = color_jitter(x.flatten(0, 1), augment, gen).reshape(x.shape)
    return float_to_uint8(x).float() / 255.0, boxes


def training_tensors(items: list[dict[str, Any]], ckpt: OFTCheckpoint, tokenizer: Any, stats: dict[str, Any],
                     augment: Any, gen: torch.Generator,
                     ) -> tuple[dict[str, torch.Tensor], list[list[tuple[float, float, float, float]]]]:
    """Dataset items -> pixels (B, 6V, 224, 224), right-padded prompt ids, proprio, OFT-convention targets.

    Images go through :func:`training_pixels` (OFT's training chain); the gripper target goes from
    LIBERO's -1 open / +1 close to OFT's [0, 1] with 1 = open, left unnormalised.
    """
    views, boxes = training_pixels(items, augment, gen)
    pixels = tower_channels(views, ckpt.image_stats).flatten(1, 2)  # (B, V * 6, 224, 224), view after view
    ids = [prompt_ids(tokenizer, it["instruction"]) for it in items]
    width = max(len(i) for i in ids)
    actions = np.stack([it["actions"] for it in items]).astype(np.float32)
    gripper = unnormalize(actions[..., -1:].astype(np.float64), {k: stats["action"][k][-1:] for k in ("q01", "q99")})
    actions[..., -1:] = (1.0 - gripper) / 2.0
    tensors = {
        "pixels": pixels,
        "input_ids": torch.tensor([i + [PAD_ID] * (width - len(i)) for i in ids]),
        "lengths": torch.tensor([len(i) for i in ids]),
        "proprio": torch.from_numpy(np.stack([it["proprio"] for it in items])),
        "actions": torch.from_numpy(actions),
    }
    return tensors, boxes


def checkpoint_stats(stats: dict[str, Any], key: str) -> dict[str, Any]:
    """``dataset_statistics.json`` of a run: the demos' q01/q99; the gripper (OFT: [0, 1]) is not unnormalised."""
    action = {**stats["action"], "mask": [True] * (ACTION_DIM - 1) + [False]}
    return {key: {"action": action, "proprio": dict(stats["proprio"])}}


def save_training_checkpoint(path: Path, model: OpenVLAOFT, base: OFTCheckpoint, policy: dict[str, str],
                             stats: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write an OFT-layout checkpoint (atomically: a temporary directory renamed into place)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    config = {**json.loads((base.path / CONFIG_FILE).read_text()), **policy}
    lora = is_lora(model)
    with torch.no_grad():
        write_checkpoint(tmp, model, config, stats=stats,
                         preprocessor=json.loads((base.path / PREPROCESSOR_FILE).read_text()),
                         tokenizer_json=(base.path / TOKENIZER_FILE).read_text(),
                         suffix=f"{state['step']}_checkpoint.pt", vla_state=merged_state(model) if lora else None)
    folder, file = (LORA_DIR, LORA_FILE) if lora else (FULL_DIR, FULL_FILE)
    (tmp / folder).mkdir()
    save_file(lora_state(model) if lora else full_state(model), tmp / folder / file)
    (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def load_training_checkpoint(path: Path, model: OpenVLAOFT) -> dict[str, Any]:
    """Load the trained fp32 tensors and the heads of a training checkpoint into ``model``; return its trainer state.

    The checkpoint must have been trained the way ``model`` is set up (LoRA or full).
    """
    lora = is_lora(model)
    folder, file = (LORA_DIR, LORA_FILE) if lora else (FULL_DIR, FULL_FILE)
    weights = path / folder / file
    if not weights.is_file():
        raise MissingAsset(f"Not an sfbench OFT training checkpoint of a {'LoRA' if lora else 'full'} fine-tune "
                           f"(no {folder}/{file}): {path}")
    saved = load_file(weights)
    missing = set(lora_state(model) if lora else model.vla.state_dict()) - set(saved)
    if missing:
        raise InvalidConfig(f"{weights}: tensors do not match this config (e.g. missing {sorted(missing)[0]})")
    model.vla.load_state_dict(saved, strict=False)
    for prefix, part in model.aux_parts.items():
        (file,) = path.glob(f"{prefix}*checkpoint.pt")
        part.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return json.loads((path / TRAINER_STATE).read_text())
