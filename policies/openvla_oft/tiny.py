"""Tiny random OpenVLA-OFT checkpoints in the exact released layout, for tests and CPU runs.

Real token ids and vocabulary size (32064), a synthetic character-level ``tokenizer.json`` (the
Llama-2 tokenizer is gated and on no package index), tiny towers and a tiny Llama. The towers'
shapes are written under ``sfbench_tower_specs`` in ``config.json`` (real checkpoints name timm ids).

    python -m sfbench.policies.openvla_oft.tiny <dir> [--seed 0] [--reference]
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, processors

from sfbench.policies.openvla_oft.checkpoint import TOWER_SPECS_KEY, llama_config, tower_specs_json, write_checkpoint
from sfbench.policies.openvla_oft.constants import BOS_ID, PAD_ID, SPACE_ID, STOP_ID, VOCAB_SIZE
from sfbench.policies.openvla_oft.model import OpenVLAOFT
from sfbench.policies.openvla_oft.vit import TOWERS, TowerSpec

TINY_DINO = TowerSpec(32, 3, 2, 64, registers=4, class_token=True, layer_scale=True)
TINY_SIGLIP = TowerSpec(48, 3, 2, 96, attn_pool=True)
REFERENCE_TOWER = "vit_small_patch14_reg4_dinov2.lvd142m"
TINY_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4}
SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
# LIBERO-like q01/q99 of the demos' actions (6 delta end-effector + gripper in [0, 1]) and proprio.
ACTION_STATS = {"q01": [-0.75, -0.75, -0.9, -0.1, -0.15, -0.2, 0.0], "q99": [0.9, 0.85, 0.9, 0.1, 0.15, 0.2, 1.0],
                "mask": [True] * 6 + [False]}
PROPRIO_STATS = {"q01": [-0.3, -0.3, 0.0, 2.0, -1.5, -0.5, 0.0, -0.04],
                 "q99": [0.2, 0.3, 1.3, 3.3, 1.2, 0.6, 0.04, 0.0]}


def synthetic_tokenizer() -> Tokenizer:
    """One token per character, with Llama's ids.

    ``<unk>`` 0, ``<s>`` 1 (prepended), ``</s>`` 2, byte fallbacks 3-258, "▁" 29871, ``<PAD>`` 32000.
    """
    vocab = {"<unk>": 0, "<s>": BOS_ID, "</s>": STOP_ID} | {f"<0x{b:02X}>": 3 + b for b in range(256)}
    chars = [c for c in string.ascii_letters + string.digits + string.punctuation if c not in vocab]
    vocab |= {c: 259 + i for i, c in enumerate(chars)}
    vocab |= {f"<filler_{i}>": i for i in range(259 + len(chars), VOCAB_SIZE) if i not in (SPACE_ID, PAD_ID)}
    vocab |= {"▁": SPACE_ID, "<PAD>": PAD_ID}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS_ID)])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return tokenizer


def openvla_config(text: dict, dino_id: str, siglip_id: str, specs: list | None) -> dict:
    """``config.json`` of an OpenVLA checkpoint (the keys ``OpenVLAConfig`` serialises)."""
    config = {
        "architectures": ["OpenVLAForActionPrediction"], "model_type": "openvla", "arch_specifier":
        "no-align+fused-gelu-mlp", "hf_llm_id": "meta-llama/Llama-2-7b-hf", "image_resize_strategy": "resize-naive",
        "image_sizes": [224, 224], "llm_backbone_id": "llama2-7b-pure", "llm_max_length": 2048, "n_action_bins": 256,
        "output_projector_states": False, "pad_to_multiple_of": 64, "pad_token_id": PAD_ID,
        "text_config": {"model_type": "llama", "pad_token_id": PAD_ID, "torch_dtype": "bfloat16",
                        "vocab_size": VOCAB_SIZE, **text},
        "timm_model_ids": [dino_id, siglip_id], "timm_override_act_layers": [None, None],
        "use_fused_vision_backbone": True, "vision_backbone_id": "dinosiglip-vit-so-224px", "torch_dtype": "bfloat16",
    }
    return config | ({TOWER_SPECS_KEY: specs} if specs else {})


def preprocessor_config() -> dict:
    """``preprocessor_config.json`` with the bf16-rounded ImageNet statistics OFT's processor saved."""
    dino = {"mean": [0.484375, 0.455078125, 0.40625], "std": [0.228515625, 0.2236328125, 0.224609375]}
    return {"image_processor_type": "PrismaticImageProcessor", "image_resize_strategy": "resize-naive",
            "use_fused_vision_backbone": True, "input_sizes": [[3, 224, 224]] * 2, "interpolations": ["bicubic"] * 2,
            "means": [[0.485, 0.456, 0.406], [0.5] * 3], "stds": [[0.229, 0.224, 0.225], [0.5] * 3],
            "tvf_normalize_params": [dino, {"mean": [0.5] * 3, "std": [0.5] * 3}], "tvf_do_letterbox": False}


def write_tiny_checkpoint(path: Path, seed: int = 0, *, step: int = 0, max_shard_bytes: int = 4 << 20,
                          reference: bool = False) -> Path:
    """A random tiny OFT checkpoint at ``path`` (several shards), loadable by ``policy=openvla_oft``.

    ``reference=True`` uses two real timm towers (``vit_small_patch14_reg4_dinov2``, 384-d x 12)
    and no ``sfbench_tower_specs``, so that OFT's own code can load the directory too.
    """
    torch.manual_seed(seed)
    ids = [REFERENCE_TOWER] * 2 if reference else ["sfbench-tiny-dinov2-reg4", "sfbench-tiny-siglip"]
    dino, siglip = (TOWERS[REFERENCE_TOWER],) * 2 if reference else (TINY_DINO, TINY_SIGLIP)
    model = OpenVLAOFT(dino, siglip, llama_config({"vocab_size": VOCAB_SIZE, "pad_token_id": PAD_ID, **TINY_TEXT}))
    stats = {f"{s}_no_noops": {"action": ACTION_STATS, "proprio": PROPRIO_STATS, "num_transitions": 0,
                               "num_trajectories": 0} for s in SUITES}
    config = openvla_config(TINY_TEXT, *ids, None if reference else tower_specs_json(dino, siglip))
    return write_checkpoint(path, model, config, stats=stats, preprocessor=preprocessor_config(),
                            tokenizer_json=synthetic_tokenizer().to_str(), suffix=f"{step}_checkpoint.pt",
                            max_shard_bytes=max_shard_bytes)


def main() -> None:
    """``python -m sfbench.policies.openvla_oft.tiny <dir>``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", action="store_true", help="real timm tower ids (loadable by OFT's code)")
    args = parser.parse_args()
    path = write_tiny_checkpoint(args.dir, args.seed, reference=args.reference)
    sys.stdout.write(json.dumps({"checkpoint": str(path), "files": sorted(p.name for p in path.iterdir())}) + "\n")


if __name__ == "__main__":
    main()
