"""Fine-tuning OpenVLA-OFT / SF on a tiny base: LoRA recipe, OFT-layout checkpoints, exact resume, eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sfbench.core.errors import SfbenchError
from sfbench.core.task import TaskSpec
from sfbench.policies.openvla_oft import OpenVLAOFTConfig, OpenVLAOFTPolicy, read_checkpoint
from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
from sfbench.policies.openvla_oft.training import merged_state
from sfbench.train.rundir import latest_checkpoint
from sfbench.train.trainer import Trainer, TrainJob
from tests.conftest import interrupt_training
from tests.train.test_demos import write_file

TEACHER = {"name": "geometry", "feature_dim": 16, "grid": 4}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("oft") / "base", seed=1)


def job(tmp_path, base, name, policy="openvla_sf", lora=None, **train):
    """A few training steps of ``policy`` from ``base`` on two tiny demos (LoRA rank 4 unless ``lora`` says)."""
    data = tmp_path / "data"
    if not data.exists():
        write_file(data / "a_demo.hdf5", 2, t=6)
    settings = {"steps": 4, "batch_size": 2, "save_every": 2, "log_every": 1, "progress": False,
                "num_threads": 2} | train
    keys = {"name": policy, "base": str(base)} | (lora or {"lora_rank": 4, "lora_alpha": 4})
    return TrainJob(tmp_path / name, keys, {"path": str(data)}, settings, dict(TEACHER),
                    {"method": "sf"} if policy == "openvla_sf" else None)


def test_lora_trains_only_adapters_and_heads_and_merging_keeps_the_function(base):
    torch.manual_seed(0)
    policy = OpenVLAOFTPolicy.for_training(OpenVLAOFTConfig(name="openvla_sf", base=str(base), lora_rank=4))
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith(("action_head.", "proprio_projector.")) for n in trainable)
    assert any("q_proj.lora_A" in n for n in trainable) and any("featurizer" in n for n in trainable), "all linear"
    assert not any("lm_head.lora" in n for n in trainable)
    for name, p in policy.model.vla.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)  # a trained adapter (B starts at zero)
    merged = OpenVLAOFTPolicy.for_training(OpenVLAOFTConfig(base=str(base), lora_rank=4)).model
    plain = type(merged)(policy.ckpt.dino, policy.ckpt.siglip, policy.ckpt.llama)
    plain.vla.load_state_dict(merged_state(policy.model))
    plain.action_head.load_state_dict(policy.model.action_head.state_dict())
    plain.proprio_projector.load_state_dict(policy.model.proprio_projector.state_dict())
    ids = torch.tensor([[1, 29871, *([1] * 56), 2]])
    x, q = torch.randn(1, 12, 224, 224), torch.zeros(1, 8)
    with torch.no_grad():
        assert torch.allclose(policy.model.eval()(x, ids, q)["actions"], plain.eval()(x, ids, q)["actions"], atol=1e-5)


def test_sf_run_checkpoints_in_oft_layout_resumes_exactly_and_evaluates(tmp_path, base, monkeypatch):
    straight = job(tmp_path, base, "straight")
    final = straight()
    assert {"config.json", "model.safetensors.index.json", "dataset_statistics.json", "preprocessor_config.json",
            "tokenizer.json", "lora_adapter", "trainer_state.json", "training_state.pt"} <= {
                p.name for p in final.iterdir()}
    assert json.loads((final / "config.json").read_text())["name"] == "openvla_sf"
    metrics = [json.loads(line) for line in (straight.run_dir / "metrics.jsonl").open()]
    assert all("align_loss" in m for m in metrics), "Spatial Forcing is on for openvla_sf"

    interrupted = job(tmp_path, base, "interrupted")
    interrupt_training(monkeypatch, interrupted, 3)
    assert latest_checkpoint(interrupted.run_dir).name == "step_000002"
    resumed = interrupted()
    a, b = load_file(final / "lora_adapter/adapter_model.safetensors"), \
        load_file(resumed / "lora_adapter/adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "resume continues the same run bit for bit"

    policy = OpenVLAOFTPolicy(OpenVLAOFTConfig(checkpoint=str(final), device="cpu"))
    task = TaskSpec(suite="libero_spatial", task_id=0, name="t", instruction="do it", action_dim=7)
    OpenVLAOFTPolicy.check_config(policy.config, task)  # the only statistics key is used
    policy.reset(task)
    obs = {"agentview": np.zeros((128, 128, 3), np.uint8), "wrist": np.zeros((128, 128, 3), np.uint8),
           "proprio": np.zeros(8), "instruction": "do it"}
    chunk = policy.act(obs)
    assert chunk.shape == (8, 7) and np.isfinite(chunk).all()
    assert read_checkpoint(final).stats["sfbench_demos"]["action"]["mask"] == [True] * 6 + [False]


def test_training_without_a_base_names_policy_base(tmp_path):
    with pytest.raises(SfbenchError, match="needs policy.base="):
        OpenVLAOFTPolicy.check_training(OpenVLAOFTConfig(name="openvla_sf"))
    with pytest.raises(SfbenchError, match="missing config.json"):
        OpenVLAOFTPolicy.check_training(OpenVLAOFTConfig(base=str(tmp_path)))


def test_a_training_checkpoint_names_its_policy_config(tmp_path, base):
    from sfbench.policies.trainable import checkpoint_policy_config

    final = job(tmp_path, base, "named", policy="openvla_oft", steps=1, save_every=1)()
    assert checkpoint_policy_config(final) == {"family": "openvla_oft", "name": "openvla_oft", "checkpoint": str(final)}


@pytest.mark.sim
def test_sfbench_train_openvla_sf_then_eval_on_libero(tmp_path, base):
    from tests.conftest import run_cli

    write_file(tmp_path / "data" / "a_demo.hdf5", 2, t=6)
    train = run_cli("train", "policy=openvla_sf", f"policy.base={base}", "policy.lora_rank=4",
                    f"data.path={tmp_path / 'data'}", "train.steps=2", "train.batch_size=2", "train.save_every=2",
                    "train.progress=false", f"output_dir={tmp_path / 'train'}", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    (ckpt,) = tmp_path.glob("train/*/checkpoints/step_000002")
    proc = run_cli("eval", "suite=libero_spatial", "policy=openvla_oft", f"policy.checkpoint={ckpt}",
                   "eval.tasks=[0]", "eval.episodes_per_task=1", "eval.videos_per_task=0",
                   "protocol.max_steps.libero_spatial=16", "eval.progress=false", f"output_dir={tmp_path / 'runs'}",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (record,) = [json.loads(line) for p in tmp_path.glob("runs/*/records/*.jsonl") for line in p.open()]
    assert record["steps"] == 16 and record["failure_reason"] is None


def test_lora_on_a_model_without_linear_layers_is_refused():
    from types import SimpleNamespace

    from sfbench.policies.openvla_oft.training import add_lora

    with pytest.raises(SfbenchError, match="LoRA needs linear layers"):
        add_lora(SimpleNamespace(vla=torch.nn.Sequential(torch.nn.ReLU())), 4, 4, 0.0)


def test_bf16_training_keeps_frozen_weights_in_bf16_and_trained_ones_in_fp32(tmp_path, base):
    runs = {p: job(tmp_path, base, p, steps=2, save_every=2, precision=p) for p in ("fp32", "bf16")}
    trainer = Trainer(runs["bf16"])
    dtypes = {p.requires_grad: p.dtype for p in trainer.policy.model.parameters()}
    assert dtypes == {True: torch.float32, False: torch.bfloat16}
    finals = {p: r() for p, r in runs.items()}
    losses = {p: [json.loads(line)["loss"] for line in (r.run_dir / "metrics.jsonl").open()] for p, r in runs.items()}
    assert all(np.isfinite(losses["bf16"]))
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.05), "bf16 autocast computes the same losses"
    assert losses["bf16"] != losses["fp32"], "the bf16 run really ran in bf16"
    policy = OpenVLAOFTPolicy(OpenVLAOFTConfig(checkpoint=str(finals["bf16"]), device="cpu"))
    assert next(policy.model.parameters()).dtype == torch.float32, "a bf16 run's checkpoint loads as any other"


def test_an_unknown_precision_names_the_choices():
    from sfbench.config.schema import make_config
    from sfbench.train.trainer import TrainSettings

    with pytest.raises(SfbenchError, match=r"train.precision='fp16'; choices: fp32, bf16"):
        make_config(TrainSettings, {"precision": "fp16"}, what="train")
