"""Evaluation through a real SLURM cluster on localhost (marker ``slurm``; tests/slurm/start_slurm.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.slurm, pytest.mark.sim]


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    if shutil.which("sbatch") is None:
        pytest.skip("no SLURM on this machine (run tests/slurm/start_slurm.sh as root)")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if "UP" not in ping.stdout:
        pytest.skip(f"slurmctld is not running: {ping.stdout.strip() or ping.stderr.strip()}")


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((run_dir / "records").glob("*.jsonl")) for line in p.open()]


def outcomes(run_dir: Path) -> dict:
    return {(r["task_id"], r["episode_index"]): (r["success"], r["steps"], r["failure_reason"])
            for r in records(run_dir)}


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while not predicate():
        assert time.time() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.5)


def queue_empty(run_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-n", run_id, "-o", "%i"], capture_output=True, text=True)
    return not out.stdout.strip()


def job_processes(run_dir: Path) -> bool:
    """Whether a submitit worker of this run is still running."""
    return subprocess.run(["pgrep", "-f", f"submitit.core._submit {run_dir}"], capture_output=True).returncode == 0


EVAL_2X2 = ["eval", "suite=libero_spatial", "policy=scripted", "eval.tasks=[0,1]", "eval.episodes_per_task=2",
            "eval.episodes_per_shard=2", "eval.videos_per_task=0", "eval.progress=false"]


def test_slurm_run_equals_local_run(tmp_path):
    local = run_cli(*EVAL_2X2, f"output_dir={tmp_path}", "run_id=local")
    assert local.returncode == 0, local.stderr[-2000:]
    slurm = run_cli(*EVAL_2X2, f"output_dir={tmp_path}", "run_id=slurm", "launcher=slurm", "launcher.wait=true",
                    "launcher.poll_s=1")
    assert slurm.returncode == 0, slurm.stderr[-2000:]
    assert outcomes(tmp_path / "slurm") == outcomes(tmp_path / "local")
    assert len(outcomes(tmp_path / "slurm")) == 4
    assert all(r["job_id"] and "_" in r["job_id"] for r in records(tmp_path / "slurm")), "array task ids recorded"
    summary = {k: json.loads((tmp_path / k / "summary.json").read_text()) for k in ("local", "slurm")}
    assert summary["slurm"]["tasks"] == summary["local"]["tasks"]


def test_cancelled_array_task_is_resubmitted_and_every_episode_recorded_once(tmp_path):
    args = ["eval", "suite=libero_object", "policy=zero", "eval.tasks=[0,1]", "eval.episodes_per_task=6",
            "eval.episodes_per_shard=6", "eval.videos_per_task=0", "eval.progress=false", f"output_dir={tmp_path}",
            "run_id=fault", "launcher=slurm"]
    submitted = run_cli(*args)
    assert submitted.returncode == 0 and "submitted run fault" in submitted.stdout, submitted.stderr[-2000:]
    run_dir = tmp_path / "fault"
    (job,) = [j["job_id"] for j in json.loads((run_dir / "jobs.json").read_text()) if j["task_id"] == 1]
    wait_until(lambda: any(r["task_id"] == 1 for r in records(run_dir)), 300, "a first episode of task 1")
    subprocess.run(["scancel", job], check=True)
    wait_until(lambda: queue_empty("fault"), 300, "the array to leave the queue")
    # A cancelled job leaves squeue before its process is gone (submitit bypasses SIGTERM; SLURM
    # kills after KillWait): wait for the process, so no record lands after the checks below.
    wait_until(lambda: not job_processes(run_dir), 60, "the cancelled job's process to exit")
    status = run_cli("status", "run=fault", f"output_dir={tmp_path}")
    assert "failed" in status.stdout and job in status.stdout, status.stdout
    merged = run_cli("merge", "run=fault", f"output_dir={tmp_path}")
    assert "finish with: sfbench eval" in merged.stdout, merged.stdout

    resumed = run_cli(*args, "launcher.wait=true", "launcher.poll_s=1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    jobs = json.loads((run_dir / "jobs.json").read_text())
    assert [j["task_id"] for j in jobs] == [0, 1, 1], "only the cancelled shard is resubmitted"
    keys = [(r["task_id"], r["episode_index"]) for r in records(run_dir)]
    assert sorted(keys) == [(t, e) for t in (0, 1) for e in range(6)], "every episode exactly once"
    assert "complete" in run_cli("merge", "run=fault", f"output_dir={tmp_path}").stdout


def test_timeout_signal_requeues_the_shard_which_resumes(tmp_path):
    args = ["eval", "suite=libero_object", "policy=zero", "eval.tasks=[2]", "eval.episodes_per_task=3",
            "eval.episodes_per_shard=3", "eval.videos_per_task=0", "eval.progress=false", f"output_dir={tmp_path}",
            "run_id=requeue", "launcher=slurm"]
    assert run_cli(*args).returncode == 0
    run_dir = tmp_path / "requeue"
    (job,) = [j["job_id"] for j in json.loads((run_dir / "jobs.json").read_text())]
    wait_until(lambda: len(records(run_dir)) >= 1, 300, "the first episode")
    first = records(run_dir)[0]
    subprocess.run(["scancel", job, "--signal", "USR2"], check=True)  # what SLURM sends before a timeout
    wait_until(lambda: len(records(run_dir)) == 3 and queue_empty("requeue"), 400, "the requeued shard to finish")
    final = records(run_dir)
    assert sorted(r["episode_index"] for r in final) == [0, 1, 2], "every episode exactly once"
    assert final[0] == first, "the finished episode was not run again"
    log = "".join(p.read_text() for p in (run_dir / "submitit").glob("*_log.*"))
    assert "Requeued job" in log or "requeued" in log.lower(), "submitit checkpointed and requeued the shard"


def train_args(tmp_path, *extra):
    from tests.train.test_demos import write_file

    data = tmp_path / "data"
    if not data.exists():
        write_file(data / "a_demo.hdf5", 2, t=6)
    return ["train", "policy=tiny_vla_sf", "policy.dim=32", "policy.layers=2", "policy.heads=2",
            "teacher.feature_dim=16", "teacher.grid=4", f"data.path={data}", "train.batch_size=4",
            "train.progress=false", "train.num_threads=1", f"output_dir={tmp_path / 'runs'}", "launcher=slurm", *extra]


def test_training_sweep_runs_as_a_slurm_job_array(tmp_path):
    proc = run_cli(*train_args(tmp_path, "train.steps=10", "train.save_every=5"), "launcher.wait=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("train", "-m", *train_args(tmp_path, "train.steps=10", "train.save_every=5")[1:],
                   "train.seed=1,2", "launcher.wait=true", "launcher.poll_s=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    finals = [line for line in proc.stdout.splitlines() if line.endswith("step_000010")]
    assert len(finals) == 2, proc.stdout
    assert len({line.split(":")[0] for line in finals}) == 2, "one run directory per sweep point"


def test_requeued_training_job_resumes_from_its_checkpoint(tmp_path):
    proc = run_cli(*train_args(tmp_path, "train.steps=400", "train.save_every=20", "train.log_every=1",
                               "run_id=requeue"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    job = proc.stdout.strip().split("job ")[-1]
    run_dir = tmp_path / "runs" / "requeue"
    wait_until(lambda: any((run_dir / "checkpoints").glob("step_*/training_state.pt")), 300, "a first checkpoint")
    subprocess.run(["scancel", job, "--signal", "USR2"], check=True)
    wait_until(lambda: (run_dir / "checkpoints" / "step_000400" / "training_state.pt").exists()
               and queue_empty("sfbench-train"), 600, "the requeued training to finish")
    logs = "".join(p.read_text() for p in (tmp_path / "runs" / "submitit").glob(f"{job}*_log.*"))
    assert "Requeued job" in logs or "requeued" in logs.lower()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    steps = [m["step"] for m in lines]
    assert steps == list(range(1, 401)), f"each step logged once, across the requeue; got {steps}"
    # wall_s counts from the start of each process: it drops where the requeued job took over
    restart = next(i for i in range(1, len(lines)) if lines[i]["wall_s"] < lines[i - 1]["wall_s"])
    assert restart % 20 == 0, f"resumed after step {restart}, not at a checkpoint"


def test_openvla_sf_trains_data_parallel_as_one_two_task_slurm_job(tmp_path):
    from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
    from tests.train.test_demos import write_file

    base = write_tiny_checkpoint(tmp_path / "base")
    write_file(tmp_path / "data" / "a_demo.hdf5", 2, t=6)
    args = ["train", "policy=openvla_sf", f"policy.base={base}", "policy.lora_rank=4", "teacher.feature_dim=16",
            "teacher.grid=4", f"data.path={tmp_path / 'data'}", "data.augment=false", "train.steps=3",
            "train.batch_size=4", "train.save_every=3", "train.log_every=1", "train.num_threads=1",
            "train.progress=false"]
    local = run_cli(*args, f"output_dir={tmp_path / 'one'}", cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-2000:]
    slurm = run_cli(*args, f"output_dir={tmp_path / 'two'}", "launcher=slurm", "launcher.tasks_per_node=2",
                    "launcher.wait=true", "launcher.poll_s=1", cwd=tmp_path)
    assert slurm.returncode == 0, slurm.stderr[-2000:]
    assert slurm.stdout.strip().endswith("step_000003"), slurm.stdout
    runs = {name: next((tmp_path / name).glob("openvla_sf-*")) for name in ("one", "two")}
    losses = {n: [json.loads(line)["loss"] for line in (r / "metrics.jsonl").open()] for n, r in runs.items()}
    assert len(losses["two"]) == 3, "rank 0 alone writes the metrics"
    assert losses["two"] == pytest.approx(losses["one"], abs=1e-5), "2 ranks x 2 samples = 1 process x 4"
    assert list((tmp_path / "two" / "submitit").glob("*_1_result.pkl")), "the job's second task ran"


def test_a_served_run_is_one_server_job_and_a_shard_array_that_finds_it(tmp_path):
    local = run_cli(*EVAL_2X2, f"output_dir={tmp_path}", "run_id=local")
    assert local.returncode == 0, local.stderr[-2000:]
    served = run_cli(*EVAL_2X2, f"output_dir={tmp_path}", "run_id=served", "server.enabled=true", "server.gpus=0",
                     "server.poll_s=1", "launcher=slurm", "launcher.wait=true", "launcher.poll_s=1")
    assert served.returncode == 0, served.stderr[-2000:]
    run_dir = tmp_path / "served"
    assert outcomes(run_dir) == outcomes(tmp_path / "local")
    jobs = json.loads((run_dir / "jobs.json").read_text())
    assert sum(bool(j.get("server")) for j in jobs) == 1 and sum("task_id" in j for j in jobs) == 2
    assert {r["policy_info"]["metadata"]["policy"] for r in records(run_dir)} == {"scripted"}
    wait_until(lambda: queue_empty("served-server"), 60, "the server job to end")
