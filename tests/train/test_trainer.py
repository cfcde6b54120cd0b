"""Trainer on synthetic LIBERO-layout demos (no simulator): exact resume, NaN stop, schedules."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sfbench.core.errors import InvalidConfig, SfbenchError
from sfbench.policies.tiny_vla import TinyVLA
from sfbench.train.rundir import latest_checkpoint
from sfbench.train.trainer import TrainJob, TrainSettings, lr_at
from tests.conftest import interrupt_training
from tests.train.test_demos import write_file

POLICY = {"name": "tiny_vla_sf", "dim": 32, "layers": 2, "heads": 2, "image_size": 32}
TEACHER = {"name": "geometry", "feature_dim": 16, "grid": 4}


def job(tmp_path, name, **train):
    data_dir = tmp_path / "data"
    if not data_dir.exists():
        write_file(data_dir / "a_demo.hdf5", 2, t=6)
    settings = {"steps": 20, "batch_size": 4, "save_every": 10, "log_every": 5, "progress": False,
                "num_threads": 1} | train
    return TrainJob(tmp_path / name, dict(POLICY), {"path": str(data_dir)}, settings, dict(TEACHER), {"method": "sf"})


def weights(run_dir):
    return load_file(latest_checkpoint(run_dir) / "model.safetensors")


def test_resumed_run_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    straight = job(tmp_path, "straight")
    straight()
    interrupted = job(tmp_path, "interrupted")
    interrupt_training(monkeypatch, interrupted, 17)  # after step 15 is logged, before the step-20 checkpoint
    assert latest_checkpoint(interrupted.run_dir).name == "step_000010"
    interrupted()
    a, b = weights(straight.run_dir), weights(interrupted.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a), "resume continues the same run bit for bit"
    logged = [json.loads(line)["step"] for line in (interrupted.run_dir / "metrics.jsonl").open()]
    assert logged == [5, 10, 15, 20], "steps logged before the interruption but after its checkpoint are dropped"


def test_a_truncated_training_state_on_resume_is_one_clear_error(tmp_path):
    j = job(tmp_path, "torn", steps=10)
    j()
    state = latest_checkpoint(j.run_dir) / "training_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    resumed = job(tmp_path, "torn", steps=20)
    with pytest.raises(SfbenchError, match=r"damaged checkpoint .*step_000010.*delete that directory") as e:
        resumed()
    assert "\n" not in str(e.value)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    j = job(tmp_path, "nan")
    original_forward = TinyVLA.forward

    def poisoned(self, batch, **kw):
        out = original_forward(self, batch, **kw)
        if torch.is_grad_enabled() and getattr(self, "_calls", 0) >= 12:
            out["actions"] = out["actions"] * float("nan")
        self._calls = getattr(self, "_calls", 0) + 1
        return out

    monkeypatch.setattr(TinyVLA, "forward", poisoned)
    with pytest.raises(SfbenchError, match=r"Non-finite loss \(nan\) at step 12.*step_000010"):
        j()
    assert latest_checkpoint(j.run_dir).name == "step_000010"


def test_learning_rate_schedules():
    s = TrainSettings(steps=100, lr=1.0, milestones=[0.5, 0.9])
    assert [lr_at(t, s) for t in (0, 49, 50, 90)] == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.01)]
    c = TrainSettings(steps=100, lr=1.0, schedule="cosine")
    assert lr_at(0, c) == pytest.approx(1.0) and lr_at(100, c) == pytest.approx(1e-3)


def test_device_is_validated_with_the_choices():
    with pytest.raises(InvalidConfig, match="train.device='tpu'; choices: cpu, cuda"):
        TrainSettings(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidConfig, match="no CUDA device"):
            TrainSettings(device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_draws_the_same_batches_and_saves_cpu_weights(tmp_path):
    cpu, cuda = job(tmp_path, "cpu", steps=10), job(tmp_path, "cuda", steps=10, device="cuda")
    cpu(), cuda()
    a, b = weights(cpu.run_dir), weights(cuda.run_dir)
    assert all(b[k].device.type == "cpu" for k in b)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-2, "same data, init and schedule"
