"""Paper claims checked against measured rows: interval verdict, exact binomial p, episodes needed.

A paper row (``results/reference/*.csv``) is checked only against measured rows of the same suite,
over all its tasks, under the protocol the paper evaluated with (``report.claims_protocol``): a
score under another protocol or on a task subset is listed as not comparable, never tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sfbench.report.aggregate import Z_95
from sfbench.report.leaderboard import ALL_TASKS

Z_POWER_80 = 0.8416212335729143  # standard normal quantile at 0.80: 80% power


def binomial_two_sided_p(successes: int, n: int, p0: float) -> float:
    """Exact two-sided binomial test of ``successes`` out of ``n`` against rate ``p0``.

    The p-value sums the probabilities of every count no more likely than the observed one (the
    "minimum likelihood" rule of R's ``binom.test`` and SciPy's ``binomtest``), in log space so
    that thousands of trials do not overflow.
    """
    if n == 0:
        return 1.0
    if p0 <= 0.0 or p0 >= 1.0:
        return 1.0 if successes == round(p0 * n) else 0.0
    log_pmf = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
               + k * math.log(p0) + (n - k) * math.log1p(-p0) for k in range(n + 1)]
    observed = log_pmf[successes] + 1e-7  # relative tolerance for ties, as SciPy
    return min(1.0, sum(math.exp(v) for v in log_pmf if v <= observed))


def episodes_per_arm(p1: float, p2: float, z_alpha: float = Z_95, z_power: float = Z_POWER_80) -> int | None:
    """Episodes per policy for a two-sided two-proportion test (5% level, 80% power) to tell ``p1`` from ``p2``.

    The normal-approximation sample size of the pooled z-test (Fleiss, without continuity
    correction), for an unpaired design: each policy on its own independent episodes. ``None`` when
    the rates are equal (no finite number resolves a zero difference).
    """
    if p1 == p2:
        return None
    p_bar = (p1 + p2) / 2
    numerator = z_alpha * math.sqrt(2 * p_bar * (1 - p_bar)) + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil((numerator / (p1 - p2)) ** 2)


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p of the pooled two-proportion z-test (is the paper's own difference resolved by its n?)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(k1 / n1 - k2 / n2) / se
    return math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class Check:
    """One measured row tested against a paper rate."""

    row: dict[str, str]
    successes: int
    n: int
    inside: bool
    verdict: str
    p_value: float


@dataclass
class Claim:
    """A paper row, its difference from the baseline row, and every measured row beside it."""

    paper: dict[str, str]
    baseline_rate: float | None
    episodes_needed: int | None
    paper_diff_p: float | None
    checks: list[Check] = field(default_factory=list)
    not_comparable: list[tuple[dict[str, str], str]] = field(default_factory=list)


def check_row(paper_rate: float, row: dict[str, str]) -> Check:
    """The verdict of one measured row: is the paper's rate inside its 95% interval; exact p against it."""
    n = int(row["n_episodes"])
    k = round(float(row["success_rate"]) * n)
    low, high = float(row["ci_low"]), float(row["ci_high"])
    inside = low <= paper_rate <= high
    verdict = "consistent" if inside else ("measured below the claim" if high < paper_rate
                                           else "measured above the claim")
    return Check(row, k, n, inside, verdict, binomial_two_sided_p(k, n, paper_rate))


def _why_not(row: dict[str, str], protocol: str) -> str:
    reasons = []
    if row["protocol"] != protocol:
        reasons.append(f"protocol {row['protocol']} (the paper's is {protocol})")
    if row["tasks"] != ALL_TASKS:
        reasons.append(f"tasks {row['tasks']} only")
    return "; ".join(reasons)


def build_claims(rows: list[dict[str, str]], protocol: str, baseline: str, policies: dict[str, str]) -> list[Claim]:
    """One :class:`Claim` per paper row of ``rows`` (leaderboard rows), with its checks.

    Args:
        rows: leaderboard rows (``source`` paper or measured).
        protocol: the protocol the paper's numbers were measured under; other protocols are not comparable.
        baseline: the paper row the claimed differences are taken against (e.g. ``OpenVLA-OFT``).
        policies: paper policy name -> sfbench policy name; a paper row without one has no measured rows.
    """
    paper = [r for r in rows if r["source"] == "paper"]
    measured = [r for r in rows if r["source"] == "measured"]
    base_rate = {r["suite"]: float(r["success_rate"]) for r in paper if r["policy"] == baseline}
    claims = []
    for p in paper:
        rate, suite, n = float(p["success_rate"]), p["suite"], int(p["n_episodes"])
        b = base_rate.get(suite)
        diff_p = None if b is None or p["policy"] == baseline else two_proportion_p(round(rate * n), n, round(b * n), n)
        claim = Claim(p, b, None if b is None or p["policy"] == baseline else episodes_per_arm(rate, b), diff_p)
        ours = policies.get(p["policy"])
        for m in (m for m in measured if m["suite"] == suite and m["policy"] == ours):
            why = _why_not(m, protocol)
            if why:
                claim.not_comparable.append((m, why))
            else:
                claim.checks.append(check_row(rate, m))
        claims.append(claim)
    return claims
