"""Rollout throughput: control steps per second with and without rendering, 1 and N workers.

Rows: physics only (no camera), the ``faithful`` render profile (``libero_oft``: 256 px, both
views, LIBERO's renderer settings) and the ``fast`` one (``libero_oft_fast``), each on one
in-process env and on ``--workers`` worker processes stepping at once, through the harness's own
slots (``sfbench.eval.workers.make_slots``). Each profile renders either at every step or on
demand: only at every 8th step (OFT's chunk) or every 5th (openpi's replanning), as the rollout
loop asks when the policy reads the next observation. The headline is each row's cost relative
to physics only. Last, whole episodes through ``sfbench.eval.rollout.RolloutLoop``: the scripted
expert (no camera), and an untrained ``tiny_vla`` (both views, on demand) under each profile.

    python benchmarks/rollout_throughput.py [--suite libero_spatial] [--task 0] [--steps 100] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from functools import partial

import numpy as np

from sfbench.config.tree import load_protocol, load_suite
from sfbench.core.constants import VIEWS
from sfbench.core.protocol import Protocol
from sfbench.envs import make_env
from sfbench.envs.libero import ACTION_DIM
from sfbench.eval.rollout import Episode, RolloutLoop
from sfbench.eval.workers import make_slots
from sfbench.policies import make_policy

# (row name, protocol, views rendered, render every n-th step)
PROFILES = (("faithful", "libero_oft"), ("fast", "libero_oft_fast"))
SETUPS = [("physics only", "libero_oft", (), 1)] + [
    (f"{profile} {label}", name, VIEWS, every) for profile, name in PROFILES
    for label, every in (("every step", 1), ("on demand /8", 8), ("on demand /5", 5))]


@dataclass(frozen=True)
class Measurement:
    """Throughput of one setup on some workers."""

    setup: str
    render_size: int | None
    workers: int
    steps_per_s: float

    @property
    def ms_per_step(self) -> float:
        """Wall milliseconds per control step (all workers together)."""
        return 1000.0 / self.steps_per_s


def measure(suite: str, task_id: int, protocol: Protocol, views: tuple[str, ...], workers: int,
            steps: int, every: int = 1) -> float:
    """Control steps per second of ``workers`` slots stepping the same fixed action sequence.

    Images are rendered at every ``every``-th step only (1: every step).
    """
    slots = make_slots(partial(make_env, load_suite(suite), protocol=protocol, views=views), protocol, workers)
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, (steps, ACTION_DIM))
    try:
        for i, slot in enumerate(slots):
            slot.reset_async(Episode(task_id, i % 50, seed=0))
        for slot in slots:
            slot.wait()
        start = time.perf_counter()
        for k, action in enumerate(actions):
            for slot in slots:
                slot.step_async(action, images=(k + 1) % every == 0)
            for slot in slots:
                slot.wait()
        return workers * steps / (time.perf_counter() - start)
    finally:
        for slot in slots:
            slot.close()


def episode(policy, suite: str, task_id: int, protocol: Protocol):
    """The outcome of episode 0 of ``policy`` (reset and wait steps included), rendering on demand."""
    req = policy.requirements
    env_for = partial(make_env, load_suite(suite), protocol=protocol, views=req.views, depth=req.depth,
                      privileged=req.privileged)
    slots = make_slots(env_for, protocol, 1)
    outcomes = []
    try:
        RolloutLoop(slots, [policy], protocol).run([Episode(task_id, 0, protocol.global_seed)],
                                                   lambda _e, out: outcomes.append(out))
    finally:
        slots[0].close()
    return outcomes[0]


def untrained_tiny_vla():
    """A tiny_vla with fresh weights and unit statistics (its cost, not its skill, is measured)."""
    from sfbench.policies import make_policy_config
    from sfbench.policies.tiny_vla import TinyVLAPolicy

    policy = TinyVLAPolicy.for_training(make_policy_config({"name": "tiny_vla"}))
    policy.stats = {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7}, "proprio": {"q01": [-1.0] * 8, "q99": [1.0] * 8}}
    policy.model.eval()
    return policy


def print_table(rows: list[Measurement]) -> None:
    """One table: throughput, and cost relative to physics only and to one worker."""
    physics = {r.workers: r.steps_per_s for r in rows if r.setup == "physics only"}
    single = {r.setup: r.steps_per_s for r in rows if r.workers == 1}
    print(f"{'setup':<24}{'px':>5}{'workers':>9}{'steps/s':>10}{'ms/step':>10}{'x physics':>11}{'x 1 worker':>12}")
    for r in rows:
        px = "-" if r.render_size is None else str(r.render_size)
        print(f"{r.setup:<24}{px:>5}{r.workers:>9}{r.steps_per_s:>10.1f}{r.ms_per_step:>10.1f}"
              f"{physics[r.workers] / r.steps_per_s:>11.2f}{r.steps_per_s / single[r.setup]:>12.2f}")


def main() -> None:
    """Measure every setup on 1 and ``--workers`` workers, then the scripted expert; print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100, help="timed control steps per worker")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    worker_counts = sorted({1, args.workers})
    rows = []
    for setup, protocol_name, views, every in SETUPS:
        protocol = load_protocol(protocol_name)
        for n in worker_counts:
            steps_per_s = measure(args.suite, args.task, protocol, views, n, args.steps, every)
            rows.append(Measurement(setup, protocol.render_size if views else None, n, steps_per_s))
            print(f"  measured {setup} on {n} worker(s): {steps_per_s:.1f} steps/s", flush=True)
    print(f"\n{args.suite} task {args.task}, {args.steps} steps per worker, views {', '.join(VIEWS)} when rendered")
    print_table(rows)
    out = episode(make_policy({"name": "scripted"}), args.suite, args.task, load_protocol("libero_oft"))
    print(f"\nscripted expert, episode 0: {out.wall_s:.1f} s per episode ({out.steps} steps, reset and wait steps "
          f"included, {'success' if out.success else 'failure'})")
    for name in ("libero_oft", "libero_oft_fast"):
        out = episode(untrained_tiny_vla(), args.suite, args.task, load_protocol(name))
        print(f"tiny_vla (untrained, on demand), {name}: {out.wall_s:.1f} s per episode of {out.steps} steps, "
              f"{3600 / out.wall_s:.0f} episodes per hour on one worker")


if __name__ == "__main__":
    main()
