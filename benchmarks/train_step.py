"""Training step time of tiny_vla vs tiny_vla_sf (teacher cache cold / warm): the SF overhead ratio.

Runs the real trainer on a LIBERO-layout dataset (collect one with ``sfbench collect``); the
first pass over the data fills the teacher cache, so "warm" steps only read cached features.

    python benchmarks/train_step.py --data results/demos/<run>/demos [--steps 30] [--batch 32]
        [--device cuda] [--dim 512 --layers 8 --heads 8]   # a wider and deeper trunk
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sfbench.train.trainer import Trainer, TrainJob


def step_times(trainer: Trainer, steps: int, first: int = 0) -> list[float]:
    """Wall seconds of ``steps`` optimisation steps starting at step ``first``."""
    times = []
    for step in range(first, first + steps):
        start = time.perf_counter()
        trainer.step(step)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def make_trainer(policy: str, args: argparse.Namespace, out: Path, cache_dir: str | None) -> Trainer:
    """A trainer of ``policy`` (trunk size from ``args``) with the geometry teacher."""
    trunk = {"dim": args.dim, "layers": args.layers, "heads": args.heads}
    job = TrainJob(out / policy, {"name": policy, **trunk}, {"path": args.data},
                   {"steps": 10_000, "batch_size": args.batch, "progress": False, "device": args.device},
                   {"name": "geometry", "cache_dir": cache_dir}, {"method": "sf"} if policy == "tiny_vla_sf" else None)
    return Trainer(job)


def main() -> None:
    """Print median step times and the SF overhead ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="LIBERO-layout .hdf5 file or directory")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        base = make_trainer("tiny_vla", args, out, None)
        sf = make_trainer("tiny_vla_sf", args, out, str(out / "cache"))
        n_samples = len(sf.dataset)
        rows = {"tiny_vla": statistics.median(step_times(base, args.steps))}
        rows["tiny_vla_sf, cache cold"] = statistics.median(step_times(sf, args.steps))
        fill = -(-n_samples // args.batch) * 3  # enough steps to see (almost) every sample
        step_times(sf, fill, first=args.steps)
        rows["tiny_vla_sf, cache warm"] = statistics.median(step_times(sf, args.steps, first=args.steps + fill))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {args.threads} threads"
    print(f"data: {args.data} ({n_samples} samples), batch {args.batch}, trunk dim {args.dim} x {args.layers} "
          f"layers, {device}, median of {args.steps} steps")
    print(f"{'setup':<26}{'s/step':>9}{'x tiny_vla':>12}")
    for name, t in rows.items():
        print(f"{name:<26}{t:>9.3f}{t / rows['tiny_vla']:>12.2f}")


if __name__ == "__main__":
    main()
