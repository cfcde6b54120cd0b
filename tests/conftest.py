from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
# LeRobot frame caches of the tests' datasets go to one temporary folder per session, not ~/.cache/sfbench
os.environ.setdefault("SFBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="sfbench-test-cache-"))
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def weird_tmp_path(tmp_path: Path) -> Path:
    """A directory whose name has spaces and quotes, to catch unquoted paths."""
    p = tmp_path / "dir with 'quotes' and spaces"
    p.mkdir()
    return p


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``sfbench`` console script."""
    exe = Path(sys.executable).with_name("sfbench")
    return subprocess.run([str(exe), *args], cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout)


def interrupt_training(monkeypatch: pytest.MonkeyPatch, job, at_step: int) -> None:
    """Run the train ``job`` until ``Trainer.step(at_step)`` is reached, as a Ctrl-C there would stop it."""
    from sfbench.train.trainer import Trainer

    original = Trainer.step

    def step_then_interrupt(self, step):
        if step == at_step:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(Trainer, "step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        job()
    monkeypatch.setattr(Trainer, "step", original)
