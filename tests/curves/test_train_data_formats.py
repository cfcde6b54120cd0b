"""``sfbench curves`` over runs trained on RLDS and LeRobot datasets: their training data, as the trainer reads it."""

from __future__ import annotations

import pytest
import yaml

from sfbench.core.errors import InvalidConfig
from sfbench.curves.train_runs import TrainingData, TrainRun, check_comparable, load_train_run, training_data
from tests.conftest import run_cli
from tests.curves.test_curves import train_run
from tests.train.test_train_datasets import DATASETS


def run_on(path, **data) -> TrainRun:
    return TrainRun("r", path, {"policy": {"name": "tiny_vla"}, "data": {"path": str(path), **data}}, {})


def test_an_rlds_run_trains_on_the_suite_tasks_its_instructions_match():
    got = training_data(run_on(DATASETS["rlds"], suite="libero_spatial"))
    assert got == TrainingData("libero_spatial", (3, 8), "unknown", (1, 1))
    assert training_data(run_on(DATASETS["rlds"], suite="libero_10")).task_ids == (2, 8)


def test_a_lerobot_run_counts_the_demos_it_used():
    assert training_data(run_on(DATASETS["lerobot"], suite="libero_goal")) == \
        TrainingData("libero_goal", (7,), "unknown", (1,))


def test_a_combined_dataset_without_data_suite_is_refused():
    with pytest.raises(InvalidConfig, match="mixes suites \\['libero_10', 'libero_spatial'\\] \\(set data.suite\\)"):
        training_data(run_on(DATASETS["rlds"]))


def test_released_and_collected_runs_of_other_tasks_are_not_one_curve(tmp_path):
    train_run(tmp_path, "hdf5", task_id=3)
    train_run(tmp_path, "rlds", task_id=3)
    config = tmp_path / "train" / "rlds" / "config.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["data"] = {"path": str(DATASETS["rlds"]), "suite": "libero_spatial", "fraction": 1.0}
    config.write_text(yaml.safe_dump(cfg))
    runs = [load_train_run(tmp_path / "train", r) for r in ("hdf5", "rlds")]
    with pytest.raises(InvalidConfig, match="task set: hdf5 has \\[3\\], rlds has \\[3, 8\\]"):
        check_comparable(runs)
    proc = run_cli("curves", "runs=[rlds]", f"curves.train_dir={tmp_path / 'train'}", "curves.dry_run=true",
                   "suite=libero_spatial", "eval.episodes_per_task=3", f"output_dir={tmp_path / 'out'}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("6 episodes, 0 already recorded") == 2, f"2 checkpoints x tasks 3 and 8: {proc.stdout}"
