"""Seeds pooled: threshold crossings per seed and pooled, speedup ratios with bootstrap intervals, paired tests.

Reads a convergence curve written by ``sfbench curves`` (``points.csv``: label, step, the train runs and
eval runs behind each point) and the per-episode records of those eval runs. Every checkpoint of every
run was evaluated on the same episodes (task, init state), so the design is paired across arms and steps.

- Crossing: the first step whose success rate reaches the threshold; pooled = successes over all seeds'
  episodes at that step (as ``sfbench curves`` pools).
- Speedup of an arm: baseline's pooled crossing step / the arm's. Its 95% interval is a percentile
  bootstrap: each resample draws every arm's seeds with replacement (independently per arm) and the
  episodes with replacement (one draw shared by all arms and steps, keeping the pairing). A curve that
  never reaches the threshold crosses at infinity (ratio 0 or inf); both never: undefined, counted.
- Paired comparison at each step (the final one also under "paired"): seed i of the arm against seed i
  of the baseline (run ids in order), episode by episode; the mean difference with a bootstrap interval
  (seed pairs and episodes resampled) and an exact two-sided McNemar test on the pooled discordant pairs.

    python analyze.py --curve <exp>/convergence --runs <exp>/runs --baseline openvla_oft --out analysis.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

# outcomes[label][train_run][step] = {(task_id, episode_index): success}
Outcomes = dict[str, dict[str, dict[int, dict[tuple[int, int], bool]]]]


def load_outcomes(curve_dir: Path, runs_dir: Path) -> Outcomes:
    """Every point's per-episode outcomes, by label, train run and step, from the eval runs' records."""
    from sfbench.eval.records import load_records  # planned episodes only, first finished of duplicates

    out: Outcomes = {}
    for row in csv.DictReader((curve_dir / "points.csv").open()):
        step = int(float(row["training step"]))
        for train_run, eval_run in zip(row["train_runs"].split(), row["eval_runs"].split(), strict=True):
            records = load_records(runs_dir / eval_run)
            out.setdefault(row["label"], {}).setdefault(train_run, {})[step] = {
                (r.task_id, r.episode_index): bool(r.success) for r in records}
    return out


def as_array(outcomes: Outcomes, label: str, keys: list[tuple[int, int]], steps: list[int]) -> np.ndarray:
    """(seeds, steps, episodes) successes of ``label``'s runs, in run-id order."""
    runs = outcomes[label]
    return np.array([[[runs[r][s][k] for k in keys] for s in steps] for r in sorted(runs)], dtype=float)


def crossing(rates: np.ndarray, steps: list[int], threshold: float) -> float:
    """First step whose rate reaches ``threshold`` (inf when none does)."""
    hit = np.nonzero(rates >= threshold - 1e-12)[0]
    return float(steps[hit[0]]) if len(hit) else math.inf


def ratio(base_x: float, x: float) -> float:
    """Speedup base_x / x; inf when only the arm crosses, 0 when only the baseline, nan when neither."""
    if math.isinf(base_x) and math.isinf(x):
        return math.nan
    return math.inf if math.isinf(base_x) else 0.0 if math.isinf(x) else base_x / x


def bootstrap_ratios(arrays: dict[str, np.ndarray], steps: list[int], threshold: float, baseline: str,
                     n_boot: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Resampled speedup ratios per arm (seeds per arm and shared episodes drawn with replacement)."""
    rng = np.random.default_rng(seed)
    n_eps = next(iter(arrays.values())).shape[2]
    out = {label: np.empty(n_boot) for label in arrays}
    for b in range(n_boot):
        eps = rng.integers(0, n_eps, n_eps)
        cross = {}
        for label, a in arrays.items():
            seeds = rng.integers(0, a.shape[0], a.shape[0])
            cross[label] = crossing(a[seeds][:, :, eps].mean(axis=(0, 2)), steps, threshold)
        for label in arrays:
            out[label][b] = ratio(cross[baseline], cross[label])
    return out


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """2.5 and 97.5 percentiles over the defined resamples, and the fraction undefined."""
    defined = values[~np.isnan(values)]
    if not len(defined):
        return math.nan, math.nan, 1.0
    ordered = np.sort(defined)  # order statistics: inf (a curve that never crosses) sorts last
    low, high = ordered[int(0.025 * (len(ordered) - 1))], ordered[math.ceil(0.975 * (len(ordered) - 1))]
    return float(low), float(high), 1 - len(defined) / len(values)


def mcnemar_p(arm_only: int, base_only: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pair counts."""
    n = arm_only + base_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(arm_only, base_only) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(arm: np.ndarray, base: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Seed-by-seed paired comparison at one step; ``arm``/``base`` are (seeds, episodes)."""
    k = min(len(arm), len(base))
    diff = arm[:k] - base[:k]
    rng = np.random.default_rng(seed)
    boot = [diff[rng.integers(0, k, k)][:, rng.integers(0, diff.shape[1], diff.shape[1])].mean() for _ in range(n_boot)]
    return {"seed_pairs": k, "episodes": int(diff.size), "difference": float(diff.mean()),
            "ci_low": float(np.percentile(boot, 2.5)), "ci_high": float(np.percentile(boot, 97.5)),
            "arm_only": int((diff > 0).sum()), "baseline_only": int((diff < 0).sum()),
            "mcnemar_p": mcnemar_p(int((diff > 0).sum()), int((diff < 0).sum()))}


def analyze(outcomes: Outcomes, baseline: str, thresholds: list[float], n_boot: int = 2000) -> dict:
    """Crossings (per seed and pooled), speedups with intervals, and the final-step paired comparisons."""
    steps = sorted({s for runs in outcomes.values() for r in runs.values() for s in r})
    keys = sorted(set.intersection(*(set(o) for runs in outcomes.values() for r in runs.values() for o in r.values())))
    arrays = {label: as_array(outcomes, label, keys, steps) for label in outcomes}
    result = {"steps": steps, "episodes": len(keys), "seeds": {k: sorted(v) for k, v in outcomes.items()},
              "thresholds": [], "final_step": steps[-1], "paired": {}, "paired_by_step": {}}
    for t in thresholds:
        pooled = {label: crossing(a.mean(axis=(0, 2)), steps, t) for label, a in arrays.items()}
        boot = bootstrap_ratios(arrays, steps, t, baseline, n_boot)
        rows = {}
        for label, a in arrays.items():
            low, high, undefined = interval(boot[label])
            rows[label] = {"per_seed": [crossing(s.mean(axis=1), steps, t) for s in a], "pooled": pooled[label],
                           "speedup": ratio(pooled[baseline], pooled[label]), "ci_low": low, "ci_high": high,
                           "undefined_share": undefined}
        result["thresholds"].append({"threshold": t, "arms": rows})
    for label, a in arrays.items():
        if label != baseline:
            result["paired_by_step"][label] = {s: paired(a[:, i], arrays[baseline][:, i], n_boot)
                                               for i, s in enumerate(steps)}
            result["paired"][label] = result["paired_by_step"][label][steps[-1]]
    return result


def table(result: dict, baseline: str) -> str:
    """The analysis as plain text."""
    lines = [f"{result['episodes']} episodes per checkpoint; steps {result['steps']}; seeds "
             + "; ".join(f"{k}: {len(v)}" for k, v in result["seeds"].items())]
    for block in result["thresholds"]:
        lines.append(f"threshold {block['threshold']}: first step reached (per seed | pooled), speedup vs {baseline}")
        for label, r in block["arms"].items():
            per_seed = " ".join("-" if math.isinf(x) else f"{x:g}" for x in r["per_seed"])
            pooled = "not reached" if math.isinf(r["pooled"]) else f"{r['pooled']:g}"
            lines.append(f"  {label:<14} {per_seed:<20} | {pooled:<12} speedup {r['speedup']:.2f} "
                         f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] (undefined in {100 * r['undefined_share']:.0f}%)")
    lines.append(f"paired vs {baseline} at each step (seed i with seed i, same episodes):")
    for label, by_step in result["paired_by_step"].items():
        for step, p in by_step.items():
            lines.append(f"  {label:<14} step {step:<6} {100 * p['difference']:+.1f} points [{100 * p['ci_low']:+.1f}, "
                         f"{100 * p['ci_high']:+.1f}], {p['arm_only']} vs {p['baseline_only']} discordant, "
                         f"McNemar p = {p['mcnemar_p']:.3g} ({p['seed_pairs']} seed pairs, {p['episodes']} pairs)")
    return "\n".join(lines)


def _plain(value: object) -> object:
    """``value`` with inf as the string "inf" and nan as null (strict JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else "inf" if value > 0 else "-inf"
    return value


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curve", type=Path, required=True)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.5, 0.66])
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = analyze(load_outcomes(args.curve, args.runs), args.baseline, args.thresholds, args.bootstrap)
    if args.out:
        args.out.write_text(json.dumps(_plain(result), indent=2))
    sys.stdout.write(table(result, args.baseline) + "\n")


if __name__ == "__main__":
    main()
