"""Success curves (vs training step or data), threshold crossings and the ratios between policies.

A curve is one label's points; runs that share a label and an x (training seeds) are pooled into
one binomial count, so its Wilson interval treats every episode as independent; each run's own
count is kept beside the pooled one (drawn as a per-seed dot, written to ``points.csv``). The x at
which a curve reaches a threshold is read off the piecewise-linear curve through the measured points.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sfbench.report.aggregate import Rate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KINDS = {"convergence": "training step", "data_efficiency": "demos per task"}


@dataclass(frozen=True)
class Measurement:
    """One evaluation: a train run's checkpoint, evaluated as the eval run ``eval_run``."""

    label: str
    train_run: str
    x: float
    successes: int
    n: int
    eval_run: str


@dataclass(frozen=True)
class Point:
    """A pooled point of a curve; ``runs`` holds each pooled run's own rate, in ``train_runs`` order."""

    label: str
    x: float
    rate: Rate
    train_runs: tuple[str, ...] = field(default=())
    eval_runs: tuple[str, ...] = field(default=())
    runs: tuple[Rate, ...] = field(default=())


@dataclass(frozen=True)
class Crossing:
    """Where a label's curve first reaches ``threshold`` (x None: never, within the measured range).

    ``at_first_point`` means the first measured point already reached it, so x is an upper bound.
    ``ratio`` is the baseline's x over this label's x (above 1: this label needs less).
    """

    label: str
    threshold: float
    x: float | None
    at_first_point: bool
    ratio: float | None
    ratio_note: str


def pool(measurements: list[Measurement]) -> dict[str, list[Point]]:
    """Pool measurements by (label, x); labels keep their first-seen order, points sort by x."""
    groups: dict[str, dict[float, list[Measurement]]] = defaultdict(lambda: defaultdict(list))
    for m in measurements:
        groups[m.label][m.x].append(m)
    return {
        label: [
            Point(label, x, Rate.of(sum(m.successes for m in ms), sum(m.n for m in ms)),
                  tuple(m.train_run for m in ms), tuple(m.eval_run for m in ms),
                  tuple(Rate.of(m.successes, m.n) for m in ms))
            for x, ms in sorted(by_x.items())
        ]
        for label, by_x in groups.items()
    }


def first_crossing(points: list[Point], threshold: float) -> tuple[float | None, bool]:
    """X where the curve through ``points`` first reaches ``threshold``, linearly interpolated.

    Returns (x, at_first_point); x is None when no point reaches the threshold.
    """
    for i, p in enumerate(points):
        if p.rate.success_rate >= threshold:
            if i == 0:
                return p.x, True
            prev = points[i - 1]
            y0, y1 = prev.rate.success_rate, p.rate.success_rate
            return prev.x + (threshold - y0) / (y1 - y0) * (p.x - prev.x), False
    return None, False


def crossings(curves: dict[str, list[Point]], threshold: float, baseline: str) -> list[Crossing]:
    """Each label's crossing of ``threshold`` and its ratio to ``baseline``'s."""
    found = {label: first_crossing(points, threshold) for label, points in curves.items()}
    base_x, _ = found[baseline]
    out = []
    for label, (x, first) in found.items():
        ratio, note = _ratio(base_x, x, max(p.x for p in curves[baseline]))
        out.append(Crossing(label, threshold, x, first, ratio, note))
    return out


def _ratio(base_x: float | None, x: float | None, base_max: float) -> tuple[float | None, str]:
    if x is None:
        return None, "not reached"
    if base_x is None:
        return base_max / x, f"> {base_max / x:.2f} (baseline never reached it by x={base_max:g})"
    return base_x / x, f"{base_x / x:.2f}"


def write_points_csv(curves: dict[str, list[Point]], path: Path, x_name: str) -> Path:
    """One row per pooled point: label, x, n, successes, rate and 95% interval, the runs behind it.

    ``run_counts`` is each pooled run's own ``successes/n``, space-separated in ``train_runs`` order.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", x_name, "n", "successes", "success_rate", "ci_low", "ci_high", "run_counts",
                    "train_runs", "eval_runs"])
        for points in curves.values():
            for p in points:
                r = p.rate
                w.writerow([p.label, f"{p.x:g}", r.n, r.successes, f"{r.success_rate:.4f}", f"{r.ci_low:.4f}",
                            f"{r.ci_high:.4f}", " ".join(f"{q.successes}/{q.n}" for q in p.runs),
                            " ".join(p.train_runs), " ".join(p.eval_runs)])
    return path


def write_crossings_csv(rows: list[Crossing], path: Path, x_name: str) -> Path:
    """One row per (label, threshold): the x reaching it and the ratio to the baseline."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "threshold", f"{x_name} to threshold", "upper_bound", "ratio_vs_baseline", "note"])
        for c in rows:
            w.writerow([c.label, c.threshold, "" if c.x is None else f"{c.x:.1f}", c.at_first_point,
                        "" if c.ratio is None else f"{c.ratio:.3f}", c.ratio_note])
    return path


def legend_label(label: str, points: list[Point]) -> str:
    """``label`` with its episode count when every point has the same n (and its seeds, if it pools any).

    A label whose points differ in n keeps its plain name: :func:`plot` writes n at each point instead.
    """
    ns = {p.rate.n for p in points}
    seeds = {len(p.runs) for p in points}
    parts = [f"n={ns.pop()} episodes per point"] if len(ns) == 1 else []
    if seeds - {0, 1}:
        parts.insert(0, f"{max(seeds)} seeds pooled" if len(seeds) == 1 else f"up to {max(seeds)} seeds pooled")
    return f"{label} ({', '.join(parts)})" if parts else label


def plot(curves: dict[str, list[Point]], thresholds: list[float], path: Path, *, x_name: str, title: str,
         log_x: bool = False) -> Path:
    """Write :func:`figure` as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    fig = figure(curves, thresholds, x_name=x_name, title=title, log_x=log_x)
    fig.savefig(path)
    plt.close(fig)
    return path


def figure(curves: dict[str, list[Point]], thresholds: list[float], *, x_name: str, title: str,
           log_x: bool = False) -> Figure:
    """Success vs x per label, with 95% Wilson bands, n per point and dashed threshold lines.

    The episode count n of each point is in the legend when all of a label's points share it, and
    written beside each point otherwise. Points that pool several runs (seeds) also show each run's
    own rate as a hollow dot; the line and band are the pooled count's.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    any_seeds = False
    for i, (label, points) in enumerate(curves.items()):
        xs = [p.x for p in points]
        line, = ax.plot(xs, [100 * p.rate.success_rate for p in points], marker="o",
                        label=legend_label(label, points))
        colour = line.get_color()
        ax.fill_between(xs, [100 * p.rate.ci_low for p in points], [100 * p.rate.ci_high for p in points],
                        color=colour, alpha=0.18, linewidth=0)
        if len({p.rate.n for p in points}) > 1:
            for p in points:
                ax.annotate(f"n={p.rate.n}", (p.x, 100 * p.rate.success_rate), textcoords="offset points",
                            xytext=(4, 4 + 8 * i), fontsize=7, color=colour)
        for p in (p for p in points if len(p.runs) > 1):
            any_seeds = True
            ax.scatter([p.x] * len(p.runs), [100 * r.success_rate for r in p.runs], s=14, facecolors="none",
                       edgecolors=colour, linewidths=0.8, zorder=3)
    if any_seeds:
        ax.scatter([], [], s=14, facecolors="none", edgecolors="grey", label="single seeds")
    for t in thresholds:
        ax.axhline(100 * t, color="grey", linestyle="--", linewidth=0.8)
    if log_x:  # ticks at the measured x values, written plainly (10, 20, 40; not 2 x 10^1)
        ax.set_xscale("log")
        ax.set_xticks(sorted({p.x for points in curves.values() for p in points}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(xlabel=x_name, ylabel="success rate (%)", title=title, ylim=(-2, 102))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def crossing_table(rows: list[Crossing], x_name: str) -> str:
    """Human-readable crossing table."""
    lines = [f"{'label':<18} {'threshold':>9} {x_name + ' to reach':>24}  ratio vs baseline"]
    for c in rows:
        x = "not reached" if c.x is None else ("<= " if c.at_first_point else "") + f"{c.x:.0f}"
        lines.append(f"{c.label:<18} {c.threshold:>9.2f} {x:>24}  {c.ratio_note}")
    return "\n".join(lines)


def as_dicts(rows: list[Crossing]) -> list[dict]:
    """Crossings as JSON-ready dicts."""
    return [asdict(c) for c in rows]
