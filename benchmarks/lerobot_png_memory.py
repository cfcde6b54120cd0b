"""LeRobot PNG-in-parquet training data: RAM held by a libero_spatial-size dataset, first and second load.

Writes a synthetic LeRobotDataset v3.0 with sfbench's own writer (``write_lerobot``), laid out as
``HuggingFaceVLA/libero``: 432 episodes, 52,970 steps, two 256x256 views per step as PNG inside parquet
(``struct<bytes, path>``), one row group per episode, 100 MB data files. The released copy holds 69.9 GB of
PNG over 273,465 steps (~128 KB a frame), so frames here are smooth colour fields plus Gaussian noise tuned to
that size (~13.5 GB for the suite). A pool of PNGs is cycled, each copy made distinct by a ``tEXt`` chunk with
its frame number (so parquet cannot dictionary-encode them away, as it cannot for real frames); the writer's PNG
encoder and its image statistics are replaced by the pool's, so writing does not encode 13.5 GB of pixels.

Then, each in a fresh process: ``load_dataset`` for training (the first load extracts each file's PNG bytes
into the frame cache, ``data.cache_dir``; the second reuses the cache as it is), a few hundred samples
decoded (the second load then reads every frame's bytes once, as an epoch does), and the process's RSS
printed: anonymous memory (the process's own), file-backed pages of mapped files (libraries: the cache files
are read by range, not mapped) and the peak (``VmHWM``).

    python benchmarks/lerobot_png_memory.py [--dir /tmp/sfbench_lerobot_png] [--episodes 432 --total-steps 52970]
        [--keep]   # without --keep the dataset and its cache are deleted at the end (~27 GB at full size)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from synthetic_demos import camera_like_frames

from sfbench.train.data import lerobot_write
from sfbench.train.data.dataset import DataConfig, load_dataset
from sfbench.train.data.demos import Demo
from sfbench.train.data.frames import encode_png
from sfbench.train.data.tasks import suite_instructions

EPISODES, STEPS = 432, 52_970  # libero_spatial (../shared/reference/datasets.md)
RELEASED_BYTES_PER_FRAME = 69.9e9 / (2 * 273_465)  # HuggingFaceVLA/libero
NOISE_SIGMA = 3.5  # grey levels of noise on the smooth field: PNG size close to the released frames
POOL = 32  # distinct frames per view


def distinct(png: bytes, i: int) -> bytes:
    """``png`` with a ``tEXt`` chunk naming frame ``i`` after its IHDR (the pixels are unchanged)."""
    body = b"tEXt" + b"frame\0%d" % i
    chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    return png[:33] + chunk + png[33:]


def write_dataset(root: Path, n_episodes: int, n_steps: int) -> Path:
    """The synthetic dataset at ``root/<episodes>x<steps>`` (kept between runs; its info.json is written last)."""
    out = root / f"{n_episodes}x{n_steps}"
    if (out / "meta" / "info.json").is_file():
        return out
    pool = camera_like_frames(2 * POOL, 0, NOISE_SIGMA, encode_png)
    calls = iter(range(1 << 40))
    lerobot_write.encode_png = lambda image: distinct(pool[(i := next(calls)) % len(pool)], i)
    lerobot_write._image_stats = lambda frames: {"count": [len(frames)]}
    lengths = np.diff(np.linspace(0, n_steps, n_episodes + 1).round().astype(int))
    instructions = suite_instructions("libero_spatial")
    rng = np.random.default_rng(2)

    def demos():
        for e, t in enumerate(lengths):
            frame = np.broadcast_to(np.zeros((1, 256, 256, 3), np.uint8), (t, 256, 256, 3))
            yield Demo(rng.uniform(-1, 1, (t, 7)).astype(np.float32), rng.normal(size=(t, 8)).astype(np.float32),
                       {"agentview": frame, "wrist": frame}, instructions[e % len(instructions)], -1, {}, f"bench:{e}")

    lerobot_write.write_lerobot(out, demos(), lerobot_write.LeRobotWriteOptions(data_file_mb=100))
    return out


def rss_kib() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and VmHWM (peak RSS of this process image) of this process, KiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}


def touch_all(dataset) -> dict:
    """Read every frame's bytes once, as an epoch of training does (no decode), and the RSS after."""
    start = time.perf_counter()
    n = sum(len(d.images[v].encoded(t)) for d in dataset.demos for v in dataset.views for t in range(len(d.actions)))
    return {"bytes": n, "s": time.perf_counter() - start, "rss": rss_kib()}


def measure(path: str, cache_dir: str, epoch: bool) -> None:
    """In this (fresh) process: load the dataset for training, sample a few hundred steps, print RSS as JSON.

    With ``epoch``, every frame's bytes are then read once too (``touch_all``).
    """
    before = rss_kib()
    start = time.perf_counter()
    dataset, _ = load_dataset(DataConfig(path=path, cache_dir=cache_dir), ("agentview", "wrist"), 8)
    load_s = time.perf_counter() - start
    for i in range(0, len(dataset), max(1, len(dataset) // 200)):
        dataset[i]
    print(json.dumps({"before": before, "after": rss_kib(), "load_s": load_s, "samples": len(dataset),
                      "episodes": len(dataset.demos),
                      "peak_kib": rss_kib()["VmHWM"],
                      "epoch": touch_all(dataset) if epoch else None}))


def _run(path: Path, cache: Path, epoch: bool = False) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--measure", str(path), str(cache), str(int(epoch))],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _report(name: str, r: dict) -> None:
    gib = 1 / 2**20
    print(f"{name}: load {r['load_s']:.1f} s, {r['episodes']} episodes, {r['samples']} samples; RSS after "
          f"{r['after']['VmRSS'] * gib:.3f} GiB = {r['after']['RssAnon'] * gib:.3f} GiB anonymous + "
          f"{r['after']['RssFile'] * gib:.3f} GiB file-backed (before: {r['before']['RssAnon'] * gib:.3f} GiB "
          f"anonymous); peak RSS {r['peak_kib'] * gib:.3f} GiB")
    if r["epoch"]:
        e = r["epoch"]
        print(f"  then every frame's bytes read once ({e['bytes'] / 1e9:.2f} GB in {e['s']:.1f} s): RSS "
              f"{e['rss']['VmRSS'] * gib:.3f} GiB = {e['rss']['RssAnon'] * gib:.3f} GiB anonymous + "
              f"{e['rss']['RssFile'] * gib:.3f} GiB file-backed (the frames read stay in the OS page cache: clean, "
              "reclaimable, outside the process)")


def main() -> None:
    """Write (or reuse) the dataset, then measure a first (extracting) and a second (cached) load."""
    if sys.argv[1:2] == ["--measure"]:
        return measure(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/sfbench_lerobot_png"))
    ap.add_argument("--episodes", type=int, default=EPISODES)
    ap.add_argument("--total-steps", type=int, default=STEPS)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    path = write_dataset(args.dir, args.episodes, args.total_steps)
    cache = args.dir / f"cache_{args.episodes}x{args.total_steps}"
    shutil.rmtree(cache, ignore_errors=True)
    png = sum(p.stat().st_size for p in path.rglob("data/*/*.parquet"))
    print(f"dataset: {path} ({png / 1e9:.2f} GB of parquet; written or found in {time.perf_counter() - start:.0f} "
          f"s; released PNG frame {RELEASED_BYTES_PER_FRAME / 1e3:.1f} kB)")
    _report("first load (extracts the cache)", _run(path, cache))
    cached = sum(p.stat().st_size for p in cache.iterdir())
    print(f"cache: {cached / 1e9:.2f} GB in {len(list(cache.iterdir()))} files "
          f"({cached / (2 * args.total_steps) / 1e3:.1f} kB a frame)")
    _report("second load (reuses the cache)", _run(path, cache, epoch=True))
    if not args.keep:
        shutil.rmtree(path)
        shutil.rmtree(cache)


if __name__ == "__main__":
    main()
