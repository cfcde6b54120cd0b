"""sfbench serve policy=scripted + sfbench eval policy=remote on real LIBERO = the in-process expert."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.sim

EVAL = ["eval", "suite=libero_spatial", "eval.tasks=[0]", "eval.episodes_per_task=2", "eval.videos_per_task=0",
        "eval.progress=false", "eval.num_workers=2"]


def outcomes(run_dir: Path) -> dict:
    recs = [json.loads(line) for p in (run_dir / "records").glob("*.jsonl") for line in p.open()]
    return {(r["task_id"], r["episode_index"]): (r["success"], r["steps"], r["failure_reason"]) for r in recs}, recs


def test_remote_scripted_expert_matches_the_in_process_one(tmp_path):
    server = subprocess.Popen([str(Path(sys.executable).with_name("sfbench")), "serve", "policy=scripted",
                               "serve.port=0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        port = re.search(r"ws://127\.0\.0\.1:(\d+)", line).group(1)
        remote = run_cli(*EVAL, "policy=remote", f"policy.port={port}", f"output_dir={tmp_path}", "run_id=remote")
        assert remote.returncode == 0, remote.stderr[-2000:]
    finally:
        server.terminate()
        assert server.wait(30) == 0, "SIGTERM stops the server cleanly"
    local = run_cli(*EVAL, "policy=scripted", f"output_dir={tmp_path}", "run_id=local")
    assert local.returncode == 0, local.stderr[-2000:]
    (want, _), (got, recs) = outcomes(tmp_path / "local"), outcomes(tmp_path / "remote")
    assert got == want and len(got) == 2
    assert all(r["policy_info"]["metadata"]["policy"] == "scripted" for r in recs), "the server is on record"
    served = run_cli(*EVAL, "policy=scripted", "server.enabled=true", f"output_dir={tmp_path}", "run_id=served")
    assert served.returncode == 0, served.stderr[-2000:]
    got, recs = outcomes(tmp_path / "served")
    assert got == want, "one server thread for the run's 2 env workers gives the in-process outcomes"
    assert {r["policy"] for r in recs} == {"scripted"} and all(r["policy_info"]["server"] for r in recs)
    assert not (tmp_path / "served" / "server.json").exists(), "the address is gone with the server"
