"""``sfbench train data.path=`` on released-format datasets: RLDS and LeRobot, tiny_vla and openvla_sf (SF)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sfbench.cli import main
from sfbench.train.trainer import TrainJob
from sfbench.train.vggt import Aggregator, AggregatorShape

DATA = Path(__file__).parent / "data"
DATASETS = {"rlds": DATA / "rlds", "lerobot": DATA / "lerobot_v30_images"}
COMMON = ["train.steps=2", "train.batch_size=4", "train.save_every=2", "train.log_every=1", "train.progress=false",
          "train.num_threads=1", "data.augment=false"]


@pytest.fixture(scope="module")
def tiny_vggt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised VGGT aggregator in VGGT-1B's model.pt key layout."""
    torch.manual_seed(0)
    model = Aggregator(AggregatorShape(dim=16, depth=1, heads=2, embed_depth=1, embed_heads=2, image_size=56))
    path = tmp_path_factory.mktemp("vggt") / "model.pt"
    torch.save({f"aggregator.{k}": v for k, v in model.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def oft_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("oft") / "base", seed=1)


def _metrics(out: Path) -> list[dict]:
    run = next(out.glob("*-*"))
    return [json.loads(line) for line in (run / "metrics.jsonl").open()]


@pytest.mark.parametrize("fmt", sorted(DATASETS))
def test_tiny_vla_trains_on_a_released_format(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "runs"
    assert main(["train", "policy=tiny_vla", f"data.path={DATASETS[fmt]}", f"output_dir={out}", *COMMON]) == 0
    losses = [m["action_loss"] for m in _metrics(out)]
    assert len(losses) == 2 and all(loss == loss and loss > 0 for loss in losses)


@pytest.mark.parametrize("fmt", sorted(DATASETS))
def test_openvla_sf_trains_with_spatial_forcing_on_a_released_format(tmp_path: Path, fmt: str, tiny_vggt: Path,
                                                                    oft_base: Path) -> None:
    settings = {"steps": 2, "batch_size": 4, "save_every": 2, "log_every": 1, "progress": False, "num_threads": 1}
    teacher = {"name": "vggt", "checkpoint": str(tiny_vggt), "heads": 2, "embed_heads": 2,
               "cache_dir": str(tmp_path / "cache")}
    job = TrainJob(tmp_path / "runs" / "openvla_sf-test", {"name": "openvla_sf", "base": str(oft_base), "lora_rank": 4},
                   {"path": str(DATASETS[fmt]), "augment": False}, settings, teacher, {"method": "sf"})
    assert job().name == "step_000002"
    metrics = _metrics(tmp_path / "runs")
    assert len(metrics) == 2 and all("align_loss" in m and m["align_loss"] > 0 for m in metrics)


def test_a_path_that_is_no_dataset_is_one_error_line_and_creates_nothing(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("x")
    out = tmp_path / "runs"
    assert main(["train", "policy=tiny_vla", f"data.path={tmp_path / 'junk'}", f"output_dir={out}", *COMMON]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a directory holding 1 entries (readme.txt)" in err, err
    assert not out.exists()


def test_data_suite_filters_a_combined_dataset_and_an_unmatched_suite_is_refused(tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "runs"
    args = ["train", "policy=tiny_vla", f"data.path={DATASETS['lerobot']}", f"output_dir={out}", *COMMON]
    assert main([*args, "data.suite=libero_goal"]) == 0
    assert main([*args, "data.suite=libero_object", "run_id=other"]) == 2
    assert "none of its 2 episodes is a task of data.suite=libero_object" in capsys.readouterr().err
