"""``sfbench serve``: resolve the config, check the port, load the policy, serve until stopped."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sfbench.config.schema import make_config
from sfbench.config.tree import load_suite
from sfbench.core.errors import InvalidConfig
from sfbench.core.task import TaskSpec
from sfbench.policies import make_policy, make_policy_config
from sfbench.serve.batcher import Batcher
from sfbench.serve.server import HEALTH_PATH, PolicyServer, ServeConfig

log = logging.getLogger(__name__)


def check_port(host: str, port: int) -> None:
    """Refuse a port that another process listens on, before any policy is loaded."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InvalidConfig(f"serve.port={port} is in use on {host}; choose another port") from None
            raise InvalidConfig(f"Cannot listen on serve.host={host} port {port} ({e.strerror or e})") from None


def build_server(cfg: DictConfig) -> PolicyServer:
    """The server of a resolved ``serve`` config (the policy loaded, nothing listening yet)."""
    container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    config = make_config(ServeConfig, container["serve"], what="serve")
    suite = load_suite(config.suite)
    policy_cfg = container["policy"]
    make_policy_config(policy_cfg)
    check_port(config.host, config.port)
    default = TaskSpec(suite=suite.name, task_id=0, name="", instruction="", action_dim=7)
    batcher = Batcher(lambda: make_policy(policy_cfg), default, max_batch=config.max_batch,
                      max_wait_ms=config.max_wait_ms)
    return PolicyServer(batcher, config)


def run_serve(cfg: DictConfig, announce: Any = print) -> None:
    """Serve until SIGINT or SIGTERM, then close the connections; ``announce`` gets where.

    The signals are taken by the event loop: a handler raising in the main thread would land inside
    whatever task step is running, and asyncio keeps such an exception in that task (a connection's),
    so the server would go on serving.
    """
    server = build_server(cfg)

    async def main() -> None:
        ready, stop = asyncio.Event(), asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        task = asyncio.ensure_future(server.serve_forever(ready, stop))
        await asyncio.wait({task, asyncio.ensure_future(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            c, meta = server.config, server.batcher.metadata
            announce(f"serving {meta['name']} ({meta['checkpoint_id']}) on ws://{c.host}:{server.port} "
                     f"(health: http://{c.host}:{server.port}{HEALTH_PATH}); Ctrl-C stops")
        await task

    try:
        asyncio.run(main())
    finally:
        server.batcher.close()
