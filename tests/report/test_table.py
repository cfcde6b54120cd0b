from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import replace

import pytest

from sfbench.cli import main
from tests.conftest import REPO
from tests.report.test_aggregate import rec
from tests.report.test_leaderboard import write_run


@pytest.fixture
def results(weird_tmp_path):
    shutil.copytree(REPO / "results" / "reference", weird_tmp_path / "reference")
    write_run(weird_tmp_path, "a", [replace(rec(t, 0, t == 0, suite="libero_spatial"), protocol_hash="h1")
                                    for t in range(3)])
    write_run(weird_tmp_path, "b", [replace(rec(0, 0, True, suite="libero_goal"), protocol="y", protocol_hash="h2")])
    return weird_tmp_path


def _run(capsys, *args):
    code = main(["leaderboard", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_csv_output_is_the_filtered_csv(results, capsys):
    code, out, _ = _run(capsys, f"results_dir={results}", "leaderboard.format=csv", "leaderboard.suite=libero_spatial")
    assert code == 0
    printed = list(csv.DictReader(io.StringIO(out)))
    written = [r for r in csv.DictReader((results / "leaderboard.csv").open()) if r["suite"] == "libero_spatial"]
    assert sorted(map(tuple, (r.values() for r in printed))) == sorted(map(tuple, (r.values() for r in written)))
    assert {r["source"] for r in printed} == {"paper", "measured"} and len(printed) == 11


def test_json_output_has_numbers_and_combined_filters(results, capsys):
    code, out, _ = _run(capsys, f"results_dir={results}", "--format", "json", "leaderboard.policy=p",
                        "leaderboard.protocol=x")
    (row,) = json.loads(out)
    assert code == 0 and row["n_episodes"] == 3 and abs(row["success_rate"] - 0.3333) < 1e-9
    assert (row["suite"], row["tasks"], row["protocol_hash"]) == ("libero_spatial", "0-2", "h1")


def test_table_and_markdown_keep_protocols_apart(results, capsys):
    code, out, _ = _run(capsys, f"results_dir={results}", "leaderboard.source=measured")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["protocol", "suite", "tasks", "policy"]
    assert "" in lines[2:-2], "a blank line separates the two protocols"
    assert any("33.3%" in ln and "x h1" in ln for ln in lines) and lines[-1].startswith("leaderboard: ")
    code, out, _ = _run(capsys, f"results_dir={results}", "--format=markdown", "leaderboard.suite=libero_goal",
                        "leaderboard.source=measured")
    assert out.splitlines()[2] == "| y h2 | libero_goal | 0 | p | c | 100.0% | [20.6, 100.0] | 1 | measured |"


@pytest.mark.parametrize(("args", "message"), [
    (["leaderboard.format=xml"], "Unknown leaderboard format 'xml'"),
    (["leaderboard.suite=libero_spatail"], "Did you mean 'libero_spatial'?"),
    (["leaderboard.colour=red"], "Unknown leaderboard option"),
])
def test_bad_options_are_one_line_errors(results, capsys, args, message):
    code, out, err = _run(capsys, f"results_dir={results}", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
