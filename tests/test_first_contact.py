"""A new user's first commands: version, dry runs, run ids that follow the task set, help that explains."""

from __future__ import annotations

import re

from tests.conftest import run_cli

FAST = ["policy=zero", "protocol=libero_oft_fast", "eval.videos_per_task=0", "eval.progress=false"]


def _plan(*args: str, cwd) -> dict[str, str]:
    proc = run_cli("eval", *FAST, *args, "eval.dry_run=true", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return dict(re.findall(r"^  ([\w ]+?):\s+(.*)$", proc.stdout, re.M))


def test_version_prints_the_package_version_and_commit():
    proc = run_cli("--version")
    assert proc.returncode == 0 and re.fullmatch(r"sfbench \d+\.\d+\.\d+\+\w+\n", proc.stdout), proc.stdout


def test_a_dry_run_prints_the_plan_and_creates_nothing(tmp_path):
    plan = _plan("eval.tasks=[0,1]", "eval.episodes_per_task=3", cwd=tmp_path)
    assert plan["episodes"] == "6 planned, 0 already recorded, 6 to run" and plan["shards"].startswith("2 via")
    assert re.search(r"libero_oft_fast \(hash [0-9a-f]{12}\)", plan["protocol"])
    assert list(tmp_path.iterdir()) == [], "a dry run writes nothing"


def test_the_task_set_is_part_of_the_default_run_id_and_more_episodes_resume(tmp_path):
    two = _plan("eval.tasks=[0,1]", "eval.episodes_per_task=2", cwd=tmp_path)["run id"]
    one = _plan("eval.tasks=[0]", "eval.episodes_per_task=2", cwd=tmp_path)["run id"]
    more = _plan("eval.tasks=[0,1]", "eval.episodes_per_task=5", cwd=tmp_path)["run id"]
    assert one != two, "a command that differs in eval.tasks starts its own run"
    assert more == two, "raising episodes_per_task resumes the same run"


def test_a_dry_run_of_a_started_run_counts_what_is_recorded(tmp_path):
    args = ["eval.tasks=[0]", "eval.episodes_per_task=1", "protocol.max_steps.libero_spatial=2",
            f"output_dir={tmp_path}", "run_id=r"]
    assert run_cli("eval", *FAST, *args, cwd=tmp_path).returncode == 0
    plan = _plan(*args[:1], "eval.episodes_per_task=3", *args[2:], cwd=tmp_path)
    assert plan["episodes"] == "3 planned, 1 already recorded, 2 to run", plan
    assert "exists: this command resumes it" in plan["run dir"]
    refused = run_cli("eval", *FAST, "eval.tasks=[1]", *args[1:], "eval.dry_run=true", cwd=tmp_path)
    assert refused.returncode == 2 and "tasks: [0] -> [1]" in refused.stderr, "validated like the real run"


def test_an_output_dir_that_cannot_be_created_is_one_line(tmp_path):
    proc = run_cli("eval", "policy=zero", "output_dir=/proc/sfbench/runs", cwd=tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "cannot be created: /proc refuses new folders" in err[0], err


def test_help_explains_each_key_and_train_lists_only_trainable_policies():
    proc = run_cli("eval", "--help")
    lines = proc.stdout.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("  eval.first_episode ="))
    assert "first episode" in lines[i + 1].lower(), lines[i : i + 2]
    i = next(n for n, line in enumerate(lines) if line.startswith("  launcher.wait ="))
    assert "Block until every job ends" in lines[i + 1], "launcher keys are explained from LauncherConfig's docstring"
    train = run_cli("train", "--help").stdout
    policies = re.search(r"policy=<([^>]*)>", train).group(1).split("|")
    assert "tiny_vla_sf" in policies and "openvla_sf" in policies
    assert not {"scripted", "zero", "random", "remote"} & set(policies), policies
