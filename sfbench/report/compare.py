"""``sfbench compare``: two runs on identical init states, paired difference and McNemar's exact test."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from sfbench.core.errors import InvalidConfig
from sfbench.eval.records import EpisodeRecord, load_records
from sfbench.report.aggregate import Z_95


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of run A against run B over the episodes both ran.

    ``both``/``only_a``/``only_b``/``neither`` count pairs by which run succeeded.
    """

    n_pairs: int
    rate_a: float
    rate_b: float
    difference: float
    ci_low: float
    ci_high: float
    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs at 1/2."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_difference_ci(only_a: int, only_b: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Agresti-Min interval of the paired difference of proportions (0.5 added to each 2x2 cell)."""
    b, c, m = only_a + 0.5, only_b + 0.5, n + 2.0
    d = (b - c) / m
    half = z * math.sqrt(max(b + c - (b - c) ** 2 / m, 0.0)) / m
    return max(-1.0, d - half), min(1.0, d + half)


def _check_comparable(a: list[EpisodeRecord], b: list[EpisodeRecord]) -> None:
    for what, get in (("suite", lambda r: r.suite), ("protocol", lambda r: f"{r.protocol} ({r.protocol_hash})")):
        va, vb = {get(r) for r in a}, {get(r) for r in b}
        if va != vb:
            raise InvalidConfig(f"Runs differ in {what}: {sorted(va)} vs {sorted(vb)}; only like runs compare")


def compare(run_a: Path, run_b: Path) -> Comparison:
    """Compare two runs over the (task, episode) pairs both recorded."""
    recs_a, recs_b = load_records(run_a), load_records(run_b)
    for run, recs in ((run_a, recs_a), (run_b, recs_b)):
        if not recs:
            raise InvalidConfig(f"No episode records under {run}")
    _check_comparable(recs_a, recs_b)
    by_b = {r.key: r.success for r in recs_b}
    pairs = [(r.success, by_b[r.key]) for r in recs_a if r.key in by_b]
    if not pairs:
        raise InvalidConfig(f"{run_a.name} and {run_b.name} share no (task, episode) pair")
    n = len(pairs)
    counts = {k: sum(p == k for p in pairs) for k in ((True, True), (True, False), (False, True), (False, False))}
    only_a, only_b = counts[(True, False)], counts[(False, True)]
    low, high = paired_difference_ci(only_a, only_b, n)
    rate_a, rate_b = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
    return Comparison(n, rate_a, rate_b, rate_a - rate_b, low, high, counts[(True, True)], only_a, only_b,
                      counts[(False, False)], mcnemar_exact(only_a, only_b))
