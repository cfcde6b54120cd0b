"""``sfbench eval`` and ``sfbench leaderboard`` end to end in the real simulator (marker ``sim``)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.sim


def records_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((run_dir / "records").glob("*.jsonl")) for line in p.open()]


def test_eval_writes_records_summary_video_and_leaderboard(tmp_path):
    shutil_copy_reference(tmp_path)
    args = ["eval", "suite=libero_spatial", "policy=scripted", "eval.tasks=[0,1]", "eval.episodes_per_task=2",
            f"output_dir={tmp_path / 'runs'}", "run_id=e2e"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = tmp_path / "runs" / "e2e"
    records = records_of(run_dir)
    assert sorted((r["task_id"], r["episode_index"]) for r in records) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(r["protocol"] == "libero_oft" and len(r["protocol_hash"]) == 12 for r in records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["overall"]["n"] == 4 and 0 <= summary["overall"]["ci_low"] <= summary["overall"]["ci_high"] <= 1
    assert "suite libero_spatial" in proc.stdout and "95% CI" in proc.stdout
    videos = sorted((run_dir / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["task000_ep0000.mp4", "task001_ep0000.mp4"]
    frame = imageio.get_reader(videos[0]).get_data(0)
    assert frame.shape[1] == 512, "both 256 px views side by side"

    rerun = run_cli(*args)
    assert rerun.returncode == 0 and len(records_of(run_dir)) == 4, "a rerun resumes: nothing is redone"

    parallel = run_cli(*args[:-1], "run_id=parallel", "eval.num_workers=2", "eval.videos_per_task=0")
    assert parallel.returncode == 0, parallel.stderr[-2000:]
    same = lambda rs: {(r["task_id"], r["episode_index"]): (r["success"], r["steps"]) for r in rs}  # noqa: E731
    assert same(records_of(tmp_path / "runs" / "parallel")) == same(records), "2 workers = sequential, per episode"

    board = run_cli("leaderboard", f"results_dir={tmp_path}")
    assert board.returncode == 0, board.stderr
    rows = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    (measured,) = [r for r in rows if r["source"] == "measured"]
    assert (measured["policy"], measured["suite"], measured["n_episodes"]) == ("scripted", "libero_spatial", "4"), \
        "the two runs of one (policy, checkpoint, suite, protocol) cell merge by episode key"
    assert any(r["source"] == "paper" and r["policy"] == "OpenVLA-OFT" for r in rows)


def shutil_copy_reference(dst: Path) -> None:
    import shutil

    shutil.copytree(REPO / "results" / "reference", dst / "reference")


def test_interrupted_run_keeps_finished_episodes_and_resumes(tmp_path):
    args = ["eval", "suite=libero_object", "policy=zero", "eval.tasks=[3]", "eval.episodes_per_task=3",
            "eval.videos_per_task=0", f"output_dir={tmp_path}", "run_id=int"]
    exe = Path(sys.executable).with_name("sfbench")
    # A shell starts background jobs with SIGINT ignored, and children inherit that; restore the
    # default so that the CLI sees the Ctrl-C a user would send.
    proc = subprocess.Popen([str(exe), *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    records_dir = tmp_path / "int" / "records"
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not any(p.stat().st_size for p in records_dir.glob("*.jsonl")):
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()  # never leave a simulator running after a failed assertion
    assert proc.returncode == 130, err[-2000:]
    assert "rerun the same command to resume" in err
    kept = records_of(tmp_path / "int")
    assert 1 <= len(kept) < 3
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = records_of(tmp_path / "int")
    assert sorted(r["episode_index"] for r in final) == [0, 1, 2], "every episode exactly once"
    assert final[: len(kept)] == kept, "finished episodes are not rerun"
    assert os.path.exists(tmp_path / "int" / "summary.json")
