"""``benchmarks/gpu_check.py --tiny``: the 7B check's code, end to end on this CPU with tiny shapes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROWS = ["act (8-action chunk)", "OFT image chain (in act)", "sfbench serve, loopback", "LoRA + SF training step",
        "LIBERO env step", "LIBERO episodes/hour"]


@pytest.mark.sim
def test_gpu_check_tiny_prints_every_row_of_the_table():
    proc = subprocess.run([sys.executable, "gpu_check.py", "--tiny"], cwd=REPO / "benchmarks", capture_output=True,
                          text=True, timeout=180, env={**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = proc.stdout[proc.stdout.index("gpu_check on cpu"):]
    assert "FAILED" not in table, table
    for row in ROWS:
        assert f"| {row}" in table, f"missing row {row!r}:\n{table}"
    for setting in ("batch 1 ", "batch 8 ", "batch 32 ", "N = 1 clients", "N = 4 clients", "N = 16 clients",
                    "cached VGGT", "online VGGT"):
        assert setting in table, f"missing {setting!r}:\n{table}"
