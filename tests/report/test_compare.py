from __future__ import annotations

from dataclasses import replace

import pytest

from sfbench.core.errors import InvalidConfig
from sfbench.eval.records import RECORDS_DIR, append_record
from sfbench.report.compare import compare, mcnemar_exact, paired_difference_ci
from tests.report.test_aggregate import rec


def write(run_dir, outcomes, **kw):
    for (task, ep), ok in outcomes.items():
        append_record(run_dir / RECORDS_DIR / "x.jsonl", replace(rec(task, ep, ok), **kw))


def test_mcnemar_exact_matches_the_binomial_tail():
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_paired_interval_contains_the_difference_and_shrinks_with_n():
    low, high = paired_difference_ci(6, 2, 20)
    assert low < 4 / 20 < high
    low_big, high_big = paired_difference_ci(60, 20, 200)
    assert high_big - low_big < high - low


def test_compare_pairs_identical_init_states_only(tmp_path):
    write(tmp_path / "a", {(0, 0): True, (0, 1): True, (0, 2): False, (1, 0): True})
    write(tmp_path / "b", {(0, 0): False, (0, 1): True, (0, 2): False, (9, 9): True})
    c = compare(tmp_path / "a", tmp_path / "b")
    assert (c.n_pairs, c.both, c.only_a, c.only_b, c.neither) == (3, 1, 1, 0, 1)
    assert c.difference == pytest.approx(1 / 3) and c.p_value == 1.0


def test_runs_of_different_protocols_are_refused(tmp_path):
    write(tmp_path / "a", {(0, 0): True})
    write(tmp_path / "b", {(0, 0): True}, protocol_hash="other")
    with pytest.raises(InvalidConfig, match="differ in protocol"):
        compare(tmp_path / "a", tmp_path / "b")
