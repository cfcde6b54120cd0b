"""Evaluating a base VLA plus an unmerged fp32 LoRA adapter (``policy.lora_adapter=<dir>``), through peft.

A merged checkpoint stores ``W + BA`` rounded to bf16, which loses most of a small update ``BA``;
Spatial Forcing's maintainers advise evaluating the base with the adapter kept apart when merged
checkpoints underperform. Here the base's weights load as usual (bf16 on CUDA) and each adapted
linear layer gets a peft LoRA branch in float32 that is never merged.

The adapter directory is OFT's ``<run>/lora_adapter`` (peft's ``save_pretrained``: ``adapter_config.json``
+ ``adapter_model.safetensors``, keys ``base_model.model.<module>.lora_A.weight``) or sfbench's
(``adapter_model.safetensors`` with the adapter name in its keys). The action head, proprio
projector and ``dataset_statistics.json`` of the run are read from the adapter directory's parent,
where both OFT and sfbench write them; the base needs none of them (e.g. ``openvla-7b``).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from safetensors import safe_open

from sfbench.core.errors import DamagedCheckpoint, InvalidConfig, MissingAsset
from sfbench.policies.openvla_oft.checkpoint import OFTCheckpoint, aux_file, read_checkpoint
from sfbench.policies.openvla_oft.constants import STATS_FILE
from sfbench.policies.openvla_oft.files import check_safetensors, read_json, read_shard
from sfbench.policies.openvla_oft.model import OpenVLAOFT

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER = "default"
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<part>lora_[AB])(?:\.(?P<name>[^.]+))?\.weight$")


def adapter_weights(adapter: Path) -> Path:
    """The adapter's safetensors file, checked to be whole."""
    if not adapter.is_dir():
        raise MissingAsset(f"policy.lora_adapter={adapter}: no such directory")
    weights = adapter / ADAPTER_WEIGHTS
    if not weights.exists():
        raise MissingAsset(f"policy.lora_adapter={adapter}: missing {ADAPTER_WEIGHTS}")
    check_safetensors(weights)
    return weights


def _lora_keys(weights: Path) -> dict[str, tuple[str, str]]:
    """Adapter key -> (module name, lora_A | lora_B); any other key is an error naming the file."""
    with safe_open(weights, framework="pt") as f:
        keys = list(f.keys())  # noqa: SIM118 (safe_open has no __iter__)
    parsed = {}
    for key in keys:
        match = _KEY.match(key)
        if match is None:
            raise DamagedCheckpoint(f"{weights}: {key} is not a LoRA tensor name (<module>.lora_A|lora_B.weight)")
        parsed[key] = (match["module"], match["part"])
    if not parsed:
        raise DamagedCheckpoint(f"{weights} holds no LoRA tensors")
    return parsed


def unmerged_checkpoint(base: str, adapter: Path, aux: tuple[str, ...]) -> OFTCheckpoint:
    """The base checkpoint with the run's heads and statistics (from the adapter's parent directory)."""
    adapter_weights(adapter)
    ckpt = read_checkpoint(base, heads=False, aux=aux)
    run = adapter.resolve().parent
    parts = {prefix: aux_file(run, prefix) for prefix in aux}
    stats_file = run / STATS_FILE
    if not stats_file.exists():
        raise MissingAsset(f"policy.lora_adapter={adapter}: the run directory {run} has no {STATS_FILE}")
    return dataclasses.replace(ckpt, aux=parts, stats=read_json(stats_file))


def attach_adapter(model: OpenVLAOFT, adapter: Path, lora_alpha: int) -> list[str]:
    """Add the adapter's LoRA branches to ``model.vla`` in float32, unmerged; returns the adapted modules.

    Rank and targets come from the tensors; alpha from ``adapter_config.json`` when there is one,
    else ``lora_alpha`` (the policy's recipe value).
    """
    weights = adapter_weights(adapter)
    keys = _lora_keys(weights)
    config_file = adapter / ADAPTER_CONFIG
    alpha = read_json(config_file).get("lora_alpha", lora_alpha) if config_file.exists() else lora_alpha
    state = read_shard(weights)
    modules = dict(model.vla.named_modules())
    targets = sorted({m for m, _ in keys.values()})
    missing = [m for m in targets if not isinstance(modules.get(m), torch.nn.Linear)]
    if missing:
        raise InvalidConfig(f"{weights}: {missing[0]} is not a linear layer of this checkpoint's network")
    ranks = {state[k].shape[0] for k, (_, part) in keys.items() if part == "lora_A"}
    if len(ranks) != 1:
        raise InvalidConfig(f"{weights}: LoRA ranks differ across layers ({sorted(ranks)}); one rank is supported")
    config = LoraConfig(r=ranks.pop(), lora_alpha=alpha, lora_dropout=0.0, target_modules=targets)
    inject_adapter_in_model(config, model.vla)
    layers = dict(model.vla.named_modules())
    for key, (module, part) in keys.items():
        layer = layers[module]
        assert isinstance(layer, LoraLayer)
        target = getattr(layer, part)[ADAPTER]
        if tuple(target.weight.shape) != tuple(state[key].shape):
            raise InvalidConfig(f"{weights}: {key} has shape {tuple(state[key].shape)}, the layer needs "
                                f"{tuple(target.weight.shape)}")
        target.to(torch.float32)
        with torch.no_grad():
            target.weight.copy_(state[key].to(device=target.weight.device, dtype=torch.float32))
    model.vla.requires_grad_(False)
    return targets
