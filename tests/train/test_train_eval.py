"""Evaluation during training (``train.eval_every``): one ordinary eval run per checkpoint, while training goes on."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from sfbench.core.errors import SfbenchError
from sfbench.train.evaluation import SUCCESS, CheckpointEvals, check_train_eval, done_file
from sfbench.train.trainer import Trainer, TrainJob
from tests.conftest import run_cli
from tests.train.test_demos import write_file
from tests.train.test_logs import _events

POLICY = {"name": "tiny_vla", "dim": 32, "layers": 2, "heads": 2, "image_size": 32}
TINY = ["policy=tiny_vla", "policy.dim=32", "policy.layers=2", "policy.heads=2", "policy.image_size=32"]
FAST_EVAL = ["train.eval.suite=libero_spatial", "train.eval.tasks=[0]", "train.eval.episodes_per_task=1",
             "train.eval.protocol=libero_oft_fast", "train.eval.overrides=['protocol.max_steps.libero_spatial=8']"]
CURVES_EVAL = ["protocol=libero_oft_fast", "protocol.max_steps.libero_spatial=8", "eval.tasks=[0]",
               "eval.episodes_per_task=1", "eval.progress=false"]


def demos(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write_file(data / "a_demo.hdf5", 2, t=6)
    return data


def train_args(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    return ["train", *TINY, f"data.path={data}", "train.steps=4", "train.batch_size=2", "train.save_every=4",
            "train.log_every=1", "train.progress=false", "train.num_threads=1", "train.eval_every=2", *FAST_EVAL,
            f"train.eval.output_dir={tmp_path / 'runs'}", f"output_dir={tmp_path / 'train'}", "run_id=r", *extra]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("override", "message"), [
    ({"suite": "libero_spatail"}, "Unknown suite 'libero_spatail'. Did you mean 'libero_spatial'?"),
    ({"suite": "libero_spatial", "protocol": "nope"}, "Unknown protocol 'nope'"),
    ({}, "train.eval_every needs train.eval.suite="),
    ({"suite": "libero_spatial", "launcher": "debug"}, "train.eval.launcher='debug'; choices: local, slurm"),
    ({"suite": "libero_spatial", "episodes_per_task": 51}, "episodes 0..50, but suite libero_spatial has 50"),
    ({"suite": "libero_spatial", "tasks": [12]}, "Unknown task id for suite libero_spatial '12'"),
    ({"suite": "libero_spatial", "overrides": ["policy.dim=8"]}, "cannot change the policy"),
    ({"suite": "libero_spatial", "protocol": "openpi", "tasks": [0]}, "reads metric depth, but protocol openpi"),
])
def test_bad_eval_settings_are_one_error_each(override, message):
    policy = POLICY | ({"input_geometry": "depth"} if override.get("protocol") == "openpi" else {})
    with pytest.raises(SfbenchError, match=message.replace("(", r"\(").replace("?", r"\?")):
        check_train_eval(override, policy)


def test_a_bad_eval_suite_stops_sfbench_train_before_anything_is_created(tmp_path):
    proc = run_cli(*train_args(tmp_path, tmp_path / "data", "train.eval.suite=libero_spatail"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("sfbench: error: Unknown suite 'libero_spatail'")
    assert not (tmp_path / "train").exists() and not (tmp_path / "runs").exists()


def test_results_are_logged_at_their_checkpoints_step_and_a_resume_relaunches_unfinished_evals(tmp_path, monkeypatch):
    started: list[int] = []

    def fake_start(self, step, path):  # an eval that finished at once (step 2) or died without a result (step 4)
        started.append(step)
        if step == 2 or len(started) > 2:
            done_file(path).write_text(json.dumps({"step": step, "run_id": f"e{step}", "run_dir": "x",
                                                   "successes": step // 2, "n": 2, "planned": 2}))
        self.launched[step] = SimpleNamespace(request=path, handle=None)

    monkeypatch.setattr(CheckpointEvals, "_start", fake_start)
    settings = {"steps": 4, "batch_size": 2, "save_every": 4, "log_every": 1, "progress": False, "num_threads": 1,
                "eval_every": 2, "eval": {"suite": "libero_spatial", "tasks": [0], "episodes_per_task": 2},
                "log": ["jsonl", "tensorboard"]}
    job = TrainJob(tmp_path / "run", dict(POLICY), {"path": str(demos(tmp_path))}, settings, {"name": "geometry"})
    Trainer(job).run()
    assert started == [2, 4] and sorted(p.name for p in (job.run_dir / "checkpoints").iterdir()) == \
        ["step_000002", "step_000004"], "eval_every saves the checkpoints it evaluates"
    evals = [m for m in metrics(job.run_dir) if SUCCESS in m]
    assert [(m["step"], m[SUCCESS], m["eval/episodes"]) for m in evals] == [(2, 0.5, 2)], "step 4's eval left no result"
    assert _events(job.run_dir / "tensorboard")[SUCCESS] == [(2, 0.5)]

    Trainer(job).run()  # the same command again: step 4's request has no result, so it is launched again
    assert started == [2, 4, 4]
    evals = [m for m in metrics(job.run_dir) if SUCCESS in m]
    assert [(m["step"], m[SUCCESS]) for m in evals] == [(2, 0.5), (4, 1.0)], "each result logged once"


@pytest.mark.sim
def test_each_checkpoint_is_an_ordinary_eval_run_that_curves_finds(tmp_path):
    data = demos(tmp_path)
    proc = run_cli(*train_args(tmp_path, data))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "train" / "r"
    results = {s: json.loads(done_file(run_dir / "evals" / f"step_00000{s}.json").read_text()) for s in (2, 4)}
    for step, result in results.items():
        eval_run = tmp_path / "runs" / result["run_id"]
        records = [json.loads(line) for p in (eval_run / "records").glob("*.jsonl") for line in p.open()]
        assert len(records) == 1 and records[0]["steps"] == 8 and records[0]["failure_reason"] is None
        assert json.loads((eval_run / "summary.json").read_text())["overall"]["n"] == 1
        command = json.loads((eval_run / "command.json").read_text())
        assert command["identity"]["policy"]["checkpoint"] == str(run_dir / "checkpoints" / f"step_00000{step}")
    assert (run_dir / "checkpoints" / "step_000004").stat().st_mtime < \
        done_file(run_dir / "evals" / "step_000002.json").stat().st_mtime, "training did not wait for step 2's eval"
    lines = metrics(run_dir)
    assert sorted((m["step"], m["eval/episodes"]) for m in lines if SUCCESS in m) == [(2, 1), (4, 1)], \
        "each result once (in the order the side-by-side evals end)"
    assert all(m["wall_s"] >= lines[3]["wall_s"] for m in lines[4:]), "results arrive after training"

    curves = run_cli("curves", "runs=[r]", f"curves.train_dir={tmp_path / 'train'}", f"output_dir={tmp_path / 'runs'}",
                     f"curves.output_dir={tmp_path / 'curves'}", "curves.name=c", *CURVES_EVAL)
    assert curves.returncode == 0, curves.stderr[-3000:]
    points = list(csv.DictReader((tmp_path / "curves" / "c" / "points.csv").open()))
    assert [(p["training step"], p["eval_runs"], p["n"]) for p in points] == \
        [(str(s), results[s]["run_id"], "1") for s in (2, 4)], "curves reads the runs evaluated during training"
    assert len(list((tmp_path / "runs").iterdir())) == 2, "and evaluates nothing again"


def _slurm_up() -> bool:
    if shutil.which("sbatch") is None:
        return False
    return "UP" in subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout


@pytest.mark.slurm
@pytest.mark.sim
def test_on_slurm_each_checkpoint_is_evaluated_by_its_own_job(tmp_path):
    if not _slurm_up():
        pytest.skip("no live slurmctld (run tests/slurm/start_slurm.sh as root)")
    data = demos(tmp_path)
    proc = run_cli(*train_args(tmp_path, data, "train.eval_every=4", "train.eval.launcher=slurm",
                               "train.eval.overrides=['protocol.max_steps.libero_spatial=8','launcher.poll_s=1']"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "train" / "r"
    result = json.loads(done_file(run_dir / "evals" / "step_000004.json").read_text())
    (record,) = [json.loads(line) for p in (tmp_path / "runs" / result["run_id"] / "records").glob("*.jsonl")
                 for line in p.open()]
    assert record["job_id"], "the eval ran in a SLURM job"
    assert (run_dir / "evals" / "submitit").is_dir()
    assert [(m["step"], m["eval/episodes"]) for m in metrics(run_dir) if SUCCESS in m] == [(4, 1)]


@pytest.mark.parametrize(("subset", "words"), [
    ([], "data {data}, starts at step 0"),
    (["data.fraction=0.25"], "data {data} (25% of each task's demos), starts"),
    (["data.demos_per_task=3"], "data {data} (3 demos per task), starts"),
])
def test_the_dry_run_names_the_demo_subset_and_the_evaluation_plan(tmp_path, subset, words):
    data = demos(tmp_path)
    proc = run_cli(*train_args(tmp_path, data, *subset, "train.dry_run=true"))
    assert proc.returncode == 0, proc.stderr
    assert words.format(data=data) in proc.stdout, proc.stdout
    assert "every 2 steps an eval run on libero_spatial tasks [0], 1 episodes per task" in proc.stdout
    assert not (tmp_path / "train").exists() and not (tmp_path / "runs").exists()
