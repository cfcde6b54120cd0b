"""``sfbench serve``: any sfbench policy behind openpi's websocket protocol.

Byte-compatible with openpi's ``WebsocketPolicyServer``: ``GET /healthz`` answers ``OK``; a client
first receives one binary frame with the policy's metadata, then each binary request frame
(msgpack-numpy) gets one binary answer with ``actions`` and ``server_timing``. An error is a text
frame followed by close code 1011; a frame over ``serve.max_frame_mb`` is refused with close code
1009. Either way the server goes on serving its other clients.
"""

from __future__ import annotations

import asyncio
import errno
import http
import logging
import time
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from sfbench.core.errors import InvalidConfig
from sfbench.serve.batcher import Batcher
from sfbench.serve.layouts import LayoutError, observation
from sfbench.serve.wire import WireError, packb, unpackb

log = logging.getLogger(__name__)
HEALTH_PATH = "/healthz"
INTERNAL_ERROR = 1011


@dataclass
class ServeConfig:
    """The ``serve`` section of ``configs/serve.yaml``.

    Args:
        host: Interface to bind (127.0.0.1: this machine only; 0.0.0.0: every interface).
        port: TCP port (openpi's default 8000; 0 = any free port).
        api_key: When set, connections without ``Authorization: Api-Key <key>`` are refused (401).
        max_batch: Queries answered by one forward pass at most.
        max_wait_ms: How long the first query of a batch waits for others.
        max_frame_mb: Largest request frame accepted.
        suite: Suite assumed for clients that send no episode entry (openpi's LIBERO client).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_frame_mb: float = 16.0
    suite: str = "libero_spatial"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InvalidConfig(f"serve.port={self.port} is not a TCP port (0-65535)")
        if self.max_batch < 1 or self.max_wait_ms < 0 or self.max_frame_mb <= 0:
            raise InvalidConfig(f"serve.max_batch={self.max_batch} must be >= 1, serve.max_wait_ms="
                                f"{self.max_wait_ms} >= 0 and serve.max_frame_mb={self.max_frame_mb} > 0")


class PolicyServer:
    """The websocket front of a :class:`Batcher`."""

    def __init__(self, batcher: Batcher, config: ServeConfig):
        self.batcher, self.config = batcher, config
        self.metadata = packb(batcher.metadata)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == HEALTH_PATH:
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        key = self.config.api_key
        if key and request.headers.get("Authorization") != f"Api-Key {key}":
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong API key\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        session = self.batcher.open()
        try:
            await ws.send(self.metadata)
            previous_ms = None
            async for message in ws:
                start = time.perf_counter()
                try:
                    if isinstance(message, str):
                        raise LayoutError("requests are binary msgpack frames, not text")
                    obs, episode = observation(unpackb(message))
                except (WireError, LayoutError) as e:
                    await self._fail(ws, f"bad request: {e}")
                    return
                answer = await self._infer(ws, session, obs, episode)
                if answer is None:
                    return
                timing = {"infer_ms": 1000 * (time.perf_counter() - start)}
                if previous_ms is not None:
                    timing["prev_total_ms"] = previous_ms
                await ws.send(packb({"actions": answer, "server_timing": timing}))
                previous_ms = 1000 * (time.perf_counter() - start)
        except ConnectionClosed:
            pass
        finally:
            self.batcher.end(session)

    async def _infer(self, ws: ServerConnection, session: Any, obs: dict, episode: dict | None) -> Any:
        """The chunk, or None when the client left (its query is dropped) or the policy failed."""
        future = asyncio.wrap_future(self.batcher.submit(session, obs, episode))
        closed = asyncio.ensure_future(ws.wait_closed())
        done, _ = await asyncio.wait({future, closed}, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if future not in done:
            future.cancel()
            return None
        try:
            return future.result()
        except Exception as e:  # the policy failed on this query: tell this client only
            await self._fail(ws, f"policy error: {type(e).__name__}: {e}")
            return None

    @staticmethod
    async def _fail(ws: ServerConnection, text: str) -> None:
        log.warning("%s: %s", ws.remote_address, text)
        try:
            await ws.send(text)
            await ws.close(INTERNAL_ERROR, text[:120])
        except ConnectionClosed:
            pass

    async def serve_forever(self, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
        """Listen until ``stop`` is set (forever without one); ``ready`` is set once listening."""
        c = self.config
        try:
            server = await serve(self._handle, c.host, c.port, compression=None,
                                 max_size=int(c.max_frame_mb * 2**20), process_request=self._process_request)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InvalidConfig(f"serve.port={c.port} is in use on {c.host}; choose another port") from None
            raise InvalidConfig(f"Cannot listen on {c.host}:{c.port} ({e.strerror or e})") from None
        async with server:
            self.port = server.sockets[0].getsockname()[1]
            if ready:
                ready.set()
            await (stop.wait() if stop else asyncio.Future())
