"""Policy serving throughput: actions per second and per-query overhead vs the number of clients.

N clients (threads) query one tiny OpenVLA-OFT (the checkpoint of ``sfbench.policies.openvla_oft.tiny``,
float32 on CPU) with LIBERO-sized observations (two 256 x 256 views), either in process (straight
into the batcher) or over loopback websockets (``policy=remote`` against ``sfbench serve``). The
per-query overhead is measured apart, with ``policy=zero`` (no compute), as the median loopback
round trip minus the median in-process one at N = 1.

    python benchmarks/serve_throughput.py [--queries 20] [--clients 1 2 4 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from sfbench.core.task import TaskSpec
from sfbench.policies.openvla_oft import OpenVLAOFTConfig, OpenVLAOFTPolicy
from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
from sfbench.policies.remote import RemoteConfig, RemotePolicy
from sfbench.policies.zero import ZeroConfig, ZeroPolicy
from sfbench.serve.batcher import Batcher
from sfbench.serve.layouts import episode_info
from sfbench.serve.server import PolicyServer, ServeConfig

TASK = TaskSpec(suite="libero_spatial", task_id=0, name="t", instruction="pick up the black bowl", action_dim=7)


def observation(rng: np.random.Generator) -> dict:
    """A LIBERO-sized observation (two 256 px views, proprio, instruction)."""
    return {"agentview": rng.integers(0, 255, (256, 256, 3), dtype=np.uint8),
            "wrist": rng.integers(0, 255, (256, 256, 3), dtype=np.uint8),
            "proprio": rng.normal(size=8).astype(np.float32) * 0.1, "instruction": TASK.instruction}


def run_clients(query, n: int, queries: int) -> tuple[float, float]:
    """(actions per second, median seconds per query) of ``n`` threads each sending ``queries``."""
    obs = observation(np.random.default_rng(0))
    times: list[float] = []

    def client(k: int) -> None:
        for _ in range(queries):
            start = time.perf_counter()
            query(k, obs)
            times.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(client, range(n)))
    elapsed = time.perf_counter() - start
    return n * queries * 8 / elapsed, statistics.median(times)


def serve_in_thread(batcher: Batcher, max_batch: int = 8) -> PolicyServer:
    """``batcher`` behind ``sfbench serve``'s websocket server on a free loopback port, in a background thread."""
    server = PolicyServer(batcher, ServeConfig(port=0, max_batch=max_batch))
    ready = threading.Event()

    async def main() -> None:
        up = asyncio.Event()
        task = asyncio.ensure_future(server.serve_forever(up))
        await up.wait()
        ready.set()
        await task

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    if not ready.wait(60):
        raise RuntimeError("the policy server did not start within 60 s")
    return server


def main(args: argparse.Namespace) -> None:
    """Print one row per (path, N)."""
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_tiny_checkpoint(Path(tmp) / "tiny")
        batcher = Batcher(lambda: OpenVLAOFTPolicy(OpenVLAOFTConfig(checkpoint=str(ckpt), device="cpu")), TASK,
                          max_batch=8, max_wait_ms=args.max_wait_ms)
        server = serve_in_thread(batcher)
        episode = episode_info(TASK, 0)
        rows = {}
        for n in args.clients:
            sessions = [batcher.open() for _ in range(n)]
            for s in sessions:
                batcher.submit(s, observation(np.random.default_rng(1)), episode).result()
            rows["in-process", n] = run_clients(lambda k, obs, ss=sessions: batcher.submit(ss[k], obs).result(),
                                                n, args.queries)
            for s in sessions:  # an open session would hold every batch open for its query
                batcher.end(s)
            clients = [RemotePolicy(RemoteConfig(port=server.port)) for _ in range(n)]
            for c in clients:
                c.reset(TASK, seed=0)
            rows["loopback", n] = run_clients(lambda k, obs, cs=clients: cs[k].act(obs), n, args.queries)
            for c in clients:
                c.close()
        base = {path: rows[path, args.clients[0]][0] for path in ("in-process", "loopback")}
        for (path, n), (aps, median_s) in rows.items():
            print(f"{path:10s} N={n}: {aps:7.1f} actions/s ({aps / base[path] / n:.2f} x N x single), "
                  f"median query {1000 * median_s:.1f} ms")
        batcher.close()
    overhead_ms()


def overhead_ms(queries: int = 300) -> None:
    """Round trip of ``policy=zero`` in process and over loopback: what serving itself costs."""
    batcher = Batcher(lambda: ZeroPolicy(ZeroConfig()), TASK)
    server = serve_in_thread(batcher)
    session = batcher.open()
    _, in_process = run_clients(lambda k, obs: batcher.submit(session, obs).result(), 1, queries)
    batcher.end(session)
    client = RemotePolicy(RemoteConfig(port=server.port))
    client.reset(TASK, seed=0)
    _, loopback = run_clients(lambda k, obs: client.act(obs), 1, queries)
    print(f"policy=zero, two 256 px views: in-process {1000 * in_process:.2f} ms, loopback {1000 * loopback:.2f} ms "
          f"per query; loopback overhead {1000 * (loopback - in_process):.2f} ms")
    client.close()
    batcher.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    main(parser.parse_args())
