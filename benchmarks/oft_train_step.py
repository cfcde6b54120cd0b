"""OpenVLA-OFT fine-tuning step: seconds per step and peak memory, openvla_oft vs openvla_sf.

Runs the real trainer (LoRA recipe, geometry teacher with a warm feature cache for SF) on a tiny
base written by ``sfbench.policies.openvla_oft.tiny`` and synthetic LIBERO-layout demos, on CPU.

    python benchmarks/oft_train_step.py [--steps 10] [--batch 4]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
from sfbench.train.data.demos import ROTATED, append_demo, demo_arrays
from sfbench.train.trainer import Trainer, TrainJob


def write_demos(path: Path, demos: int = 2, steps: int = 12) -> None:
    """Synthetic demos in LIBERO's layout, with depth and cameras (what the geometry teacher needs)."""
    rng = np.random.default_rng(0)
    for d in range(demos):
        traj = []
        for _ in range(steps):
            obs = {v: rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for v in ("agentview", "wrist")}
            obs |= {"proprio": rng.normal(size=8).astype(np.float32), "joint_states": np.zeros(7, np.float32),
                    "depth": {v: rng.uniform(0.5, 2.0, (128, 128)).astype(np.float32) for v in ("agentview", "wrist")},
                    "intrinsics": {v: np.array([[100, 0, 64], [0, 100, 64], [0, 0, 1]], np.float32)
                                   for v in ("agentview", "wrist")},
                    "extrinsics": {v: np.eye(4, dtype=np.float32) for v in ("agentview", "wrist")}}
            traj.append((obs, rng.uniform(-1, 1, 7).astype(np.float32)))
        append_demo(path, demo_arrays(traj), init_state_index=d,
                    file_attrs={"instruction": "pick up the black bowl", "task_id": 0, "image_convention": ROTATED})


def step_seconds(policy: str, base: Path, data: Path, out: Path, args: argparse.Namespace) -> list[float]:
    """Seconds of ``args.steps`` steps after the cache-filling warm-up."""
    job = TrainJob(out / policy, {"name": policy, "base": str(base)}, {"path": str(data)},
                   {"steps": 10_000, "batch_size": args.batch, "progress": False, "num_threads": args.threads},
                   {"name": "geometry", "cache_dir": str(out / "cache")}, {"method": "sf"} if policy.endswith("sf")
                   else None)
    trainer = Trainer(job)
    for step in range(args.warmup):
        trainer.step(step)
    times = []
    for step in range(args.warmup, args.warmup + args.steps):
        start = time.perf_counter()
        trainer.step(step)
        times.append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        base = write_tiny_checkpoint(out / "base")
        write_demos(out / "data" / "bench_demo.hdf5")
        medians = {}
        for policy in ("openvla_oft", "openvla_sf"):
            times = step_seconds(policy, base, out / "data", out, args)
            medians[policy] = statistics.median(times)
            print(f"tiny {policy}, cpu, batch {args.batch}: {medians[policy]:.3f} s/step (median of {args.steps})")
        overhead = medians["openvla_sf"] / medians["openvla_oft"] - 1
        print(f"SF overhead with a warm teacher cache: {100 * overhead:+.1f}%")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
