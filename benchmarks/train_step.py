"""Training step time of tiny_vla vs tiny_vla_sf (teacher features warm / cold): the SF overhead ratio.

Runs the real trainer with the geometry teacher on a LIBERO-layout dataset (``--data``; default:
synthetic demos at 128 px with depth and cameras). "warm": every sample's teacher features were
computed before timing; "cold": the in-memory store is emptied before each step, so the teacher
runs on every sample. The runs' steps are interleaved, so a slower phase of the machine hits all
alike. ``--profile`` prints where the warm SF step spends its time beyond the baseline's.

    python benchmarks/train_step.py [--data <demos>] [--steps 30] [--batch 32] [--profile]
        [--device cuda] [--dim 512 --layers 8 --heads 8]   # a wider and deeper trunk
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import torch
from synthetic_demos import write_demos

from sfbench.core.images import center_box
from sfbench.train.trainer import Trainer, TrainJob

RUNS = ("tiny_vla", "tiny_vla_sf, warm", "tiny_vla_sf, cold")


def timed_step(trainer: Trainer, step: int, cold: bool) -> float:
    """Wall seconds of one optimisation step."""
    if cold:
        trainer.targets.memory.clear()
        trainer.targets.used = 0
    start = time.perf_counter()
    trainer.step(step)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def make_trainer(run: str, args: argparse.Namespace, data: str, out: Path) -> Trainer:
    """A trainer of ``run`` (trunk size from ``args``) with the geometry teacher, features in memory."""
    policy = run.split(",")[0]
    trunk = {"dim": args.dim, "layers": args.layers, "heads": args.heads}
    job = TrainJob(out / run.replace(", ", "_"), {"name": policy, **trunk}, {"path": data},
                   {"steps": 10_000, "batch_size": args.batch, "progress": False, "device": args.device},
                   {"name": "geometry", "cache_dir": None}, {"method": "sf"} if policy == "tiny_vla_sf" else None)
    trainer = Trainer(job)
    if trainer.targets and run.endswith("warm"):
        for i in range(len(trainer.dataset)):
            item = trainer.dataset[i]
            trainer.targets([item], [[center_box(*item["images"].shape[1:3], 1.0)] * len(item["images"])])
    return trainer


def main() -> None:
    """Print median step times, the SF overhead ratios and (``--profile``) the warm SF step's profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="LIBERO-layout .hdf5 file or directory (default: synthetic, 128 px)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        data = args.data or str(write_demos(out / "data" / "bench_demo.hdf5", demos=4, steps=80, geometry=True))
        trainers = {run: make_trainer(run, args, data, out) for run in RUNS}
        n_samples = len(trainers[RUNS[0]].dataset)
        times: dict[str, list[float]] = {run: [] for run in RUNS}
        for step in range(args.warmup + args.steps):
            for run, trainer in trainers.items():
                seconds = timed_step(trainer, step, run.endswith("cold"))
                if step >= args.warmup:
                    times[run].append(seconds)
        rows = {run: statistics.median(ts) for run, ts in times.items()}
        if args.profile:
            for run in RUNS[:2]:
                profile = cProfile.Profile()
                profile.runcall(lambda t=trainers[run]: [t.step(s) for s in range(10)])
                print(f"--- {run}: 10 steps, by cumulative time")
                pstats.Stats(profile).sort_stats("cumulative").print_stats(
                    r"trainer.py.*\(step\)|training_step|backward|align.py|targets.py|teachers.py|training_batch", 12)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {args.threads} threads"
    print(f"data: {data if args.data else 'synthetic'} ({n_samples} samples), batch {args.batch}, trunk dim "
          f"{args.dim} x {args.layers} layers, {device}, median of {args.steps} interleaved steps")
    print(f"{'setup':<22}{'s/step':>9}{'x tiny_vla':>12}{'paired':>9}")
    for name, t in rows.items():
        paired = statistics.median(a / b for a, b in zip(times[name], times[RUNS[0]], strict=True))
        print(f"{name:<22}{t:>9.3f}{t / rows['tiny_vla']:>12.3f}{paired:>9.3f}")
    print("paired: median over steps of this run's step time / tiny_vla's step right before it")


if __name__ == "__main__":
    main()
