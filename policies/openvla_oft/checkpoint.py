"""The one owner of OpenVLA-OFT's checkpoint directory layout (read and write), as released.

```
<dir>/config.json                      OpenVLAConfig: towers (timm ids), text_config (diff over Llama defaults)
      model.safetensors.index.json     weight_map: parameter -> shard; any number of shards
      model-0000k-of-0000N.safetensors vision_backbone.*, projector.*, language_model.*
      action_head--<step>_checkpoint.pt, proprio_projector--<step>_checkpoint.pt   (``module.`` stripped)
      dataset_statistics.json          {<unnorm key>: {action: {q01, q99, mask, ...}, proprio: {q01, q99}}}
      preprocessor_config.json         tvf_normalize_params: the (bf16-rounded) per-tower mean / std used
      tokenizer.json (+ tokenizer.model, tokenizer_config.json, ...)
```
Remote code files in the directory (``modeling_prismatic.py``, ...) are never imported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig

from sfbench.core.errors import DamagedCheckpoint, InvalidConfig, MissingAsset
from sfbench.policies.openvla_oft.constants import (
    AUX_PREFIXES,
    CONFIG_FILE,
    INDEX_FILE,
    LLAMA_DEFAULTS,
    PREPROCESSOR_FILE,
    STATS_FILE,
    TOKENIZER_FILE,
)
from sfbench.policies.openvla_oft.files import check_file, check_safetensors, load_torch, read_json, read_shard
from sfbench.policies.openvla_oft.model import OpenVLAOFT
from sfbench.policies.openvla_oft.vit import TowerSpec, tower_spec

# sfbench's tiny checkpoints give their tower shapes here (the real ones name timm ids only).
TOWER_SPECS_KEY = "sfbench_tower_specs"


@dataclass(frozen=True)
class OFTCheckpoint:
    """What a checkpoint directory holds, read without loading any weight."""

    path: Path
    dino: TowerSpec
    siglip: TowerSpec
    llama: LlamaConfig
    shards: tuple[Path, ...]
    aux: dict[str, Path]  # prefix -> its .pt file; {} for a base VLA without OFT's heads (e.g. openvla-7b)
    stats: dict[str, Any]
    image_stats: tuple[tuple[list[float], list[float]], ...]  # (mean, std) per tower
    config: dict[str, Any]  # config.json

    @property
    def weight_files(self) -> tuple[Path, ...]:
        """Every file whose bytes are weights (what the content hash covers)."""
        return (*self.shards, *self.aux.values())


def _need(path: Path) -> Path:
    if not path.exists():
        raise MissingAsset(f"Not an OpenVLA-OFT checkpoint: missing {path.name} in {path.parent}")
    return check_file(path)


def aux_file(path: Path, prefix: str) -> Path:
    """The one ``<prefix>*checkpoint.pt`` file (OFT's ``find_checkpoint_file``)."""
    found = sorted(p for p in path.glob(f"{prefix}*") if "checkpoint" in p.name)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise MissingAsset(f"Not an OpenVLA-OFT checkpoint: {what} {prefix}*checkpoint.pt file in {path}")
    return found[0]


def llama_config(text_config: dict[str, Any]) -> LlamaConfig:
    """``text_config`` over the transformers-4.40.1 Llama defaults (not today's defaults)."""
    fields = {**LLAMA_DEFAULTS, **{k: v for k, v in text_config.items() if k != "model_type"}}
    fields.pop("torch_dtype", None)
    return LlamaConfig(**fields)


def read_checkpoint(path: str | Path, *, heads: bool = True, aux: tuple[str, ...] = AUX_PREFIXES) -> OFTCheckpoint:
    """Parse a checkpoint directory; a missing file is named in one clear error.

    ``aux`` names the prefixes of the auxiliary ``.pt`` files the model needs. With
    ``heads=False`` (a training base such as ``openvla-7b``) any of them and the dataset
    statistics may be absent; the model keeps fresh weights for what is missing.
    """
    path = Path(path)
    if not path.is_dir():
        raise MissingAsset(f"Checkpoint directory not found: {path}")
    config = read_json(_need(path / CONFIG_FILE))
    ids, specs = config.get("timm_model_ids", []), config.get(TOWER_SPECS_KEY) or [None, None]
    if len(ids) != 2 or not config.get("use_fused_vision_backbone", False):
        raise InvalidConfig(f"{path / CONFIG_FILE}: expected a fused two-tower backbone, got timm_model_ids={ids}")
    shards = _shards(path)
    pre = read_json(_need(path / PREPROCESSOR_FILE))
    image_stats = tuple((p["mean"], p["std"]) for p in pre.get("tvf_normalize_params") or
                        [{"mean": m, "std": s} for m, s in zip(pre["means"], pre["stds"], strict=True)])
    _need(path / TOKENIZER_FILE)
    stats = read_json(_need(path / STATS_FILE)) if heads or (path / STATS_FILE).exists() else {}
    parts = {prefix: aux_file(path, prefix) for prefix in aux if heads or any(path.glob(f"{prefix}*"))}
    for file in parts.values():
        load_torch(file, mmap=True)  # a damaged head fails now, before a run creates anything
    return OFTCheckpoint(path, tower_spec(ids[0], specs[0]), tower_spec(ids[1], specs[1]),
                         llama_config(config.get("text_config", {})), shards, parts, stats, image_stats, config)


def _shards(path: Path) -> tuple[Path, ...]:
    """The shards the index names, each checked to be a whole safetensors file."""
    index = read_json(_need(path / INDEX_FILE))
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise DamagedCheckpoint(f"Damaged checkpoint: {path / INDEX_FILE} has no weight_map")
    shards = tuple(_need(path / name) for name in sorted(set(weight_map.values())))
    for shard in shards:
        check_safetensors(shard)
    return shards


def _strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_part(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load ``state`` into ``module`` after checking every key and shape against the config."""
    own = module.state_dict()
    for key, value in state.items():
        if key not in own:
            raise InvalidConfig(f"{source.name}: unexpected tensor {key} for this config.json")
        if tuple(value.shape) != tuple(own[key].shape):
            raise InvalidConfig(f"{source.name}: {key} has shape {tuple(value.shape)}, config.json implies "
                                f"{tuple(own[key].shape)}")
    module.load_state_dict(state, strict=False)


def load_model(ckpt: OFTCheckpoint, dtype: torch.dtype = torch.float32, device: str = "cpu",
               build: Callable[[OFTCheckpoint], OpenVLAOFT] | None = None) -> OpenVLAOFT:
    """Build the network of ``ckpt`` and load every shard and auxiliary file (no remote code).

    ``build`` makes another member of the family (e.g. with depth projectors) from ``ckpt``.
    """
    model = build(ckpt) if build else OpenVLAOFT(ckpt.dino, ckpt.siglip, ckpt.llama)
    seen: set[str] = set()
    for shard in ckpt.shards:
        state = read_shard(shard)
        _load_part(model.vla, state, shard)
        seen |= set(state)
    missing = sorted(set(model.vla.state_dict()) - seen)
    if missing:
        raise InvalidConfig(f"Checkpoint {ckpt.path} lacks {len(missing)} tensors of its config, e.g. {missing[0]}")
    for prefix, part in model.aux_parts.items():
        file = ckpt.aux.get(prefix)
        if file is None:
            continue  # a base VLA: the heads keep their fresh initialisation
        state = _strip_module(load_torch(file))
        _load_part(part, state, file)
        absent = sorted(set(part.state_dict()) - set(state))
        if absent:
            raise InvalidConfig(f"{file.name} lacks {absent[0]}")
    return model.to(device=device, dtype=dtype).eval()


def write_checkpoint(path: Path, model: OpenVLAOFT, config: dict[str, Any], *, stats: dict[str, Any],
                     preprocessor: dict[str, Any], tokenizer_json: str, suffix: str,
                     vla_state: dict[str, torch.Tensor] | None = None, max_shard_bytes: int = 2 << 30) -> Path:
    """Write ``model`` in the released layout (bf16 shards, aux ``.pt`` files as they are).

    ``config`` is the ``config.json`` content; ``suffix`` names the aux files
    (``<step>_checkpoint.pt`` or ``latest_checkpoint.pt``); ``vla_state`` replaces
    ``model.vla.state_dict()`` (e.g. LoRA merged into the base weights).
    """
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    vla_state = model.vla.state_dict() if vla_state is None else vla_state
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in vla_state.items()}
    groups, size = [[]], 0
    for key, value in state.items():
        nbytes = value.numel() * value.element_size()
        if groups[-1] and size + nbytes > max_shard_bytes:
            groups, size = [*groups, []], 0
        groups[-1].append(key)
        size += nbytes
    weight_map = {}
    for i, keys in enumerate(groups, 1):
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        save_file({k: state[k] for k in keys}, path / name, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(keys, name)
    total = sum(v.numel() * v.element_size() for v in state.values())
    (path / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    for prefix, part in model.aux_parts.items():
        torch.save(part.state_dict(), path / f"{prefix}{suffix}")
    (path / STATS_FILE).write_text(json.dumps(stats, indent=2))
    (path / PREPROCESSOR_FILE).write_text(json.dumps(preprocessor, indent=2))
    (path / TOKENIZER_FILE).write_text(tokenizer_json)
    return path


def tower_specs_json(dino: TowerSpec, siglip: TowerSpec) -> list[dict[str, Any]]:
    """The ``sfbench_tower_specs`` entry of a tiny checkpoint's config.json."""
    return [asdict(dino), asdict(siglip)]
