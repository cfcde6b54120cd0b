"""Static figures of the report (matplotlib, Agg): curves re-drawn from ``points.csv``, per-task bars."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from sfbench.curves.curve import Point, plot
from sfbench.report.aggregate import Rate

FIG_DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def x_name(points: list[dict[str, str]]) -> str:
    """The x column of a ``points.csv`` (its second column: ``training step`` or ``demos per task``)."""
    return list(points[0])[1] if points else "x"


def curve_points(points: list[dict[str, str]], seeds: dict[str, Rate]) -> dict[str, list[Point]]:
    """``points.csv`` rows as the curve's :class:`Point` s, per label, sorted by x.

    Each point's per-run rates come from its ``run_counts`` column, or, in a ``points.csv`` written
    before that column existed, from ``seeds`` (eval run id -> its rate) where every run is known.
    """
    xcol = x_name(points)
    by_label: dict[str, list[Point]] = defaultdict(list)
    for r in points:
        evals = tuple(r.get("eval_runs", "").split())
        if r.get("run_counts"):
            runs = tuple(Rate.of(*map(int, c.split("/"))) for c in r["run_counts"].split())
        else:
            runs = tuple(seeds[e] for e in evals) if all(e in seeds for e in evals) else ()
        by_label[r["label"]].append(Point(r["label"], float(r[xcol]), Rate.of(int(r["successes"]), int(r["n"])),
                                          tuple(r.get("train_runs", "").split()), evals, runs))
    return {label: sorted(ps, key=lambda p: p.x) for label, ps in by_label.items()}


def plot_curve(points: list[dict[str, str]], seeds: dict[str, Rate], path: Path, *, title: str,
               thresholds: list[float], log_x: bool = False) -> Path:
    """The curve's figure, drawn as ``sfbench curves`` draws it (bands, n per point, one dot per seed).

    Args:
        points: rows of ``points.csv``.
        seeds: eval run id -> its own rate, for rows without a ``run_counts`` column.
        path: the PNG to write.
        title: figure title.
        thresholds: dashed horizontal lines (success rates in [0, 1]).
        log_x: a log x axis (data-efficiency curves).
    """
    return plot(curve_points(points, seeds), thresholds, path, x_name=x_name(points), title=title, log_x=log_x)


def plot_tasks(tasks: list[dict], path: Path, *, title: str) -> Path:
    """Per-task success of one run: bars with 95% Wilson intervals, ``k/n`` above each bar."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(3.2, 0.5 * len(tasks) + 1.6), 2.8), dpi=FIG_DPI)
    xs = list(range(len(tasks)))
    ys = [100 * t["success_rate"] for t in tasks]
    err = [[y - 100 * t["ci_low"] for y, t in zip(ys, tasks, strict=True)],
           [100 * t["ci_high"] - y for y, t in zip(ys, tasks, strict=True)]]
    ax.bar(xs, ys, yerr=err, capsize=3, color="#4c78a8")
    for x, t in zip(xs, tasks, strict=True):
        ax.text(x, 101, f"{t['successes']}/{t['n']}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [str(t["task_id"]) for t in tasks])
    ax.set(xlabel="task", ylabel="success (%)", ylim=(0, 112), title=title)
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
