"""A served evaluation run: one policy server, and the run's env shards as its clients.

With ``server.enabled=true`` the policy is loaded once, by a server (a GPU job under
``launcher=slurm``, a thread of this process under ``launcher=local``), instead of once per shard
and worker. The server writes ``<run_dir>/server.json`` once it listens; every shard connects to
the address there (waiting, bounded, for it), one connection per env worker, and the server
batches their queries. A server that dies fails the queries in flight; the shards reconnect to the
address of its requeued job, and episodes that find no server are infrastructure errors (retried,
not scored). The server exits once every planned episode is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sfbench.core import provenance
from sfbench.core.errors import InvalidConfig
from sfbench.core.io import write_json_atomic
from sfbench.core.task import TaskSpec
from sfbench.eval.rundir import RunDir
from sfbench.policies import make_policy
from sfbench.policies.remote import RemoteConfig, RemotePolicy
from sfbench.serve.batcher import Batcher
from sfbench.serve.server import PolicyServer, ServeConfig

if TYPE_CHECKING:
    from sfbench.eval.shards import RunSpec

log = logging.getLogger(__name__)


@dataclass
class ServerSettings:
    """The ``server`` section of ``configs/eval.yaml``.

    Args:
        enabled: Serve the policy once for the whole run; the shards query it over the network.
        gpus: GPUs of the server job (``launcher=slurm``); the shard jobs keep ``launcher.gpus_per_node``.
        wait_s: How long a shard waits for the server's address.
        max_batch: Queries answered by one forward pass at most.
        max_wait_ms: How long the first query of a batch waits for others.
        poll_s: Seconds between the server's checks whether the run is complete.
    """

    enabled: bool = False
    gpus: int = 1
    wait_s: float = 600.0
    max_batch: int = 8
    max_wait_ms: float = 5.0
    poll_s: float = 5.0

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.wait_s <= 0 or self.max_batch < 1 or self.max_wait_ms < 0 or self.poll_s <= 0:
            raise InvalidConfig(f"Invalid server settings: gpus={self.gpus} (>= 0), wait_s={self.wait_s} (> 0), "
                                f"max_batch={self.max_batch} (>= 1), max_wait_ms={self.max_wait_ms} (>= 0), "
                                f"poll_s={self.poll_s} (> 0)")


def remote_policy(spec: RunSpec, settings: ServerSettings) -> RemotePolicy:
    """A shard's client of the run's server, recorded under the served policy's name."""
    return RemotePolicy(RemoteConfig(name=spec.policy["name"], layout="sfbench",
                                     address_file=str(RunDir(spec.run_dir).server_file), wait_s=settings.wait_s))


def serve_run(spec: RunSpec, settings: ServerSettings, done: Callable[[], bool],
              stop: threading.Event | None = None, *,
              host: str = "0.0.0.0") -> None:
    """Serve ``spec``'s policy until ``done()`` says the run is complete (or ``stop`` is set)."""
    task = TaskSpec(suite=spec.suite.name, task_id=0, name="", instruction="", action_dim=7)
    batcher = Batcher(lambda: make_policy(spec.policy), task, max_batch=settings.max_batch,
                      max_wait_ms=settings.max_wait_ms)
    server = PolicyServer(batcher, ServeConfig(host=host, port=0, max_batch=settings.max_batch))

    async def main() -> None:
        ready, finished = asyncio.Event(), asyncio.Event()
        serving = asyncio.ensure_future(server.serve_forever(ready, finished))
        await ready.wait()
        address = socket.gethostname() if host == "0.0.0.0" else host
        write_json_atomic(RunDir(spec.run_dir).server_file,
                          {"host": address, "port": server.port, "job_id": provenance.job_id()})
        log.info("Policy server of %s on ws://%s:%d", spec.run_id, address, server.port)
        while not (done() or (stop is not None and stop.is_set())):
            await asyncio.sleep(settings.poll_s)
        finished.set()
        await serving

    try:
        asyncio.run(main())
    finally:
        RunDir(spec.run_dir).server_file.unlink(missing_ok=True)  # no stale address for a later run
        batcher.close()
