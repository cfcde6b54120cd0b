"""RLDS training data: RAM held by a libero_spatial-size dataset, and loader samples/s against the step's.

Writes a synthetic ``libero_spatial_no_noops`` with sfbench's own RLDS writer (``write_rlds``): 432 episodes,
52,970 steps, 16 shards, two 256x256 views per step as TFDS writes them (JPEG q95, 4:2:0). The frames are
smooth colour fields plus Gaussian noise, tuned so that a frame's JPEG is the size of a released one (the
released suite: 1.91 GB for 105,940 frames, ~18 KB each); a pool of distinct frames is cycled, so the
writer holds only the pool. Then:

(a) RAM: a fresh process loads it for training (``load_dataset``: frames stay encoded, the shards
    memory-mapped) and prints its RSS: anonymous memory (the process's own) and file-backed pages of the
    mapped shards (page cache, shared and reclaimable, but counted in RSS).
(b) Speed: samples/s of the loader (frames decoded through a DataLoader with 0 and 2 workers, then the
    OFT training image chain, ``training_batch`` as the trainer calls it), against the samples/s a tiny
    ``openvla_sf`` training step consumes at batch 8 (``oft_train_step.py``'s trainer, cached teacher
    features: the step's steady state after the first epoch). Each is measured alone on this CPU, with one
    torch thread (``--threads``): on this shared 2-core machine two threads made the step ~10x slower.
(c) Both at once: ``Trainer.run`` of the tiny ``openvla_oft`` (no teacher) on this dataset at batch 8, with
    ``train.num_workers`` 0 and 2: samples/s of whole training steps, reading included (and the run's
    worker start-up, final checkpoint and metrics plot: ``--train-steps`` makes them small).

    python benchmarks/data_throughput.py [--dir /tmp/sfbench_data_throughput] [--batches 40] [--steps 8]
        [--threads 1] [--episodes 432 --total-steps 52970]   # a smaller copy: its own folder under --dir
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from oft_train_step import TINY_VGGT, timed_step, trainer, write_vggt
from synthetic_demos import camera_like_frames, write_demos

from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
from sfbench.train.data.dataset import DataConfig, load_dataset
from sfbench.train.data.frames import encode_jpeg
from sfbench.train.data.loader import step_batches, step_generator, step_indices
from sfbench.train.data.rlds import RldsEpisode, write_rlds
from sfbench.train.data.tasks import suite_instructions
from sfbench.train.trainer import Trainer, TrainJob

EPISODES, STEPS, SHARDS = 432, 52_970, 16  # libero_spatial_no_noops (../shared/reference/datasets.md)
RELEASED_BYTES_PER_FRAME = 1.91e9 / (2 * STEPS)
NOISE_SIGMA = 2.2  # grey levels of noise on the smooth field: JPEG q95 size close to the released frames
POOL = 96  # distinct frames per view
BATCH = 8


def write_dataset(root: Path, n_episodes: int, n_steps: int) -> Path:
    """The synthetic suite under ``root/<episodes>x<steps>`` (kept between runs; its info file is written last)."""
    vdir = root / f"{n_episodes}x{n_steps}" / "libero_spatial_no_noops" / "1.0.0"
    if (vdir / "dataset_info.json").is_file():
        return vdir.parent
    pools = {key: camera_like_frames(POOL, seed, NOISE_SIGMA, encode_jpeg)
             for seed, key in enumerate(("image", "wrist_image"))}
    lengths = np.diff(np.linspace(0, n_steps, n_episodes + 1).round().astype(int))
    instructions = suite_instructions("libero_spatial")
    rng = np.random.default_rng(2)
    episodes = []
    for e, t in enumerate(lengths):
        images = {view: [pool[(e * 7 + i) % POOL] for i in range(t)] for view, pool in pools.items()}
        episodes.append(RldsEpisode(images, rng.normal(size=(t, 8)).astype(np.float32),
                                    rng.uniform(-1, 1, (t, 7)).astype(np.float32), instructions[e % len(instructions)]))
    write_rlds(vdir, "libero_spatial_no_noops", episodes, shards=min(SHARDS, n_episodes))
    return vdir.parent


def rss_kib() -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of this process, KiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile")}


def measure_memory(path: str) -> None:
    """(a), in this (fresh) process: load the dataset for training, sample once, print RSS as JSON."""
    before = rss_kib()
    start = time.perf_counter()
    dataset, _ = load_dataset(DataConfig(path=path), ("agentview", "wrist"), 8)
    load_s = time.perf_counter() - start
    for i in range(0, len(dataset), max(1, len(dataset) // 200)):
        dataset[i]  # a few hundred decoded samples, as training touches them
    print(json.dumps({"before": before, "after": rss_kib(), "load_s": load_s, "samples": len(dataset),
                      "episodes": len(dataset.demos),
                      "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def step_rate(args: argparse.Namespace, out: Path) -> tuple[float, object]:
    """Samples/s of the tiny openvla_sf step at batch 8 (median of ``args.steps``), and its trainer."""
    write_demos(out / "data" / "bench_demo.hdf5", size=256)
    base, vggt = write_tiny_checkpoint(out / "base"), write_vggt(out / "vggt.pt", TINY_VGGT)
    run = "openvla_sf cached VGGT"
    t = trainer(run, base, vggt, TINY_VGGT, out, argparse.Namespace(threads=args.threads, device="cpu", scale="tiny"))
    times = [timed_step(t, run, step, BATCH, False)[0] for step in range(args.steps + 2)][2:]
    return BATCH / statistics.median(times), t


def loader_rate(dataset, policy, workers: int, batches: int) -> float:
    """Samples/s: DataLoader (``workers``) decoding, then the OFT training chain on each batch (2 warm-up)."""
    augment = DataConfig()

    def indices(step: int) -> list[int]:
        return step_indices(step_generator(7, step), len(dataset), BATCH)

    loaded = step_batches(dataset, range(batches + 2), indices, workers)
    for step in range(2):
        policy.training_batch(next(loaded), step_generator(7, step), augment)
    start = time.perf_counter()
    for step in range(2, batches + 2):
        policy.training_batch(next(loaded), step_generator(7, step), augment)
    return BATCH * batches / (time.perf_counter() - start)


def training_rate(suite: Path, base: Path, out: Path, workers: int, steps: int, threads: int) -> float:
    """Samples/s of ``Trainer.run`` (tiny openvla_oft, batch 8) over ``steps`` steps after one warm-up run."""
    train = {"steps": 1, "batch_size": BATCH, "progress": False, "num_threads": threads, "save_every": 10_000,
             "log_every": 10_000, "num_workers": workers}
    job = TrainJob(out / f"oft-w{workers}", {"name": "openvla_oft", "base": str(base)}, {"path": str(suite)},
                   train, {"name": "geometry"})
    t = Trainer(job)
    t.run()  # the first step (and checkpoint) of this run: warm-up
    t.settings.steps = 1 + steps
    start = time.perf_counter()
    t.run()
    return BATCH * steps / (time.perf_counter() - start)


def main(args: argparse.Namespace) -> None:
    """Write (or reuse) the dataset, then print (a) and (b)."""
    torch.set_num_threads(args.threads)
    root = Path(args.dir)
    start = time.perf_counter()
    suite = write_dataset(root, args.episodes, args.total_steps)
    shards = sorted((suite / "1.0.0").glob("*.tfrecord-*"))
    size = sum(p.stat().st_size for p in shards)
    print(f"dataset: {suite}, {args.episodes} episodes, {args.total_steps} steps, {len(shards)} shards, "
          f"{size / 1e9:.3f} GB "
          f"(ready in {time.perf_counter() - start:.1f} s)")
    frames = [f for seed in (0, 1) for f in camera_like_frames(POOL, seed, NOISE_SIGMA, encode_jpeg)]
    print(f"JPEG bytes/frame: {statistics.mean(map(len, frames)):.0f} synthetic (pool mean), "
          f"{size / (2 * args.total_steps):.0f} in the shards (with step data and framing); released libero_spatial "
          f"{RELEASED_BYTES_PER_FRAME:.0f}")
    proc = subprocess.run([sys.executable, __file__, "--measure-memory", str(suite)], capture_output=True,
                          text=True, check=True)
    mem = json.loads(proc.stdout.strip().splitlines()[-1])
    gib = 1 / 2**20
    a, b = mem["after"], mem["before"]
    print(f"(a) RAM, {mem['episodes']} episodes / {mem['samples']} samples loaded in {mem['load_s']:.1f} s: "
          f"RSS {a['VmRSS'] * gib:.2f} GiB (anonymous {a['RssAnon'] * gib:.2f}, mapped shard pages "
          f"{a['RssFile'] * gib:.2f}); before loading {b['VmRSS'] * gib:.2f} GiB; peak {mem['peak_kib'] * gib:.2f} GiB"
          f" -> target <= 4 GiB: {'met' if mem['peak_kib'] * gib <= 4 else 'MISSED'}")
    with tempfile.TemporaryDirectory() as tmp:
        consumed, t = step_rate(args, Path(tmp))
        print(f"(b) tiny openvla_sf step, batch {BATCH}, cached VGGT, {torch.get_num_threads()} torch threads: "
              f"{consumed:.1f} samples/s ({BATCH / consumed:.3f} s/step, median of {args.steps})")
        dataset, _ = load_dataset(DataConfig(path=str(suite)), t.policy.views, t.policy.chunk_size)
        for workers in (0, 2):
            rate = loader_rate(dataset, t.policy, workers, args.batches)
            print(f"    loader, workers={workers}: {rate:.1f} samples/s = {rate / consumed:.2f}x the step "
                  f"(decode + OFT training chain, {args.batches} batches of {BATCH}) -> target >= 2x: "
                  f"{'met' if rate >= 2 * consumed else 'MISSED'}")
        for workers in (0, 2):
            rate = training_rate(suite, Path(tmp) / "base", Path(tmp), workers, args.train_steps, args.threads)
            print(f"(c) tiny openvla_oft training on it, batch {BATCH}, train.num_workers={workers}: {rate:.1f} "
                  f"samples/s ({args.train_steps} steps of Trainer.run, reading included)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/sfbench_data_throughput", help="where the dataset is written (~2 GB)")
    parser.add_argument("--batches", type=int, default=40, help="loader batches timed per worker count")
    parser.add_argument("--steps", type=int, default=8, help="training steps timed")
    parser.add_argument("--train-steps", type=int, default=30, help="Trainer.run steps timed per worker count (c)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the step and the training chain")
    parser.add_argument("--episodes", type=int, default=EPISODES, help="episodes written (libero_spatial: 432)")
    parser.add_argument("--total-steps", type=int, default=STEPS, help="steps written (libero_spatial: 52970)")
    parser.add_argument("--measure-memory", metavar="PATH", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.measure_memory:
        measure_memory(parsed.measure_memory)
    else:
        main(parsed)
