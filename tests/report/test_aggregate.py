from __future__ import annotations

import math

import pytest

from sfbench.eval.records import EpisodeRecord
from sfbench.report.aggregate import aggregate, format_summary, wilson_interval


def rec(task: int, ep: int, success: bool, failure: str | None = None, suite: str = "s") -> EpisodeRecord:
    return EpisodeRecord(run_id="r", policy="p", checkpoint="c", suite=suite, task_id=task, task_name=f"t{task}",
                         episode_index=ep, init_state_index=ep, seed=7 + ep, protocol="x", protocol_hash="h",
                         success=success, steps=1, wall_s=0.1, failure_reason=failure)


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (5, 10, 0.2366, 0.7634),   # textbook Wilson values
    (0, 1, 0.0, 0.7935),
    (10, 10, 0.7225, 1.0),
    (48, 50, 0.8654, 0.9890),
])
def test_wilson_interval_matches_reference_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert math.isclose(lo, low, abs_tol=1e-4) and math.isclose(hi, high, abs_tol=1e-4)


def test_wilson_interval_contains_the_point_estimate():
    for n in range(1, 30):
        for k in range(n + 1):
            lo, hi = wilson_interval(k, n)
            assert lo <= k / n <= hi


def test_aggregate_pools_tasks_and_counts_errors():
    records = [rec(0, 0, True), rec(0, 1, False), rec(1, 0, True), rec(1, 1, False, "policy_nan: x")]
    s = aggregate(records)
    assert [t["successes"] for t in s["tasks"]] == [1, 1]
    assert s["suites"]["s"]["n"] == 4 and s["suites"]["s"]["success_rate"] == 0.5
    assert s["overall"]["errors"] == 1
    assert "overall" in format_summary(s)
