"""``benchmarks/data_throughput.py`` end to end on a small copy (6 episodes): every figure is printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_data_throughput_prints_ram_and_both_loader_rates(tmp_path):
    args = ["--dir", str(tmp_path), "--episodes", "6", "--total-steps", "90", "--batches", "3", "--steps", "1",
            "--train-steps", "2"]
    proc = subprocess.run([sys.executable, "data_throughput.py", *args], cwd=REPO / "benchmarks", capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "6 episodes, 90 steps, 6 shards" in out, out
    assert re.search(r"\(a\) RAM, 6 episodes / 90 samples loaded .* RSS \d+\.\d\d GiB", out), out
    assert re.search(r"\(b\) tiny openvla_sf step, batch 8, cached VGGT, 1 torch threads: \d+\.\d samples/s", out), out
    for workers in (0, 2):
        assert re.search(rf"loader, workers={workers}: \d+\.\d samples/s = \d+\.\d\dx the step", out), out
        assert re.search(rf"train.num_workers={workers}: \d+\.\d samples/s \(2 steps of Trainer.run", out), out
    assert (tmp_path / "6x90" / "libero_spatial_no_noops" / "1.0.0" / "dataset_info.json").is_file()
