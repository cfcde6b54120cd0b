from __future__ import annotations

import math
from fractions import Fraction

import pytest

from sfbench.report.site.claims import binomial_two_sided_p, build_claims, episodes_per_arm, two_proportion_p


def _exact_p(k: int, n: int, p0: Fraction) -> float:
    """Independent reference: exact rational pmf, minimum-likelihood two-sided rule."""
    pmf = [math.comb(n, i) * p0**i * (1 - p0) ** (n - i) for i in range(n + 1)]
    return float(sum(p for p in pmf if p <= pmf[k]))


@pytest.mark.parametrize(("k", "n", "p0"), [(3, 10, "1/2"), (0, 30, "97/100"), (28, 30, "9/10"), (45, 50, "976/1000"),
                                             (7, 7, "1/3")])
def test_binomial_p_matches_an_exact_rational_computation(k, n, p0):
    assert math.isclose(binomial_two_sided_p(k, n, float(Fraction(p0))), _exact_p(k, n, Fraction(p0)),
                        rel_tol=1e-9, abs_tol=1e-300)


def test_binomial_p_textbook_value_and_bounds():
    assert math.isclose(binomial_two_sided_p(3, 10, 0.5), 0.34375)  # 176/512
    assert math.isclose(binomial_two_sided_p(5, 10, 0.5), 1.0)
    assert 0.0 <= binomial_two_sided_p(2000, 2000, 0.5) < 1e-300, "thousands of trials must not overflow"


def test_episodes_per_arm_follows_the_two_proportion_formula():
    # Fleiss (no continuity correction), 5% two-sided, 80% power: 0.5 vs 0.6 needs 388 per arm
    assert episodes_per_arm(0.6, 0.5) == 388
    assert episodes_per_arm(0.5, 0.6) == 388
    assert episodes_per_arm(0.9, 0.9) is None
    # the SF headline gap on libero_spatial (99.4 vs 97.6) needs more than the paper's 500 trials
    assert episodes_per_arm(0.994, 0.976) > 500


def _exact_power(n: int, p1: float, p2: float) -> float:
    """Independent reference: the pooled two-sided 5% z-test's power, summed over every (k1, k2) at n per arm."""
    import numpy as np
    from scipy.stats import binom

    k = np.arange(n + 1)
    k1, k2 = np.meshgrid(k, k, indexing="ij")
    pooled = (k1 + k2) / (2 * n)
    se = np.sqrt(pooled * (1 - pooled) * 2 / n)
    z = np.divide(np.abs(k1 - k2) / n, se, out=np.zeros_like(se), where=se > 0)
    return float((np.outer(binom.pmf(k, n, p1), binom.pmf(k, n, p2)) * (z > 1.959963984540054)).sum())


@pytest.mark.parametrize(("p1", "p2"), [(0.6, 0.5), (0.9, 0.7), (0.95, 0.85), (0.994, 0.976)])
def test_episodes_per_arm_give_the_stated_80_percent_power_exactly_counted(p1, p2):
    n = episodes_per_arm(p1, p2)
    assert 0.78 <= _exact_power(n, p1, p2) <= 0.86, "the normal approximation's n gives about 80% power"
    assert _exact_power(n // 2, p1, p2) < 0.6, "half as many episodes would not resolve the difference"


def test_two_proportion_p_is_symmetric_and_small_for_large_gaps():
    assert math.isclose(two_proportion_p(30, 100, 50, 100), two_proportion_p(50, 100, 30, 100))
    assert two_proportion_p(50, 100, 50, 100) == 1.0
    assert two_proportion_p(10, 500, 400, 500) < 1e-50


def _row(policy, suite, rate, n, source, protocol="libero_oft", tasks="all", low=None, high=None):
    return {"policy": policy, "checkpoint": "c", "suite": suite, "tasks": tasks, "protocol": protocol,
            "success_rate": str(rate), "n_episodes": str(n), "ci_low": str(low if low is not None else rate - .05),
            "ci_high": str(high if high is not None else rate + .05), "source": source}


def test_claims_test_only_rows_of_the_mapped_policy_under_the_papers_protocol_on_all_tasks():
    rows = [_row("OpenVLA-OFT", "libero_spatial", 0.976, 500, "paper"),
            _row("SF", "libero_spatial", 0.994, 500, "paper"),
            _row("openvla_oft", "libero_spatial", 0.9, 50, "measured", low=0.79, high=0.96),
            _row("openvla_oft", "libero_spatial", 0.9, 50, "measured", protocol="libero_oft_fast"),
            _row("openvla_oft", "libero_spatial", 1.0, 30, "measured", tasks="0-2"),
            _row("tiny_vla", "libero_spatial", 0.97, 50, "measured")]
    oft, sf = build_claims(rows, "libero_oft", "OpenVLA-OFT", {"OpenVLA-OFT": "openvla_oft"})
    (check,) = oft.checks
    assert (check.successes, check.n, check.inside, check.verdict) == (45, 50, False, "measured below the claim")
    assert math.isclose(check.p_value, binomial_two_sided_p(45, 50, 0.976))
    assert sorted(why for _, why in oft.not_comparable) == [
        "protocol libero_oft_fast (the paper's is libero_oft)", "tasks 0-2 only"]
    assert oft.episodes_needed is None and oft.paper_diff_p is None, "the baseline has no difference to itself"
    assert not sf.checks and not sf.not_comparable, "no sfbench policy is mapped to the SF row"
    assert sf.episodes_needed == episodes_per_arm(0.994, 0.976)
