"""The 7B check for one GPU: OFT ``act`` latency, one LoRA + SF training step, serving, LIBERO episodes/hour.

One table, in this order (each row says what was measured and where):

1. ``act`` of the full-size OpenVLA-OFT (DINOv2-L/14-reg4 + SigLIP-so400m + Llama-2-7B, random
   weights built in place on the device in bf16, nothing written to disk) at batch 1, 8 and 32,
   through the real adapter (OFT's image chain included), with the peak device memory, and the
   image chain's own cost per view (on the CPU) beside it.
2. One LoRA + Spatial Forcing training step (``sfbench``'s trainer, ``train.precision=bf16``,
   VGGT-1B's aggregator with random weights) with the teacher run online and with its features
   cached, and the peak memory. The trainer loads its base from a checkpoint directory, so this
   row writes the random 7B base to a temporary directory first (~15 GB).
3. ``sfbench serve`` of the 7B policy (the row-1 instance) to N = 1, 4 and 16 loopback websocket
   clients: actions per second and the ratio to N x the single-client rate.
4. The LIBERO env step cost measured here (libero_spatial, both 256 px views, protocol
   ``libero_oft``), and the episodes per hour rows 1 and 3 imply for a 230-step episode (220 + the
   10 wait steps; an upper bound on an episode's length): one env querying its own policy, and N
   envs (one process and core each) sharing the server at row 3's rate.

``--tiny`` runs the same code with the tiny checkpoint's shapes, float32 on CPU (a test runs it).

    python benchmarks/gpu_check.py            # on one H100: under 8 minutes
    python benchmarks/gpu_check.py --tiny     # this CPU: under 3 minutes
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from oft_train_step import TINY_VGGT, timed_step, trainer, write_full_base, write_vggt
from serve_throughput import observation, run_clients, serve_in_thread
from synthetic_demos import write_demos

from sfbench.core.task import TaskSpec
from sfbench.policies.openvla_oft import OpenVLAOFT, OpenVLAOFTConfig, OpenVLAOFTPolicy
from sfbench.policies.openvla_oft.checkpoint import OFTCheckpoint, llama_config
from sfbench.policies.openvla_oft.constants import PAD_ID, VOCAB_SIZE
from sfbench.policies.openvla_oft.processing import image_pixels
from sfbench.policies.openvla_oft.tiny import (
    ACTION_STATS,
    PROPRIO_STATS,
    TINY_DINO,
    TINY_SIGLIP,
    TINY_TEXT,
    preprocessor_config,
    synthetic_tokenizer,
    write_tiny_checkpoint,
)
from sfbench.policies.openvla_oft.vit import TOWERS
from sfbench.policies.remote import RemoteConfig, RemotePolicy
from sfbench.serve.batcher import Batcher
from sfbench.train.vggt import AggregatorShape

TASK = TaskSpec(suite="libero_spatial", task_id=0, name="t", instruction="pick up the black bowl", action_dim=7)
FULL_TOWERS = ("vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224")
EPISODE_STEPS = 230  # libero_spatial: 220 max steps + 10 wait steps (run_libero_eval.py)
CHUNK = 8  # actions per query, executed open-loop


class Table:
    """Rows of (measurement, setting, value, memory), printed once at the end."""

    def __init__(self, where: str):
        self.where, self.rows = where, []

    def add(self, what: str, setting: str, value: str, memory: str = "") -> None:
        """One row (also printed at once, so a run cut short still shows what it measured)."""
        self.rows.append((what, setting, value, memory))
        print(f"  .. {what} | {setting} | {value} | {memory}", flush=True)

    def show(self) -> None:
        """The whole table, as Markdown."""
        widths = [max(len(r[i]) for r in [("measurement", "setting", "value", "peak memory"), *self.rows])
                  for i in range(4)]
        print(f"\ngpu_check on {self.where}")
        for row in [("measurement", "setting", "value", "peak memory"), tuple("-" * w for w in widths), *self.rows]:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def peak_gib(cuda: bool) -> float:
    """Peak device memory since the last reset (CUDA), else the process's peak RSS."""
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def in_memory_policy(full: bool, device: str) -> OpenVLAOFTPolicy:
    """The OFT adapter around a randomly initialised network built on ``device`` (bf16 on CUDA), no files."""
    dino, siglip = (TOWERS[FULL_TOWERS[0]], TOWERS[FULL_TOWERS[1]]) if full else (TINY_DINO, TINY_SIGLIP)
    llama = llama_config({"vocab_size": VOCAB_SIZE, "pad_token_id": PAD_ID, **({} if full else TINY_TEXT)})
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        torch.set_default_dtype(dtype)
        try:
            model = OpenVLAOFT(dino, siglip, llama).eval()
        finally:
            torch.set_default_dtype(torch.float32)
    image_stats = tuple((p["mean"], p["std"]) for p in preprocessor_config()["tvf_normalize_params"])
    stats = {f"{TASK.suite}_no_noops": {"action": ACTION_STATS, "proprio": PROPRIO_STATS}}
    policy = OpenVLAOFTPolicy.__new__(OpenVLAOFTPolicy)
    policy.config = OpenVLAOFTConfig(device=device)
    policy.ckpt = OFTCheckpoint(Path("<in memory>"), dino, siglip, llama, (), {}, stats, image_stats, {})
    policy.device, policy.model, policy.tokenizer = torch.device(device), model, synthetic_tokenizer()
    policy.stats, policy.checkpoint_hash = {}, "random"
    policy.reset(TASK)
    return policy


def timed(fn, repeats: int, cuda: bool) -> float:
    """Median seconds of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def act_rows(table: Table, policy: OpenVLAOFTPolicy, batches: list[int], repeats: int, cuda: bool) -> dict:
    """``act`` latency per batch size; returns {batch: seconds}."""
    rng, seconds = np.random.default_rng(0), {}
    for batch in batches:
        obs = [observation(rng) for _ in range(batch)]
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds[batch] = timed(lambda obs=obs: policy.act_batch(obs), repeats, cuda)
        table.add("act (8-action chunk)", f"batch {batch}", f"{1000 * seconds[batch]:.1f} ms "
                  f"({1000 * seconds[batch] / batch:.1f} ms per env)", f"{peak_gib(cuda):.1f} GiB")
    views = [obs["agentview"] for obs in (observation(rng) for _ in range(16))]
    chain = timed(lambda: image_pixels(views, policy.ckpt.image_stats, True), repeats, False) / len(views)
    table.add("OFT image chain (in act)", "per view, CPU", f"{1000 * chain:.2f} ms "
              f"({100 * 2 * max(batches) * chain / seconds[max(batches)]:.0f}% of act at batch {max(batches)})")
    return seconds


def serve_rows(table: Table, policy: OpenVLAOFTPolicy, clients: list[int], queries: int) -> dict:
    """Loopback websocket clients against one server; returns {N: actions per second}."""
    batcher = Batcher(lambda: policy, TASK, max_batch=max(clients), max_wait_ms=5.0)
    server = serve_in_thread(batcher, max(clients))
    rates = {}
    for n in clients:
        remote = [RemotePolicy(RemoteConfig(port=server.port)) for _ in range(n)]
        for c in remote:
            c.reset(TASK, seed=0)
        rates[n], median_s = run_clients(lambda k, obs, cs=remote: cs[k].act(obs), n, queries)
        ratio = rates[n] / (n * rates[clients[0]])
        table.add("sfbench serve, loopback", f"N = {n} clients", f"{rates[n]:.1f} actions/s ({ratio:.2f} x N x single)",
                  f"median query {1000 * median_s:.0f} ms")
        for c in remote:
            c.close()
    batcher.close()
    return rates


def train_rows(table: Table, args: argparse.Namespace, tmp: Path, cuda: bool) -> None:
    """One LoRA + SF step with VGGT online, then with its features cached (the trainer of oft_train_step)."""
    shape = TINY_VGGT if args.tiny else AggregatorShape()
    base = write_tiny_checkpoint(tmp / "base") if args.tiny else write_full_base(tmp / "base", args.device)
    vggt = write_vggt(tmp / "vggt.pt", shape)
    write_demos(tmp / "data" / "bench_demo.hdf5")
    t = trainer("openvla_sf cached VGGT", base, vggt, shape, tmp, args)  # every sample's features in memory
    timed_step(t, "openvla_sf cached VGGT", 0, args.train_batch, cuda)  # warm-up (and allocator)
    for step, run in enumerate(("openvla_sf cached VGGT", "openvla_sf online VGGT"), start=1):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds, peak = timed_step(t, run, step, args.train_batch, cuda)
        table.add("LoRA + SF training step", f"batch {args.train_batch}, {run.split(' ', 1)[1]}",
                  f"{seconds:.2f} s/step", f"{peak:.1f} GiB")


def env_step_s(steps: int) -> float:
    """Median seconds of one LIBERO step (libero_spatial task 0, both views rendered, protocol libero_oft)."""
    from sfbench.config.tree import load_protocol, load_suite
    from sfbench.envs import make_env

    env = make_env(load_suite("libero_spatial"), 0, load_protocol("libero_oft"))
    env.reset(options={"init_state_index": 0})
    action, times = np.zeros(7, np.float32), []
    for _ in range(steps):
        start = time.perf_counter()
        env.step(action)
        times.append(time.perf_counter() - start)
    env.close()
    return statistics.median(times)


def episode_rows(table: Table, step_s: float, act_s: dict, rates: dict) -> None:
    """Episodes per hour: one env with its own ``act`` at batch 1, and N envs sharing the server."""
    per_step = step_s + act_s[1] / CHUNK
    table.add("LIBERO episodes/hour", "1 env, act batch 1", f"{3600 / (EPISODE_STEPS * per_step):.0f}",
              f"{1000 * per_step:.1f} ms per control step")
    for n, rate in rates.items():
        per_step = step_s + n / rate  # each client waits its share of the server's action rate
        table.add("LIBERO episodes/hour", f"{n} envs on the server (a core each)",
                  f"{n * 3600 / (EPISODE_STEPS * per_step):.0f}", f"{1000 * per_step:.1f} ms per control step")


def main(args: argparse.Namespace) -> Table:
    """Build, measure, print the table (and return it)."""
    cuda = args.device.startswith("cuda")
    torch.set_num_threads(args.threads)
    table = Table(f"{torch.cuda.get_device_name()}, bf16" if cuda else "cpu (tiny shapes, float32)")
    start = time.perf_counter()
    policy = in_memory_policy(not args.tiny, args.device)
    act_s = section(table, "act", act_rows, table, policy, args.batches, args.repeats, cuda)
    rates = section(table, "serve", serve_rows, table, policy, args.clients, args.queries)
    del policy
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory() as tmp:
        section(table, "training step", train_rows, table, args, Path(tmp), cuda)
    step_s = section(table, "LIBERO env step", env_step_s, args.env_steps)
    if step_s is not None:
        table.add("LIBERO env step", "libero_spatial, 2 views 256 px", f"{1000 * step_s:.1f} ms")
        if act_s and rates:
            episode_rows(table, step_s, act_s, rates)
    table.add("gpu_check wall time", "", f"{time.perf_counter() - start:.0f} s")
    table.show()
    return table


def section(table: Table, name: str, fn, *args):
    """``fn(*args)``, one part of the check; a failure (e.g. out of memory) becomes a row, the others still run."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 -- a check reports every part it could measure
        table.add(name, "FAILED", " ".join(f"{type(e).__name__}: {e}".split())[:160])
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults: the GPU check; ``--tiny``: the same code, small, on CPU."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, float32 on CPU (< 3 min)")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 with --tiny, else 16)")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    args.threads = args.threads or (1 if args.tiny else 16)  # a shared CPU: 2 threads wait on each other
    args.scale = "tiny" if args.tiny else "full"  # what oft_train_step's trainer reads
    args.batches = [1, 8, 32]
    args.clients = [1, 4, 16]
    args.repeats = 1 if args.tiny else 5
    args.queries = 2 if args.tiny else 8
    args.train_batch = 2 if args.tiny else 8
    args.env_steps = 20 if args.tiny else 100
    return args


if __name__ == "__main__":
    main(parse_args())
