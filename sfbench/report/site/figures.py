"""Static figures of the report (matplotlib, Agg): curves with n per point and per-seed points, per-task bars."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

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


def plot_curve(points: list[dict[str, str]], seeds: dict[str, Rate], path: Path, *, title: str,
               thresholds: list[float]) -> Path:
    """Success vs x per label: 95% Wilson bars, ``n`` written at each point, one small dot per seed.

    Args:
        points: rows of ``points.csv``.
        seeds: eval run id -> its own rate; drawn when a point pools more than one eval run (seeds).
        path: the PNG to write.
        title: figure title.
        thresholds: dashed horizontal lines (success rates in [0, 1]).
    """
    plt = _pyplot()
    xcol = x_name(points)
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    for p in points:
        by_label[p["label"]].append(p)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=FIG_DPI)
    for label, rows in by_label.items():
        rows.sort(key=lambda r: float(r[xcol]))
        xs = [float(r[xcol]) for r in rows]
        ys = [100 * float(r["success_rate"]) for r in rows]
        err = [[y - 100 * float(r["ci_low"]) for y, r in zip(ys, rows, strict=True)],
               [100 * float(r["ci_high"]) - y for y, r in zip(ys, rows, strict=True)]]
        line = ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)[0]
        for x, y, r in zip(xs, ys, rows, strict=True):
            ax.annotate(f"n={r['n']}", (x, y), textcoords="offset points", xytext=(4, 5), fontsize=7,
                        color=line.get_color())
            per_seed = [100 * seeds[e].success_rate for e in r.get("eval_runs", "").split() if e in seeds]
            if len(per_seed) > 1:
                ax.scatter([x] * len(per_seed), per_seed, s=12, color=line.get_color(), alpha=0.5)
    for t in thresholds:
        ax.axhline(100 * t, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel=xcol, ylabel="success rate (%)", title=title, ylim=(-2, 102))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


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
