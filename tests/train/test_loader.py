"""``train.num_workers``: each step's samples are read in DataLoader workers, and the batches do not change."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from sfbench.cli import main
from sfbench.train.data import dataset as dataset_module
from sfbench.train.data.formats import load_demos
from sfbench.train.data.frames import EncodedFrames, MappedFile
from sfbench.train.data.loader import step_batches, step_generator, step_indices
from tests.train.test_train_datasets import COMMON, DATASETS


def test_step_batches_follow_the_step_indices_whatever_the_workers():
    data = [{"i": i} for i in range(50)]

    def indices(step):
        return step_indices(step_generator(7, step), len(data), 4)

    for workers in (0, 2):
        got = [[it["i"] for it in items] for items in step_batches(data, range(3, 9), indices, workers)]
        assert got == [indices(s) for s in range(3, 9)], f"workers={workers}"


def test_rlds_frames_pickle_as_the_shard_path_not_its_bytes():
    demo = load_demos(DATASETS["rlds"])[0]
    frames = demo.images["agentview"]
    assert isinstance(frames, EncodedFrames) and isinstance(frames.buffer, MappedFile)
    data = pickle.dumps(frames)
    assert len(data) < 2_000 + 16 * len(frames), f"{len(data)} bytes: the shard travelled with its frames"
    np.testing.assert_array_equal(pickle.loads(data)[-1], frames[-1])


def _losses(out: Path, run_id: str) -> list[float]:
    return [json.loads(line)["action_loss"] for line in (out / run_id / "metrics.jsonl").open()]


@pytest.mark.parametrize("fmt", sorted(DATASETS))
def test_training_reads_samples_in_two_workers_and_trains_the_same(tmp_path, monkeypatch, fmt):
    pids = tmp_path / "pids.txt"
    read = dataset_module.DemoDataset.__getitem__

    def logged(self, i):
        with pids.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return read(self, i)

    monkeypatch.setattr(dataset_module.DemoDataset, "__getitem__", logged)
    out = tmp_path / "runs"
    args = ["train", "policy=tiny_vla", f"data.path={DATASETS[fmt]}", f"output_dir={out}", *COMMON, "train.steps=4",
            "train.save_every=4"]
    assert main([*args, "train.num_workers=0", "run_id=w0"]) == 0
    in_process = set(pids.read_text().split())
    pids.unlink()
    assert main([*args, "train.num_workers=2", "run_id=w2"]) == 0
    readers = pids.read_text().split()
    assert in_process == {str(os.getpid())}
    assert len(readers) == 16 and len(set(readers)) == 2 and str(os.getpid()) not in readers, \
        "every sample of the 4 steps is read by one of the 2 workers"
    assert _losses(out, "w0") == _losses(out, "w2"), "the workers change where samples are read, not the batches"


def test_a_negative_worker_count_is_refused(tmp_path, capsys):
    args = ["train", "policy=tiny_vla", f"data.path={DATASETS['rlds']}", f"output_dir={tmp_path / 'o'}", *COMMON]
    assert main([*args, "train.num_workers=-1"]) == 2
    assert "train.num_workers=-1 must be an integer >= 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
