"""train.log: metrics.jsonl stays the source of truth; TensorBoard event files hold the same scalars."""

from __future__ import annotations

import json
import sys

import pytest
from PIL import Image

from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.train.logs import check_sinks
from sfbench.train.trainer import TrainSettings
from tests.train.test_trainer import job


def _events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_hold_the_jsonl_metrics_and_metrics_png_is_written(tmp_path):
    run = job(tmp_path, "tb", log=["jsonl", "tensorboard"])
    run()
    lines = [json.loads(ln) for ln in (run.run_dir / "metrics.jsonl").open()]
    assert [ln["step"] for ln in lines] == [5, 10, 15, 20]
    assert all(ln["samples_per_s"] > 0 and 0.0 <= 1 - ln["align_loss"] == pytest.approx(ln["align_cos"])
               for ln in lines)
    events = _events(run.run_dir / "tensorboard")
    assert {"loss/loss", "loss/action_loss", "loss/align_loss", "align/align_cos", "optim/lr",
            "throughput/samples_per_s"} <= set(events)
    for tag, key in (("loss/action_loss", "action_loss"), ("align/align_cos", "align_cos"), ("optim/lr", "lr")):
        assert [s for s, _ in events[tag]] == [5, 10, 15, 20]
        assert [v for _, v in events[tag]] == pytest.approx([ln[key] for ln in lines], rel=1e-6), tag
    with Image.open(run.run_dir / "metrics.png") as img:
        assert img.width > 600 and img.height > 200


def test_default_is_jsonl_only(tmp_path):
    run = job(tmp_path, "plain", steps=5)
    run()
    assert (run.run_dir / "metrics.jsonl").is_file() and (run.run_dir / "metrics.png").is_file()
    assert not (run.run_dir / "tensorboard").exists() and not (run.run_dir / "wandb").exists()


@pytest.mark.parametrize(("sinks", "message"), [
    (["jsonl", "mlflow"], "unknown sink 'mlflow'"),
    (["tensorboard"], "jsonl is the source of truth"),
])
def test_bad_sinks_are_config_errors(sinks, message):
    with pytest.raises(InvalidConfig, match=message):
        TrainSettings(log=sinks)


def test_wandb_without_the_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed (import raises ImportError)
    with pytest.raises(MissingAsset, match=r"sfbench\[wandb\]"):
        check_sinks(["jsonl", "wandb"])
