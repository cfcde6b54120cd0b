"""``policy.lora_adapter``: a base VLA plus an unmerged fp32 LoRA adapter, against the merged bf16 checkpoint.

A trained-like adapter (random LoRA B, so the update is not zero) is saved the way training saves
it; the merged checkpoint rounds ``W + BA`` to bf16, the unmerged path keeps ``BA`` in float32.
Measured on the tiny model (float32 CPU, rank 4, LoRA B ~ N(0, 0.02)): the unmerged normalised
action chunks equal the training model's own (fp32 base + fp32 LoRA) exactly, while the merged-bf16
ones differ from them by a relative L2 of 2.57e-3 over 8 observations (max abs 3.1e-3); with
LoRA B ~ N(0, 0.002), 6.29e-3. The test keeps the figure within a band.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from peft.tuners.lora import LoraLayer

from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.task import TaskSpec
from sfbench.policies.openvla_oft import OpenVLAOFTConfig, OpenVLAOFTPolicy
from sfbench.policies.openvla_oft.lora_eval import ADAPTER_WEIGHTS
from sfbench.policies.openvla_oft.processing import prompt_ids
from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
from sfbench.policies.openvla_oft.training import LORA_DIR

TASK = TaskSpec(suite="libero_spatial", task_id=0, name="t", instruction="pick up the black bowl", action_dim=7)
KEY = "libero_spatial_no_noops"


def _obs(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"agentview": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8),
             "wrist": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8),
             "proprio": rng.normal(size=8) * 0.1, "instruction": TASK.instruction} for _ in range(n)]


def _normed(policy: OpenVLAOFTPolicy, obs: list[dict]) -> np.ndarray:
    with torch.no_grad():
        return policy._forward(obs, [prompt_ids(policy.tokenizer, o["instruction"]) for o in obs])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(base dir, saved training checkpoint dir, the training model's own normalised actions)."""
    root = tmp_path_factory.mktemp("lora")
    base = write_tiny_checkpoint(root / "base")
    trained = OpenVLAOFTPolicy.for_training(OpenVLAOFTConfig(base=str(base), lora_rank=4, unnorm_key=KEY))
    torch.manual_seed(1)
    for module in trained.model.vla.modules():
        if isinstance(module, LoraLayer):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
    trained.model.eval()
    trained.reset(TASK)
    saved = trained.save(root / "step_1", step=1)
    return base, saved, _normed(trained, _obs(4))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_unmerged_adapter_reproduces_the_trained_model_and_merged_bf16_does_not(run):
    base, saved, reference = run
    obs = _obs(4)
    unmerged = OpenVLAOFTPolicy(OpenVLAOFTConfig(checkpoint=str(base), lora_adapter=str(saved / LORA_DIR),
                                                 unnorm_key=KEY, device="cpu"))
    merged = OpenVLAOFTPolicy(OpenVLAOFTConfig(checkpoint=str(saved), unnorm_key=KEY, device="cpu"))
    for policy in (unmerged, merged):
        policy.reset(TASK)
    lora = [m for m in unmerged.model.vla.modules() if isinstance(m, LoraLayer)]
    assert lora and not any(m.merged for m in lora), "the adapter stays unmerged"
    assert all(m.lora_A["default"].weight.dtype == torch.float32 for m in lora)
    d_unmerged, d_merged = _rel(_normed(unmerged, obs), reference), _rel(_normed(merged, obs), reference)
    assert d_unmerged < 1e-5, f"unmerged vs the trained model: {d_unmerged:.2e}"
    assert 1e-3 < d_merged < 1e-2, f"merged bf16 vs the trained model: {d_merged:.2e}"


def test_the_adapter_is_part_of_the_weights_identity(run):
    base, saved, _ = run
    plain = OpenVLAOFTPolicy.content_id(OpenVLAOFTConfig(checkpoint=str(base)))
    adapted = OpenVLAOFTPolicy.content_id(OpenVLAOFTConfig(checkpoint=str(base), lora_adapter=str(saved / LORA_DIR)))
    assert plain != adapted


def test_a_peft_layout_adapter_loads_with_its_own_alpha(run, tmp_path):
    """OFT's ``save_pretrained`` layout: base_model.model.<module>.lora_A.weight + adapter_config.json."""
    from safetensors.torch import load_file, save_file

    base, saved, reference = run
    run_dir = tmp_path / "oft_run"
    run_dir.mkdir()
    for f in saved.iterdir():
        if f.is_file():
            (run_dir / f.name).write_bytes(f.read_bytes())
    state = load_file(saved / LORA_DIR / ADAPTER_WEIGHTS)
    (run_dir / LORA_DIR).mkdir()
    save_file({f"base_model.model.{k.replace('.default.', '.')}": v for k, v in state.items()},
              run_dir / LORA_DIR / ADAPTER_WEIGHTS)
    (run_dir / LORA_DIR / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 16}))
    policy = OpenVLAOFTPolicy(OpenVLAOFTConfig(checkpoint=str(base), lora_adapter=str(run_dir / LORA_DIR),
                                               unnorm_key=KEY, device="cpu", lora_alpha=999))
    policy.reset(TASK)
    assert _rel(_normed(policy, _obs(4)), reference) < 1e-5


def test_a_missing_adapter_or_run_files_are_one_clear_error(run, tmp_path):
    base, saved, _ = run
    with pytest.raises(MissingAsset, match="no such directory"):
        OpenVLAOFTPolicy.check_config(OpenVLAOFTConfig(checkpoint=str(base), lora_adapter=str(tmp_path / "x")), TASK)
    lonely = tmp_path / "lonely" / LORA_DIR
    lonely.mkdir(parents=True)
    (lonely / ADAPTER_WEIGHTS).write_bytes((saved / LORA_DIR / ADAPTER_WEIGHTS).read_bytes())
    with pytest.raises(MissingAsset, match="action_head"):
        OpenVLAOFTPolicy.check_config(OpenVLAOFTConfig(checkpoint=str(base), lora_adapter=str(lonely)), TASK)
    with pytest.raises(InvalidConfig, match="policy.lora_adapter are for evaluation"):
        OpenVLAOFTPolicy.check_training(OpenVLAOFTConfig(base=str(base), lora_adapter=str(lonely)))
