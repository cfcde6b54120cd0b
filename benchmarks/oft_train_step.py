"""OpenVLA-OFT fine-tuning step: seconds per step and peak memory, openvla_oft vs openvla_sf.

Runs the real trainer (LoRA recipe; SF with the VGGT teacher in plain torch) on synthetic demos in
LIBERO's layout, at batch 1 and 8, for three runs: openvla_oft, openvla_sf with cached teacher
features (every sample's VGGT features computed before timing) and openvla_sf with online VGGT
(the in-memory store is emptied before each step, so VGGT runs on every sample, as in a first
epoch). The runs' steps are interleaved, so that a slower or faster phase of the machine hits
them alike.

- ``--scale tiny`` (the default on CPU): the tiny checkpoint of ``sfbench.policies.openvla_oft.tiny``
  and a 2-round, 32-d VGGT, float32.
- ``--scale full`` (the default on CUDA): DINOv2-L/14-reg4 + SigLIP-so400m + Llama-2-7B and
  VGGT-1B's aggregator with random weights, ``train.precision=bf16``.

    python benchmarks/oft_train_step.py [--device cuda] [--steps 10] [--batches 1 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from synthetic_demos import write_demos

from sfbench.core.images import center_box
from sfbench.policies.openvla_oft.checkpoint import llama_config, write_checkpoint
from sfbench.policies.openvla_oft.constants import PAD_ID, VOCAB_SIZE
from sfbench.policies.openvla_oft.model import OpenVLAOFT
from sfbench.policies.openvla_oft.tiny import (
    ACTION_STATS,
    PROPRIO_STATS,
    openvla_config,
    preprocessor_config,
    synthetic_tokenizer,
    write_tiny_checkpoint,
)
from sfbench.policies.openvla_oft.vit import TOWERS
from sfbench.train.trainer import Trainer, TrainJob
from sfbench.train.vggt import PREFIX, Aggregator, AggregatorShape

TINY_VGGT = AggregatorShape(dim=32, depth=2, heads=2, embed_depth=2, embed_heads=2, image_size=56)
FULL_TOWERS = ("vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224")
RUNS = ("openvla_oft", "openvla_sf cached VGGT", "openvla_sf online VGGT")


def write_full_base(path: Path, device: str) -> Path:
    """The full-size OpenVLA architecture with random bf16 weights, in the released layout."""
    with torch.device(device):
        torch.set_default_dtype(torch.bfloat16)
        model = OpenVLAOFT(TOWERS[FULL_TOWERS[0]], TOWERS[FULL_TOWERS[1]],
                           llama_config({"vocab_size": VOCAB_SIZE, "pad_token_id": PAD_ID}))
        torch.set_default_dtype(torch.float32)
    stats = {"sfbench_demos": {"action": ACTION_STATS, "proprio": PROPRIO_STATS}}
    return write_checkpoint(path, model, openvla_config({}, *FULL_TOWERS, None), stats=stats,
                            preprocessor=preprocessor_config(), tokenizer_json=synthetic_tokenizer().to_str(),
                            suffix="0_checkpoint.pt")


def write_vggt(path: Path, shape: AggregatorShape) -> Path:
    """A VGGT ``model.pt`` (aggregator only) with random weights."""
    torch.manual_seed(0)
    torch.save({PREFIX + k: v for k, v in Aggregator(shape).state_dict().items()}, path)
    return path


def trainer(run: str, base: Path, vggt: Path, shape: AggregatorShape, out: Path, args: argparse.Namespace) -> Trainer:
    """A trainer of ``run`` (one of :data:`RUNS`), with every sample's teacher features in memory."""
    policy = run.split()[0]
    train = {"steps": 10_000, "batch_size": 1, "progress": False, "num_threads": args.threads,
             "device": args.device, "precision": "bf16" if args.scale == "full" else "fp32"}
    teacher = {"name": "vggt", "checkpoint": str(vggt), "heads": shape.heads, "embed_heads": shape.embed_heads,
               "cache_dir": None}
    job = TrainJob(out / run.replace(" ", "_"), {"name": policy, "base": str(base)}, {"path": str(out / "data")},
                   train, teacher, {"method": "sf"} if policy == "openvla_sf" else None)
    t = Trainer(job)
    if t.targets:
        for i in range(len(t.dataset)):
            item = t.dataset[i]
            t.targets([item], [[center_box(*item["images"].shape[1:3], 1.0)] * len(item["images"])])
    return t


def timed_step(t: Trainer, run: str, step: int, batch: int, cuda: bool) -> tuple[float, float]:
    """Seconds and peak device memory (GiB; RSS on CPU) of one step at ``batch``."""
    t.settings = dataclasses.replace(t.settings, batch_size=batch)
    if run.endswith("online VGGT"):
        t.targets.memory.clear()
        t.targets.used = 0
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    t.step(step)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return seconds, peak / 2**30


def main(args: argparse.Namespace) -> None:
    """Build the three trainers, then time their steps interleaved at each batch size."""
    cuda = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        shape = AggregatorShape() if args.scale == "full" else TINY_VGGT
        base = write_full_base(out / "base", args.device) if args.scale == "full" else \
            write_tiny_checkpoint(out / "base")
        vggt = write_vggt(out / "vggt.pt", shape)
        write_demos(out / "data" / "bench_demo.hdf5")
        trainers = {run: trainer(run, base, vggt, shape, out, args) for run in RUNS}
        where = torch.cuda.get_device_name() if cuda else "cpu"
        for batch in args.batches:
            times: dict[str, list[float]] = {run: [] for run in RUNS}
            peaks: dict[str, float] = dict.fromkeys(RUNS, 0.0)
            for step in range(args.warmup + args.steps):
                for run, t in trainers.items():
                    seconds, peak = timed_step(t, run, step, batch, cuda)
                    if step >= args.warmup:
                        times[run].append(seconds)
                        peaks[run] = max(peaks[run], peak)
            medians = {run: statistics.median(ts) for run, ts in times.items()}
            for run in RUNS:
                overhead = "" if run == RUNS[0] else f" ({100 * (medians[run] / medians[RUNS[0]] - 1):+.1f}%)"
                memory = "peak GPU memory" if cuda else "peak RSS (process)"
                print(f"{args.scale} {run}, {where}, batch {batch}: {medians[run]:.3f} s/step{overhead}, "
                      f"{memory} {peaks[run]:.1f} GiB (median of {args.steps})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<i>")
    parser.add_argument("--scale", choices=["tiny", "full"], default=None, help="default: full on CUDA, else tiny")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parsed = parser.parse_args()
    parsed.scale = parsed.scale or ("full" if parsed.device.startswith("cuda") else "tiny")
    main(parsed)
