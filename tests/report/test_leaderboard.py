from __future__ import annotations

import csv
import shutil
from dataclasses import replace

from sfbench.eval.records import RECORDS_DIR, append_record
from sfbench.report.leaderboard import write_leaderboard
from tests.conftest import REPO
from tests.report.test_aggregate import rec


def write_run(results, run_id, records):
    for r in records:
        append_record(results / "runs" / run_id / RECORDS_DIR / "x.jsonl", replace(r, run_id=run_id))


def read(path):
    return list(csv.DictReader(path.open()))


def test_measured_rows_never_merge_protocols_and_overall_is_the_mean(tmp_path):
    suites = ["libero_spatial", "libero_object", "libero_goal", "libero_10"]
    for i, suite in enumerate(suites):  # suite i: i of 4 episodes of each of its 10 tasks succeed
        write_run(tmp_path, f"a{i}", [replace(rec(t, ep, ep < i, suite=suite), protocol_hash="h1")
                                      for t in range(10) for ep in range(4)])
    write_run(tmp_path, "b", [replace(rec(0, 0, True, suite="libero_spatial"), protocol_hash="h2")])
    rows = read(write_leaderboard(tmp_path))
    spatial = [r for r in rows if r["suite"] == "libero_spatial"]
    assert sorted((r["protocol_hash"], r["n_episodes"], r["tasks"]) for r in spatial) == [
        ("h1", "40", "all"), ("h2", "1", "0")]
    (overall,) = [r for r in rows if r["suite"] == "libero_overall"]
    assert float(overall["success_rate"]) == (0 + 0.25 + 0.5 + 0.75) / 4
    assert overall["protocol_hash"] == "h1" and overall["source"] == "measured"


def test_paper_rows_come_from_results_reference(tmp_path):
    shutil.copytree(REPO / "results" / "reference", tmp_path / "reference")
    rows = read(write_leaderboard(tmp_path))
    sf = {r["suite"]: r for r in rows if r["policy"].startswith("Spatial Forcing")}
    assert float(sf["libero_spatial"]["success_rate"]) == 0.994
    assert float(sf["libero_overall"]["success_rate"]) == 0.985
    assert sf["libero_10"]["n_episodes"] == "500" and sf["libero_10"]["source"] == "paper"
    assert {r["policy"] for r in rows} >= {"OpenVLA-OFT", "GeoVLA", "3D-CAVLA", "SpatialVLA", "pi0"}


def test_rows_over_different_task_sets_are_never_one_cell(tmp_path):
    write_run(tmp_path, "three", [rec(t, ep, True, suite="libero_spatial") for t in range(3) for ep in range(2)])
    write_run(tmp_path, "other", [rec(t, 0, False, suite="libero_spatial") for t in (3, 4, 7)])
    rows = read(write_leaderboard(tmp_path))
    cells = sorted((r["tasks"], r["episodes_per_task"], r["n_episodes"], r["success_rate"]) for r in rows)
    assert cells == [("0-2", "2", "6", "1.0"), ("3-4,7", "1", "3", "0.0")], "a 3-task score never reads as the suite's"
    assert not [r for r in rows if r["suite"] == "libero_overall"], "no overall from partial suites"


def test_rows_and_summaries_name_the_sfbench_that_ran_the_episodes(tmp_path):
    from sfbench.eval.run import summarize

    old, new = {"sfbench": "0.1.0+aaaa"}, {"sfbench": "0.1.0+bbbb"}
    suites = ["libero_spatial", "libero_object", "libero_goal", "libero_10"]
    for i, suite in enumerate(suites):  # libero_10's episodes were recorded by a later sfbench
        write_run(tmp_path, f"a{i}", [replace(rec(t, 0, True, suite=suite), versions=new if i == 3 else old)
                                      for t in range(10)])
    rows = {r["suite"]: r["sfbench_version"] for r in read(write_leaderboard(tmp_path))}
    assert rows["libero_spatial"] == "0.1.0+aaaa" and rows["libero_10"] == "0.1.0+bbbb"
    assert rows["libero_overall"] == "0.1.0+aaaa, 0.1.0+bbbb"
    write_run(tmp_path, "mixed", [replace(rec(0, 0, True), versions=old), replace(rec(0, 1, True), versions={})])
    assert summarize(tmp_path / "runs" / "mixed")["sfbench_version"] == "0.1.0+aaaa, unknown"
