"""Full fine-tuning of the OFT family (``policy.lora_rank=0``): every weight trains, OFT's layout, exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sfbench.core.errors import SfbenchError
from sfbench.core.task import TaskSpec
from sfbench.policies.openvla_3d import OpenVLA3DConfig, OpenVLA3DPolicy
from sfbench.policies.openvla_oft import OpenVLAOFTConfig, OpenVLAOFTPolicy
from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
from sfbench.policies.openvla_oft.training import FULL_DIR, FULL_FILE, LORA_DIR, off_path_parameters
from sfbench.train.rundir import latest_checkpoint
from sfbench.train.trainer import Trainer
from tests.conftest import interrupt_training
from tests.policies.test_openvla_oft_training import job

TASK = TaskSpec(suite="libero_spatial", task_id=0, name="t", instruction="do it", action_dim=7)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("oft_full") / "base", seed=2)


def full_job(tmp_path, base, name, policy="openvla_oft", **train):
    return job(tmp_path, base, name, policy, lora={"lora_rank": 0}, **{"steps": 2, "save_every": 1, "num_threads": 1}
               | train)


@pytest.mark.parametrize("policy", ["openvla_sf", "openvla_3d"])
def test_one_full_step_changes_every_trainable_weight_including_the_base(tmp_path, base, policy):
    trainer = Trainer(full_job(tmp_path, base, policy, policy=policy))
    params = dict(trainer.policy.model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    frozen = set(params) - trainable
    assert frozen == set(off_path_parameters(trainer.policy.model)), "only weights OFT never reads stay frozen"
    assert any(n.startswith("vla.language_model.model.layers.0.self_attn.q_proj") for n in trainable)
    assert any(n.startswith("vla.vision_backbone.featurizer.patch_embed") for n in trainable)
    assert not any("lora_" in n for n in params), "no LoRA adapters in full fine-tuning"
    before = {n: p.detach().clone() for n, p in params.items()}
    trainer.step(0)
    unchanged = sorted(n for n in trainable if torch.equal(before[n], params[n].detach()))
    assert not unchanged, f"every trainable weight moves in one step; these did not: {unchanged[:5]}"
    assert all(torch.equal(before[n], params[n].detach()) for n in frozen)


def test_full_checkpoints_keep_oft_layout_resume_exactly_and_evaluate(tmp_path, base, monkeypatch):
    straight = full_job(tmp_path, base, "straight", steps=3)
    final = straight()
    names = {p.name for p in final.iterdir()}
    assert {"config.json", "model.safetensors.index.json", "dataset_statistics.json", "preprocessor_config.json",
            "tokenizer.json", FULL_DIR, "trainer_state.json", "training_state.pt"} <= names
    assert any(n.startswith("action_head--3_checkpoint") for n in names)
    assert any(n.startswith("proprio_projector--3_checkpoint") for n in names)
    assert LORA_DIR not in names
    shards = {}
    for shard in final.glob("model-*.safetensors"):
        shards |= load_file(shard)
    full = load_file(final / FULL_DIR / FULL_FILE)
    assert set(shards) == set(full) and all(v.dtype == torch.bfloat16 for v in shards.values())
    assert all(torch.equal(shards[k], full[k].to(torch.bfloat16)) for k in full), "the shards are the trained weights"

    interrupted = full_job(tmp_path, base, "interrupted", steps=3)
    interrupt_training(monkeypatch, interrupted, 2)
    assert latest_checkpoint(interrupted.run_dir).name == "step_000002"
    resumed = load_file(interrupted() / FULL_DIR / FULL_FILE)
    assert all(torch.equal(full[k], resumed[k]) for k in full), "resume continues the same run bit for bit"

    policy = OpenVLAOFTPolicy(OpenVLAOFTConfig(checkpoint=str(final), device="cpu"))
    OpenVLAOFTPolicy.check_config(policy.config, TASK)
    policy.reset(TASK)
    obs = {"agentview": np.zeros((128, 128, 3), np.uint8), "wrist": np.zeros((128, 128, 3), np.uint8),
           "proprio": np.zeros(8), "instruction": "do it"}
    chunk = policy.act(obs)
    assert chunk.shape == (8, 7) and np.isfinite(chunk).all()


def test_a_full_checkpoint_is_a_base_for_lora_and_3d_fine_tuning(tmp_path, base):
    made = full_job(tmp_path, base, "made", steps=1)()
    lora = OpenVLAOFTPolicy.for_training(OpenVLAOFTConfig(base=str(made), lora_rank=4))
    head = torch.load(next(made.glob("action_head--*")), weights_only=True)
    assert all(torch.equal(head[k], v) for k, v in lora.model.action_head.state_dict().items()), "base's head loaded"
    depth = OpenVLA3DPolicy.for_training(OpenVLA3DConfig(base=str(made), lora_rank=4))
    assert len(depth.model.depth_projectors) == 2, "a base without depth projectors gets fresh ones"
    assert json.loads((made / "config.json").read_text())["name"] == "openvla_oft"


def test_a_negative_lora_rank_is_refused():
    with pytest.raises(SfbenchError, match=r"policy.lora_rank=-1 must be >= 0 \(0 = full fine-tuning\)"):
        OpenVLAOFTConfig(lora_rank=-1)


def test_train_help_for_an_oft_policy_documents_full_fine_tuning(capsys):
    from sfbench.cli import main

    assert main(["train", "policy=openvla_oft", "--help"]) == 0
    out = capsys.readouterr().out
    assert "policy.lora_rank = 32" in out and "or 0 for full fine-tuning" in out
    assert "train.eval_every = 0" in out
