"""The seed-pooling analysis of results/experiments/oft_family_tiny_seeds (analyze.py) on synthetic outcomes."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parents[1] / "results/experiments/oft_family_tiny_seeds/analyze.py"
spec = importlib.util.spec_from_file_location("oft_seeds_analyze", SCRIPT)
analyze = importlib.util.module_from_spec(spec)
spec.loader.exec_module(analyze)

KEYS = [(t, e) for t in range(3) for e in range(40, 50)]  # 30 episodes: tasks 0-2, init states 40-49


def arm(rates_per_seed: list[list[float]], seed: int) -> dict:
    """label outcomes whose seed i succeeds on the first round(rate * 30) episodes at each step."""
    rng = np.random.default_rng(seed)
    runs = {}
    for i, rates in enumerate(rates_per_seed):
        runs[f"run-s{i}"] = {}
        for step, rate in zip((300, 600, 900), rates, strict=True):
            wins = set(rng.permutation(len(KEYS))[: round(rate * len(KEYS))].tolist())
            runs[f"run-s{i}"][step] = {k: j in wins for j, k in enumerate(KEYS)}
    return runs


def test_crossings_speedups_and_paired_tests_pool_the_seeds():
    outcomes = {"oft": arm([[0.1, 0.5, 0.7], [0.1, 0.4, 0.7], [0.2, 0.6, 0.8]], 0),
                "sf": arm([[0.6, 0.8, 0.9], [0.5, 0.8, 0.9], [0.6, 0.9, 0.9]], 1)}
    result = analyze.analyze(outcomes, "oft", [0.5, 0.95], n_boot=300)
    half, high = result["thresholds"]
    assert half["arms"]["oft"]["per_seed"] == [600, 900, 600] and half["arms"]["oft"]["pooled"] == 600
    assert half["arms"]["sf"]["per_seed"] == [300, 300, 300] and half["arms"]["sf"]["speedup"] == 2.0
    assert half["arms"]["sf"]["ci_low"] <= 2.0 <= half["arms"]["sf"]["ci_high"]
    assert half["arms"]["oft"]["ci_low"] == half["arms"]["oft"]["ci_high"] == 1.0, "the baseline against itself"
    assert math.isinf(high["arms"]["sf"]["pooled"]) and math.isnan(high["arms"]["sf"]["speedup"]), "never reached"
    assert high["arms"]["sf"]["undefined_share"] > 0.5
    paired = result["paired"]["sf"]
    assert paired["seed_pairs"] == 3 and paired["episodes"] == 90
    assert paired["difference"] == pytest.approx((27 * 3 - 21 - 21 - 24) / 90)
    assert paired["ci_low"] < paired["difference"] < paired["ci_high"]
    assert analyze.table(result, "oft").count("\n") == 10
    assert result["paired_by_step"]["sf"][900] == paired and len(result["paired_by_step"]["sf"]) == 3


def test_exact_mcnemar_and_the_interval_of_censored_resamples():
    assert analyze.mcnemar_p(10, 0) == pytest.approx(2 / 1024)
    assert analyze.mcnemar_p(3, 3) == 1.0 and analyze.mcnemar_p(0, 0) == 1.0
    low, high, undefined = analyze.interval(np.array([1.0, 2.0, math.inf, math.nan]))
    assert (low, high, undefined) == (1.0, math.inf, 0.25)
    assert analyze.ratio(math.inf, 300.0) == math.inf and analyze.ratio(600.0, math.inf) == 0.0
