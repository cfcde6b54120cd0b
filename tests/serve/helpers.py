"""Servers on loopback for the serving tests: sfbench's own, and misbehaving stand-ins."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sfbench.core.task import TaskSpec
from sfbench.policies.base import Policy, Requirements
from sfbench.serve.batcher import Batcher
from sfbench.serve.server import PolicyServer, ServeConfig
from sfbench.serve.wire import packb, unpackb

TASK = TaskSpec(suite="fake_suite", task_id=0, name="reach_0", instruction="reach", action_dim=7)


@dataclass
class ReachConfig:
    name: str = "reach"
    chunk: int = 8


class ReachPolicy(Policy):
    """Solves tests.fakes.ReachEnv from its proprio (x, target); counts its resets."""

    name = "reach"
    config_class = ReachConfig
    batchable = True

    def __init__(self, config: ReachConfig | None = None):
        self.config = config or ReachConfig()
        self.resets: list[TaskSpec] = []

    @property
    def requirements(self) -> Requirements:
        return Requirements(views=())

    def reset(self, task: TaskSpec, *, seed: int | None = None) -> None:
        self.resets.append(task)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        x, target = obs["proprio"][:2]
        chunk = np.zeros((self.config.chunk, 7), np.float32)
        chunk[0, 0] = np.clip((target - x) * 10, -1, 1)
        return chunk


class Loopback:
    """An asyncio server running in a thread; ``start`` returns once it listens."""

    def __init__(self, run: Callable[[asyncio.Event, asyncio.Event], Awaitable[int]]):
        self.run, self.port = run, 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> Loopback:
        self.thread.start()
        self.ready, self.stop_event = asyncio.Event(), asyncio.Event()
        self.task = asyncio.run_coroutine_threadsafe(self.run(self.ready, self.stop_event), self.loop)
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(self.ready.wait(), 10), self.loop).result(15)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.task.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def sfbench_server(policy_factory: Callable[[], Policy] = ReachPolicy, **serve: Any) -> tuple[Loopback, Batcher]:
    """``sfbench serve`` of ``policy_factory`` on a free loopback port."""
    batcher = Batcher(policy_factory, TASK, max_batch=serve.pop("max_batch", 8),
                      max_wait_ms=serve.pop("max_wait_ms", 5.0))
    server = PolicyServer(batcher, ServeConfig(port=0, **serve))

    async def run(ready: asyncio.Event, stop: asyncio.Event) -> int:
        inner = asyncio.Event()
        task = asyncio.ensure_future(server.serve_forever(inner, stop))
        await inner.wait()
        loop.port = server.port
        ready.set()
        await task
        return server.port

    loop = Loopback(run)
    return loop.start(), batcher


def raw_server(on_request: Callable[[Any, Any], Awaitable[None]], metadata: dict | None = None) -> Loopback:
    """A websocket server that sends ``metadata`` and hands every request to ``on_request(ws, obs)``."""
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        await ws.send(packb(metadata or {}))
        async for message in ws:
            await on_request(ws, unpackb(message))

    async def run(ready: asyncio.Event, stop: asyncio.Event) -> int:
        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
            loop.port = server.sockets[0].getsockname()[1]
            ready.set()
            await stop.wait()
        return loop.port

    loop = Loopback(run)
    return loop.start()
