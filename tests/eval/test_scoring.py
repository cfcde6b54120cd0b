"""Only planned episodes are scored, once each, by one rule: the wrong scores of the fault battery stay fixed."""

from __future__ import annotations

import json
from dataclasses import replace

from sfbench.eval.records import append_record
from sfbench.eval.rundir import RunDir
from sfbench.eval.shards import plan_shards, run_shards
from sfbench.eval.status import merge
from sfbench.report.compare import compare
from sfbench.report.leaderboard import write_leaderboard
from tests.conftest import run_cli


def _planned_run(spec, episodes: int = 2):
    shards = plan_shards([0], range(episodes), 10)
    RunDir(spec.run_dir).write_start("{}\n", {}, {
        "identity": {"suite": spec.suite.name}, "overrides": ["policy=zero"],
        "shards": [{"task_id": s.task_id, "episodes": list(s.episodes)} for s in shards]})
    run_shards(spec, shards)
    return shards


def test_a_record_outside_the_plan_is_never_scored_and_is_reported(spec):
    (shard,) = _planned_run(spec)
    layout = RunDir(spec.run_dir)
    planted = replace(layout.load_records()[0], episode_index=7, init_state_index=7, success=True)
    append_record(layout.record_file(shard.name), planted)
    summary, missing = merge(spec.run_dir)
    assert summary["overall"]["n"] == 2 and not missing, "n counts the 2 planned episodes, not the planted one"
    (extra,) = layout.unplanned_records()
    assert extra.record.episode_index == 7 and extra.where == f"{layout.record_file(shard.name)}:3"
    out = run_cli("merge", f"run={spec.run_dir.name}", f"output_dir={spec.run_dir.parent}")
    assert out.returncode == 0, out.stderr
    assert "1 records outside the run's plan, not scored" in out.stdout and ":3 (task 0 ep 7)" in out.stdout
    status = run_cli("status", f"run={spec.run_dir.name}", f"output_dir={spec.run_dir.parent}")
    assert "outside the run's plan" in status.stdout, status.stdout


def test_the_leaderboard_scores_only_planned_episodes(spec, tmp_path):
    spec = replace(spec, run_dir=tmp_path / "runs" / "r")
    (shard,) = _planned_run(spec)
    layout = RunDir(spec.run_dir)
    append_record(layout.record_file(shard.name), replace(layout.load_records()[0], episode_index=7))
    rows = write_leaderboard(tmp_path).read_text().splitlines()
    (row,) = [r for r in rows[1:] if ",measured," in r]
    assert ",2,0.0," in row, f"n is the plan's 2 episodes: {row}"


def test_compare_pairs_the_first_finished_record_of_a_duplicated_episode(spec, tmp_path):
    runs = {}
    for name in ("a", "b"):
        runs[name] = replace(spec, run_dir=tmp_path / name, run_id=name)
        _planned_run(runs[name])
    layout = RunDir(runs["a"].run_dir)
    first = layout.load_records()[0]
    late = replace(first, success=not first.success, finished_at="9999-01-01T00:00:00")
    append_record(layout.record_file("extra"), late)  # a later duplicate in another file
    c = compare(runs["a"].run_dir, runs["b"].run_dir)
    assert c.difference == 0.0 and c.n_pairs == 2, "the later duplicate changes nothing"


def test_a_damaged_command_json_is_one_line(spec):
    _planned_run(spec)
    (spec.run_dir / "command.json").write_text("{torn")
    for command in ("status", "merge"):
        proc = run_cli(command, f"run={spec.run_dir.name}", f"output_dir={spec.run_dir.parent}")
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1 and "command.json is damaged (not JSON" in err[0], proc.stderr
    assert json.loads((spec.run_dir / "protocol.json").read_text()) == {}
