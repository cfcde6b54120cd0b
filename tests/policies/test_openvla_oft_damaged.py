"""Damaged OFT checkpoints: one error line naming the damaged file, before anything is built or created."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sfbench.core.errors import DamagedCheckpoint, SfbenchError
from sfbench.core.task import TaskSpec
from sfbench.policies.openvla_oft import OpenVLAOFTConfig, OpenVLAOFTPolicy
from sfbench.policies.openvla_oft.checkpoint import read_checkpoint
from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
from tests.conftest import run_cli

TASK = TaskSpec(suite="libero_spatial", task_id=0, name="t", instruction="pick up the black bowl", action_dim=7)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("oft") / "tiny", max_shard_bytes=1 << 20)


def _first(path: Path, pattern: str) -> Path:
    return sorted(path.glob(pattern))[0]


def _truncate(file: Path, keep: float = 0.5) -> None:
    file.write_bytes(file.read_bytes()[: int(file.stat().st_size * keep)])


def _not_json(file: Path) -> None:
    file.write_text('{"weight_map": {"a": "b"')


def _shard_dir(path: Path) -> Path:
    shard = _first(path, "model-*.safetensors")
    shard.unlink()
    shard.mkdir()
    return shard


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "truncated shard": ("model-*.safetensors", _truncate),
    "shard cut inside its header": ("model-*.safetensors", lambda f: _truncate(f, 0.0001)),
    "index not JSON": ("model.safetensors.index.json", _not_json),
    "config not JSON": ("config.json", _not_json),
    "truncated action head": ("action_head--*checkpoint.pt", _truncate),
    "action head not a zip": ("action_head--*checkpoint.pt", lambda f: f.write_bytes(b"not a torch file" * 64)),
    "truncated proprio projector": ("proprio_projector--*checkpoint.pt", _truncate),
    "proprio projector not a zip": ("proprio_projector--*checkpoint.pt", lambda f: f.write_text("hello")),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_file_is_one_error_naming_it(case, tiny, tmp_path):
    ckpt = Path(shutil.copytree(tiny, tmp_path / "ckpt with spaces"))
    pattern, damage = DAMAGE[case]
    file = _first(ckpt, pattern)
    damage(file)
    with pytest.raises(DamagedCheckpoint) as err:
        OpenVLAOFTPolicy.check_config(OpenVLAOFTConfig(checkpoint=str(ckpt)), TASK)
    message = str(err.value)
    assert str(file) in message and "\n" not in message, message


def test_a_shard_that_is_a_directory_is_named(tiny, tmp_path):
    ckpt = Path(shutil.copytree(tiny, tmp_path / "ckpt"))
    shard = _shard_dir(ckpt)
    with pytest.raises(DamagedCheckpoint, match=f"{shard} is a directory, not a file"):
        read_checkpoint(ckpt)


def test_a_missing_shard_is_still_a_missing_file(tiny, tmp_path):
    ckpt = Path(shutil.copytree(tiny, tmp_path / "ckpt"))
    _first(ckpt, "model-*.safetensors").unlink()
    with pytest.raises(SfbenchError, match="missing model-"):
        read_checkpoint(ckpt)


def test_the_intact_checkpoint_passes_the_checks(tiny):
    OpenVLAOFTPolicy.check_config(OpenVLAOFTConfig(checkpoint=str(tiny)), TASK)


def test_sfbench_eval_refuses_a_truncated_shard_before_creating_anything(tiny, tmp_path):
    ckpt = Path(shutil.copytree(tiny, tmp_path / "ckpt"))
    shard = _first(ckpt, "model-*.safetensors")
    _truncate(shard)
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli("eval", "policy=openvla_oft", f"policy.checkpoint={ckpt}", "eval.tasks=[0]",
                   f"output_dir={work / 'out'}", cwd=work)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(shard) in err[0] and "truncated" in err[0], err[0]
    assert list(work.iterdir()) == [], "nothing is created for a refused command"
