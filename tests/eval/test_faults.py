"""Faults that must never turn into a wrong score with exit 0: each case is a test, so it stays fixed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sfbench.config.compose import compose_config
from sfbench.core.errors import InvalidConfig
from sfbench.eval.locks import locked
from sfbench.eval.records import RECORDS_DIR, append_record, load_records
from sfbench.eval.run import make_run_spec, start_run
from sfbench.eval.rundir import RunDir
from sfbench.eval.shards import plan_shards, run_shards
from sfbench.eval.status import missing_episodes, shard_status
from sfbench.policies.tiny_vla import TinyVLA, TinyVLAConfig
from sfbench.policies.tiny_vla.checkpoint import save_checkpoint
from sfbench.report.leaderboard import write_leaderboard
from tests.conftest import REPO, run_cli
from tests.fakes import FAKE_SUITE
from tests.policies.test_tiny_vla import SMALL, STATS
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
    infra = RunDir(killing.run_dir).load_infra_errors()
    assert list(infra) == [(0, 0)] and len(infra[0, 0]) == 2, "tried once, retried once (infra_retries=1), logged"
    assert "worker process died" in infra[0, 0][-1]
    killing.run_dir.joinpath("command.json").write_text(json.dumps({"shards": [{"task_id": 0, "episodes": [0, 1, 2]}]}))
    assert shard_status(killing.run_dir)[0].infra_errors == 1 and missing_episodes(killing.run_dir) == [(0, 0)]
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


def _shard_records(run_dir: Path) -> list[tuple]:
    """Every record line of the run (duplicates included)."""
    return [(r["task_id"], r["episode_index"]) for p in (run_dir / RECORDS_DIR).glob("*.jsonl")
            for r in map(json.loads, p.read_text().splitlines()) if r]


def test_a_shard_locked_elsewhere_is_waited_for_and_only_its_leftovers_run_here(spec):
    a, b = plan_shards([0], range(4), 2)
    layout, result = RunDir(spec.run_dir), {}
    with locked([layout.record_file(a.name)]):  # another process is running shard a
        worker = threading.Thread(target=lambda: result.update(ran=run_shards(spec, [a, b])))
        worker.start()
        deadline = time.monotonic() + 60
        while len(load_records(spec.run_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {r.episode_index for r in load_records(spec.run_dir)} == set(b.episodes), "the free shard runs"
        # the other process records one episode of shard a, then dies
        append_record(layout.record_file(a.name), replace(rec(0, a.episodes[0], True, suite=FAKE_SUITE.name),
                                                          run_id=spec.run_id))
    worker.join(60)
    assert result["ran"] == 3, "shard b, then what the other process left of shard a"
    lines = _shard_records(spec.run_dir)
    assert sorted(lines) == [(0, e) for e in range(4)], f"every episode once: {lines}"


def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_parent_at_once_and_quietly(sig, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tests.eval.run_slow_fake", str(tmp_path / "run")], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(kids := _children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # the workers are mid-step (each step takes a second)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 0.5
    while _alive(kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(kids) >= 2 and not _alive(kids), f"workers outlived their parent: {_alive(kids)}"
    _, stderr = proc.communicate(timeout=30)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_a_damaged_run_is_skipped_by_the_leaderboard_with_a_warning(tmp_path, caplog):
    append_record(tmp_path / "runs" / "good" / RECORDS_DIR / "x.jsonl", rec(0, 0, True, suite="libero_spatial"))
    bad = tmp_path / "runs" / "bad"
    (bad / RECORDS_DIR / "x.jsonl").mkdir(parents=True)  # unreadable as a file
    (tmp_path / "runs" / "bad_command" / RECORDS_DIR).mkdir(parents=True)
    (tmp_path / "runs" / "bad_command" / "command.json").write_text("{torn")
    rows = write_leaderboard(tmp_path).read_text().splitlines()[1:]
    assert len(rows) == 1 and rows[0].startswith("p,c,"), rows
    assert sum("Skipping run" in m for m in caplog.messages) == 2, caplog.messages


def test_records_with_wrong_field_types_are_skipped(tmp_path, caplog):
    path = tmp_path / RECORDS_DIR / "a.jsonl"
    append_record(path, rec(0, 0, True))
    append_record(path, replace(rec(0, 1, True), success="yes"))
    append_record(path, replace(rec(0, 2, True), task_id="0"))
    assert [r.episode_index for r in load_records(tmp_path)] == [0]
    assert sum("success='yes'" in m or "task_id='0'" in m for m in caplog.messages) == 2


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "out").write_text("not a directory")
    for command in (["eval", "policy=zero"], ["train", f"data.path={tmp_path}"]):
        proc = run_cli(*command, f"output_dir={tmp_path / 'out' / 'runs'}", cwd=tmp_path)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1 and "is a file, not a directory" in err[0], proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.sim
def test_two_concurrent_evals_of_one_run_share_its_shards(tmp_path):
    args = ["eval", "policy=zero", "eval.tasks=[0,1]", "eval.episodes_per_task=2", "eval.episodes_per_shard=1",
            "eval.videos_per_task=0", "protocol.max_steps.libero_spatial=20", "eval.progress=false",
            f"output_dir={tmp_path}", "run_id=shared"]
    exe = Path(sys.executable).with_name("sfbench")
    procs = [subprocess.Popen([str(exe), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(_shard_records(tmp_path / "shared")) == [(0, 0), (0, 1), (1, 0), (1, 1)], "no episode twice"
    overall = [next(line.split() for line in out.splitlines() if line.startswith("overall")) for out, _ in outs]
    assert [o[1] for o in overall] == ["4", "4"], f"each command reports the whole run: {overall}"


@pytest.mark.sim
def test_two_evals_of_different_policies_started_at_once_on_one_run_id_are_never_mixed(tmp_path):
    args = ["eval", "policy=zero", "eval.tasks=[0]", "eval.episodes_per_task=2", "eval.videos_per_task=0",
            "protocol.max_steps.libero_spatial=5", "eval.progress=false", f"output_dir={tmp_path}", "run_id=same"]
    exe = Path(sys.executable).with_name("sfbench")
    procs = [subprocess.Popen([str(exe), *args, *extra], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for extra in ([], ["policy.chunk_size=4"])]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    refused = next(err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode == 2)
    assert "policy.chunk_size" in refused and len(refused.strip().splitlines()) == 1, refused
    assert sorted(_shard_records(tmp_path / "same")) == [(0, 0), (0, 1)]


@pytest.mark.sim
def test_sigterm_stops_an_eval_and_its_workers_with_one_line(tmp_path):
    exe = Path(sys.executable).with_name("sfbench")
    proc = subprocess.Popen([str(exe), "eval", "policy=zero", "eval.tasks=[0]", "eval.episodes_per_task=2",
                             "eval.num_workers=2", "eval.videos_per_task=0", "eval.progress=false",
                             f"output_dir={tmp_path}"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(kids := _children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(8)  # the workers are stepping
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("sfbench: terminated"), stderr
    deadline = time.monotonic() + 5
    while _alive(kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(kids)


def test_new_weights_at_the_same_path_are_another_run(tmp_path):
    path = tmp_path / "ckpt"
    overrides = ["policy=tiny_vla", f"policy.checkpoint={path}", *(f"policy.{k}={v}" for k, v in SMALL.items()),
                 "eval.tasks=[0]", "eval.episodes_per_task=1", f"output_dir={tmp_path / 'runs'}"]
    specs = []
    for seed in (0, 1):  # retrain: new weights, same directory
        torch.manual_seed(seed)
        save_checkpoint(path, TinyVLA(TinyVLAConfig(**SMALL)), TinyVLAConfig(**SMALL), STATS, step=1)
        specs.append(make_run_spec(compose_config("eval", overrides)))
    (old, _), (new, _) = specs
    assert old.checkpoint_sha != new.checkpoint_sha and old.run_id != new.run_id, "the run id follows the weights"
    cfg = compose_config("eval", [*overrides, "run_id=same"])
    old_spec, shards = make_run_spec(cfg)
    start_run(cfg, replace(old_spec, checkpoint_sha=old.checkpoint_sha), shards, [])
    with pytest.raises(InvalidConfig, match=f"checkpoint_sha: '{old.checkpoint_sha}' -> '{new.checkpoint_sha}'"):
        start_run(cfg, old_spec, shards, [])


def test_a_resume_of_the_same_plan_keeps_the_start_files_and_a_longer_plan_rewrites_them(tmp_path):
    base = ["policy=zero", "eval.tasks=[0]", "eval.episodes_per_task=1", f"output_dir={tmp_path}", "run_id=same"]
    cfg = compose_config("eval", base)
    spec, shards = make_run_spec(cfg)
    start_run(cfg, spec, shards, base)
    layout = RunDir(spec.run_dir)
    started = {p.name: p.read_bytes() for p in (layout.config, layout.path / "command.json")}
    resumed = compose_config("eval", [*base[::-1], "eval.progress=false"])  # another order, another display key
    start_run(resumed, *make_run_spec(resumed), [*base[::-1], "eval.progress=false"])
    assert {p.name: p.read_bytes() for p in (layout.config, layout.path / "command.json")} == started
    longer = compose_config("eval", [*base, "eval.episodes_per_task=2"])
    start_run(longer, *make_run_spec(longer), [*base, "eval.episodes_per_task=2"])
    command = layout.load_command()
    assert command["shards"] == [{"task_id": 0, "episodes": [0, 1]}], "the longer plan is the run's plan now"
    assert "eval.episodes_per_task=2" in command["overrides"]
