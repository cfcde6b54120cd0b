"""Data-parallel training: 2 CPU processes on gloo (torchrun) equal one process on the whole batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sfbench.core.errors import InvalidConfig
from sfbench.train.distributed import World
from tests.conftest import REPO, run_cli
from tests.train.test_demos import write_file


def _args(tmp_path: Path, out: str) -> list[str]:
    return ["train", "policy=tiny_vla", "policy.dim=32", "policy.layers=2", "policy.heads=2",
            f"data.path={tmp_path / 'data'}", "data.augment=false", "train.steps=3", "train.batch_size=4",
            "train.save_every=3", "train.log_every=1", "train.num_threads=1", "train.progress=false",
            f"output_dir={tmp_path / out}"]


def test_two_gloo_processes_equal_one_process_on_the_doubled_batch(tmp_path):
    write_file(tmp_path / "data" / "a_demo.hdf5", 2, t=6)
    single = run_cli(*_args(tmp_path, "one"), cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    torchrun = Path(sys.executable).with_name("torchrun")
    ddp = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "sfbench.cli",
                          *_args(tmp_path, "two")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    runs = {name: next((tmp_path / name).glob("tiny_vla-*")) for name in ("one", "two")}
    losses = {n: [json.loads(line)["loss"] for line in (r / "metrics.jsonl").open()] for n, r in runs.items()}
    assert len(losses["two"]) == 3, "rank 0 alone writes the metrics"
    assert losses["one"] == pytest.approx(losses["two"], abs=1e-5)
    a, b = (load_file(r / "checkpoints" / "step_000003" / "model.safetensors") for r in runs.values())
    for key in a:
        x, y = a[key], b[key]
        if key.endswith("in_proj_bias"):  # the key bias gets no true gradient (softmax ignores it): AdamW
            d = len(x) // 3                # turns its rounding noise into steps, so compare q and v only
            x, y = torch.cat([x[:d], x[2 * d :]]), torch.cat([y[:d], y[2 * d :]])
        assert torch.allclose(x, y, atol=1e-5), (key, (x - y).abs().max())


def test_a_batch_not_divisible_by_the_world_size_is_refused():
    with pytest.raises(InvalidConfig, match="train.batch_size=5 is not divisible by the 2 training processes"):
        World(0, 2).local_slice(list(range(5)))
    assert World(1, 2).local_slice([10, 11, 12, 13]) == [12, 13]
