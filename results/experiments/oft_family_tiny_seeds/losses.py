"""Training losses and in-training eval success of this study's runs -> losses.csv and losses.png.

Reads ``<train dir>/<run>/metrics.jsonl`` (the trainer's log: the action L1 of each logged batch of 16,
and ``eval/success`` lines as each checkpoint's evaluation arrives).

    python results/experiments/oft_family_tiny_seeds/losses.py --train results/train RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
FIELDS = ("run", "step", "action_loss", "lr", "samples_per_s", "eval_success", "eval_episodes")


def rows(train: Path, run: str) -> list[dict]:
    """The run's metrics lines as CSV rows."""
    lines = [json.loads(x) for x in (train / run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [{"run": run, "step": m["step"], "action_loss": m.get("action_loss"), "lr": m.get("lr"),
             "samples_per_s": m.get("samples_per_s"), "eval_success": m.get("eval/success"),
             "eval_episodes": m.get("eval/episodes")} for m in lines]


def smooth(y: np.ndarray, window: int = 10) -> np.ndarray:
    """Moving average over ``window`` logged points (the per-batch loss is noisy)."""
    return np.convolve(y, np.ones(window) / window, mode="valid") if len(y) >= window else y


def plot(table: list[dict], out: Path) -> None:
    """Smoothed action loss (left) and eval success with its n (right) per run, vs step."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for run in dict.fromkeys(r["run"] for r in table):
        loss = [(r["step"], r["action_loss"]) for r in table if r["run"] == run and r["action_loss"] is not None]
        steps, values = np.array(loss).T
        line, = left.plot(steps[len(steps) - len(smooth(values)):], smooth(values), lw=1.2, label=run)
        evals = sorted((r["step"], r["eval_success"], r["eval_episodes"]) for r in table
                       if r["run"] == run and r["eval_success"] is not None)
        if evals:
            s, v, n = zip(*evals, strict=True)
            right.plot(s, v, "o-", color=line.get_color(), label=run)
            for x, y, k in evals:
                right.annotate(f"n={k}", (x, y), fontsize=6, textcoords="offset points", xytext=(2, 3))
    left.set(xlabel="training step", ylabel="action L1 (normalised; mean of 10 logged batches)")
    right.set(xlabel="training step", ylabel="success, held-out init states", ylim=(-0.02, 1.02))
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    fig.suptitle("oft_family_tiny_seeds: tiny OFT family on libero_spatial tasks 0-2")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    """``python losses.py RUN [RUN ...]``: write losses.csv and losses.png."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--train", type=Path, default=Path("results/train"))
    parser.add_argument("--out", type=Path, default=HERE / "losses")
    args = parser.parse_args()
    table = [r for run in args.runs for r in rows(args.train, run)]
    with args.out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(table)
    plot(table, args.out.with_suffix(".png"))
    sys.stdout.write(f"{len(table)} rows -> {args.out.with_suffix('.csv')}, {args.out.with_suffix('.png')}\n")


if __name__ == "__main__":
    main()
