"""Faults that must never turn into a wrong score with exit 0 (issue 11, first cases)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sfbench.eval.records import RECORDS_DIR, append_record, load_records
from sfbench.eval.shards import plan_shards, run_shards
from sfbench.report.leaderboard import write_leaderboard
from tests.conftest import run_cli
from tests.fakes import FAKE_SUITE
from tests.report.test_aggregate import rec


def test_an_append_after_a_torn_tail_starts_a_fresh_line(tmp_path):
    path = tmp_path / RECORDS_DIR / "a.jsonl"
    append_record(path, rec(0, 0, True))
    with path.open("a") as f:
        f.write('{"run_id": "r", "suc')  # a crash mid-write: no newline
    append_record(path, rec(0, 1, False))
    assert [r.episode_index for r in load_records(tmp_path)] == [0, 1], "the next record is not lost"


def test_lines_that_are_not_records_are_skipped_with_file_and_line(tmp_path, caplog):
    path = tmp_path / RECORDS_DIR / "a.jsonl"
    append_record(path, rec(0, 0, True))
    with path.open("ab") as f:
        f.write(b'{"not": "a record"}\n\xff\xfe garbage\n[1, 2]\n')
    append_record(path, rec(0, 1, True))
    assert [r.episode_index for r in load_records(tmp_path)] == [0, 1]
    assert sum("a.jsonl" in m and "line" in m for m in caplog.messages) == 3


def test_a_killed_worker_is_not_scored_and_the_rerun_retries_it(spec):
    killing = replace(spec, suite=replace(FAKE_SUITE, benchmark="tests.killing_fake"))
    (shard,) = plan_shards([0], range(3), 10)
    run_shards(killing, [shard], num_workers=2)
    recorded = {r.episode_index: r.failure_reason for r in load_records(killing.run_dir)}
    assert recorded == {1: None, 2: None}, "an infrastructure fault is not a policy failure"
    fixed = replace(killing, suite=FAKE_SUITE)
    assert run_shards(fixed, [shard], num_workers=2) == 1, "the rerun runs only the unscored episode"
    assert sorted(r.episode_index for r in load_records(killing.run_dir)) == [0, 1, 2]


def test_leaderboard_duplicates_count_the_first_finished_whatever_the_folder_names(tmp_path):
    early = replace(rec(0, 0, True, suite="libero_spatial"), finished_at="2026-01-01T00:00:00")
    late = replace(rec(0, 0, False, suite="libero_spatial"), finished_at="2026-01-02T00:00:00")
    for names in (("a", "b"), ("b", "a")):
        root = tmp_path / "".join(names)
        append_record(root / "runs" / names[0] / RECORDS_DIR / "x.jsonl", replace(early, run_id=names[0]))
        append_record(root / "runs" / names[1] / RECORDS_DIR / "x.jsonl", replace(late, run_id=names[1]))
        (row,) = [line for line in write_leaderboard(root).read_text().splitlines()[1:]]
        assert ",1,1.0," in row, f"the first finished record counts ({names}): {row}"


@pytest.mark.parametrize(("override", "expected"), [
    ("protocol.render_size=abc", "render_size='abc'"),
    ("protocol.render_size=-1", "render_size=-1"),
    ("protocol.max_steps.libero_spatial=0", "max_steps.libero_spatial=0"),
    ("protocol.env_seed=x", "env_seed='x'"),
    ("protocol.open_loop_steps=x", "open_loop_steps='x'"),
    ("run_id=../x", "must be one path component"),
    ("run_id=a/b", "must be one path component"),
    ("eval.tasks=[]", "eval.tasks=[] selects no task"),
])
def test_bad_protocol_and_run_ids_are_one_line_and_create_nothing(override, expected, tmp_path):
    proc = run_cli("eval", "policy=zero", override, f"output_dir={tmp_path / 'out'}", cwd=tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert expected in err[0], err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.sim
def test_reusing_a_run_id_with_other_settings_is_refused_naming_the_difference(tmp_path):
    common = ["eval", "policy=zero", "eval.tasks=[0]", "eval.episodes_per_task=1", "eval.videos_per_task=0",
              "protocol.max_steps.libero_spatial=2", "eval.progress=false", f"output_dir={tmp_path}", "run_id=same"]
    assert run_cli(*common).returncode == 0
    other = run_cli(*common, "policy.chunk_size=4")
    assert other.returncode == 2 and "policy.chunk_size: 8 -> 4" in other.stderr, other.stderr
    records = [json.loads(line) for p in (tmp_path / "same" / "records").glob("*.jsonl") for line in p.open()]
    assert len(records) == 1 and records[0]["protocol"] == "libero_oft+custom", "overridden profile says so"
