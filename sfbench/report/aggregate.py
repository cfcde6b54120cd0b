"""Success rates per task, per suite and overall, each with a 95% Wilson score interval."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sfbench.eval.records import EpisodeRecord

Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; ``(0, 1)`` when ``n == 0``."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 (k = n) the bound is exactly 0 (1); rounding must not push it past the estimate.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class Rate:
    """A success rate with its interval; ``errors`` counts episodes ended by a crash or bad action."""

    n: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    errors: int = 0

    @classmethod
    def of(cls, successes: int, n: int, errors: int = 0) -> Rate:
        """Rate of ``successes`` out of ``n`` with its Wilson interval."""
        low, high = wilson_interval(successes, n)
        return cls(n, successes, successes / n if n else 0.0, low, high, errors)


def rate_of(records: Iterable[EpisodeRecord]) -> Rate:
    """Pooled success rate of ``records``."""
    records = list(records)
    return Rate.of(
        sum(r.success for r in records), len(records), sum(r.failure_reason is not None for r in records)
    )


def aggregate(records: list[EpisodeRecord]) -> dict:
    """Summary dict: ``tasks`` (per suite and task id), ``suites`` and ``overall`` rates."""
    by_suite: dict[str, list[EpisodeRecord]] = defaultdict(list)
    by_task: dict[tuple[str, int], list[EpisodeRecord]] = defaultdict(list)
    for r in records:
        by_suite[r.suite].append(r)
        by_task[(r.suite, r.task_id)].append(r)
    tasks = [
        {"suite": s, "task_id": t, "task_name": recs[0].task_name, **asdict(rate_of(recs))}
        for (s, t), recs in sorted(by_task.items())
    ]
    return {
        "tasks": tasks,
        "suites": {s: asdict(rate_of(recs)) for s, recs in sorted(by_suite.items())},
        "overall": asdict(rate_of(records)),
    }


def format_summary(summary: dict) -> str:
    """A plain-text table of a summary: one line per task, then per suite and overall."""
    fmt = "{:<24} {:>5} {:>8} {:>17} {:>6}  {}"
    lines = [fmt.format("task", "n", "success", "95% CI", "errors", "name")]

    def line(label: str, r: dict, name: str = "") -> str:
        ci = f"[{100 * r['ci_low']:5.1f}, {100 * r['ci_high']:5.1f}]"
        return fmt.format(label, r["n"], f"{100 * r['success_rate']:.1f}%", ci, r["errors"], name)

    lines += [line(f"{t['suite']}/{t['task_id']}", t, t["task_name"]) for t in summary["tasks"]]
    lines += [line(f"suite {s}", r) for s, r in summary["suites"].items()]
    lines.append(line("overall", summary["overall"]))
    return "\n".join(line.rstrip() for line in lines)
