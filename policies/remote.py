"""``policy=remote``: a policy that runs elsewhere, behind openpi's websocket protocol.

Talks to any server speaking it: ``sfbench serve`` or openpi's ``serve_policy.py``. Each instance
holds one connection (one per env worker), so a server sees ``eval.num_workers`` clients and can
batch them. Every wait is bounded: connecting (``connect_tries`` with doubling backoff) and each
answer (``timeout_s``). A connection lost mid-episode (the server died, the network broke) is an
infrastructure fault: the episode is not scored and is retried; the next query reconnects. Only an
error frame, the server's word that the policy itself raised, fails the episode (``policy_error``).
A missing answer fails it as ``policy_timeout``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from sfbench.core.constants import OBS_AGENTVIEW, OBS_WRIST
from sfbench.core.errors import InvalidConfig, SfbenchError, UnknownChoice
from sfbench.core.task import TaskSpec
from sfbench.policies.base import Policy, PolicyTimeout, PolicyUnavailable, Requirements
from sfbench.serve.layouts import LAYOUTS, episode_info, request
from sfbench.serve.wire import WireError, packb, unpackb


@dataclass
class RemoteConfig:
    """``configs/policy/remote.yaml``.

    Args:
        name: Policy name recorded in every episode.
        host, port: The server (``ws://host:port``).
        layout: Observation layout (``openpi_libero``, ``sfbench``); ``auto``: ``sfbench`` when the
            server is ``sfbench serve`` (its metadata says so), else openpi's LIBERO layout.
        api_key: Sent as ``Authorization: Api-Key <key>``.
        timeout_s: Longest wait for one answer.
        connect_tries: Connection attempts before giving up; the backoff doubles from ``backoff_s``.
        backoff_s: First pause between attempts.
        expect_policy: Refuse a server whose metadata names another policy (``sfbench serve`` only).
        address_file: Read host and port from this JSON file (a served run's ``server.json``),
            waiting up to ``wait_s`` for it; re-read on every reconnect.
        wait_s: How long to wait for ``address_file``.
    """

    name: str = "remote"
    host: str = "127.0.0.1"
    port: int = 8000
    layout: str = "auto"
    api_key: str | None = None
    timeout_s: float = 30.0
    connect_tries: int = 5
    backoff_s: float = 0.5
    expect_policy: str | None = None
    address_file: str | None = None
    wait_s: float = 600.0

    def __post_init__(self) -> None:
        if self.layout not in ("auto", *LAYOUTS):
            raise UnknownChoice("policy.layout", self.layout, ("auto", *LAYOUTS))
        if self.timeout_s <= 0 or self.connect_tries < 1 or self.backoff_s < 0:
            raise InvalidConfig(f"policy.timeout_s={self.timeout_s} must be > 0, policy.connect_tries="
                                f"{self.connect_tries} >= 1 and policy.backoff_s={self.backoff_s} >= 0")

    @property
    def uri(self) -> str:
        """The server's address."""
        return f"ws://{self.host}:{self.port}"

    def located(self) -> RemoteConfig:
        """This config with host and port from ``address_file`` (waiting for it, bounded); else itself."""
        if self.address_file is None:
            return self
        path, deadline = Path(self.address_file), time.monotonic() + self.wait_s
        while True:
            try:
                address = json.loads(path.read_text())
                return replace(self, host=str(address["host"]), port=int(address["port"]), address_file=None)
            except (OSError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    raise PolicyUnavailable(f"no policy server address in {path} after {self.wait_s:.0f} s") from None
                time.sleep(1.0)


class RemoteError(SfbenchError):
    """The server failed a query or the connection broke."""


def open_connection(config: RemoteConfig) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect (bounded tries) and read the metadata frame; one clear error when that fails."""
    headers = {"Authorization": f"Api-Key {config.api_key}"} if config.api_key else None
    pause, last = config.backoff_s, ""
    for attempt in range(config.connect_tries):
        try:
            ws = connect(config.uri, additional_headers=headers, compression=None, max_size=None, legacy=True,
                         open_timeout=config.timeout_s, close_timeout=1)
        except (OSError, TimeoutError) as e:
            last = str(e) or type(e).__name__
        except InvalidURI as e:
            raise InvalidConfig(f"policy.host={config.host!r} is not a valid host ({e})") from None
        except InvalidHandshake as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status == 401:
                raise InvalidConfig(f"{config.uri} refused the connection: missing or wrong policy.api_key") from None
            raise InvalidConfig(f"{config.uri} does not speak openpi's websocket protocol ({e})") from None
        else:
            return ws, _metadata(ws, config)
        if attempt + 1 < config.connect_tries:
            time.sleep(pause)
            pause *= 2
    raise InvalidConfig(f"cannot connect to {config.uri} after {config.connect_tries} tries ({last})")


def _metadata(ws: ClientConnection, config: RemoteConfig) -> dict[str, Any]:
    try:
        frame = ws.recv(timeout=config.timeout_s)
        metadata = unpackb(frame) if isinstance(frame, bytes) else None
    except (TimeoutError, ConnectionClosed, WireError) as e:
        ws.close()
        raise InvalidConfig(f"{config.uri} sent no openpi metadata frame ({type(e).__name__})") from None
    if not isinstance(metadata, dict):
        ws.close()
        raise InvalidConfig(f"{config.uri} does not speak openpi's websocket protocol (first frame: {frame!r:.60})")
    served = metadata.get("policy")
    if config.expect_policy and served != config.expect_policy:
        ws.close()
        raise InvalidConfig(f"{config.uri} serves policy {served!r}, not policy.expect_policy="
                            f"{config.expect_policy!r}")
    return metadata


class RemotePolicy(Policy):
    """One connection to a policy server; the server's metadata says which model answers."""

    name = "remote"
    config_class = RemoteConfig
    concurrent = True  # instances wait on the network: query them at once, so the server can batch

    def __init__(self, config: RemoteConfig | None = None):
        self.config = config or RemoteConfig()
        self._connect()
        self.layout = self._layout()
        self.episode: dict[str, Any] | None = None

    @classmethod
    def check_config(cls, config: RemoteConfig, task: TaskSpec) -> None:
        """The server answers (bounded tries), speaks the protocol and serves the expected policy."""
        open_connection(config.located())[0].close()

    @classmethod
    def content_id(cls, config: RemoteConfig) -> str | None:
        """What the server says it serves (:func:`served_id`): part of the run's identity."""
        ws, metadata = open_connection(config.located())
        ws.close()
        return served_id(metadata)

    def _connect(self) -> None:
        located = self.config.located()
        self.ws, self.metadata = open_connection(located)
        self.uri = located.uri

    def _layout(self) -> str:
        if self.config.layout != "auto":
            return self.config.layout
        return "sfbench" if "sfbench" in self.metadata else "openpi_libero"

    @property
    def requirements(self) -> Requirements:
        """What the server's policy reads (``sfbench serve`` says); openpi's LIBERO layout: both views."""
        if self.layout == "sfbench":
            req = self.metadata.get("sfbench", {}).get("requirements", {})
            return Requirements(views=tuple(req.get("views", ())), depth=bool(req.get("depth")),
                                privileged=bool(req.get("privileged")))
        return Requirements(views=(OBS_AGENTVIEW, OBS_WRIST))

    @property
    def checkpoint_id(self) -> str:
        """What the server serves (:func:`served_id`), never its address: one model, one cell."""
        return served_id(self.metadata)

    @property
    def record_info(self) -> dict[str, Any]:
        """The server's address and metadata, kept with every episode."""
        return {"server": self.uri, "metadata": _plain(self.metadata)}

    def reset(self, task: TaskSpec, *, seed: int | None = None) -> None:
        """The next query carries the episode's task and seed (``sfbench`` layout)."""
        self.episode = episode_info(task, seed)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Send one query and wait (bounded) for its chunk."""
        if self.ws is None:
            try:
                self._connect()
            except InvalidConfig as e:  # the server went away: the episode is not the policy's failure
                raise PolicyUnavailable(str(e)) from None
        try:
            self.ws.send(packb(request(obs, self.layout, self.episode)))
            answer = self.ws.recv(timeout=self.config.timeout_s)
        except TimeoutError:
            self._drop()
            raise PolicyTimeout(f"no answer from {self.uri} within {self.config.timeout_s} s") from None
        except ConnectionClosed as e:  # the server or the network went away: an infrastructure fault, retried
            self._drop()
            raise PolicyUnavailable(f"lost the connection to {self.uri} mid-query ({e})") from None
        self.episode = None
        if isinstance(answer, str):
            self._drop()
            raise RemoteError(f"server error: {answer.strip().splitlines()[-1] if answer.strip() else answer}")
        message = unpackb(answer)
        if not isinstance(message, dict) or "actions" not in message:
            got = sorted(map(str, message))[:6] if isinstance(message, dict) else type(message).__name__
            raise RemoteError(f"answer without 'actions' (got {got})")
        return np.array(message["actions"])  # as sent: a float32 cast would change the trajectory

    def _drop(self) -> None:
        """Forget a connection in an unknown state; the next query reconnects."""
        if self.ws is not None:
            self.ws.close()
        self.ws = None

    def close(self) -> None:
        """Close the connection."""
        self._drop()


def served_id(metadata: dict[str, Any]) -> str:
    """The served weights' id from the server's metadata, else ``meta-<hash of the whole metadata>``.

    Two servers of different models at one address must never share a run or a leaderboard cell,
    and one model served from two addresses must: so the id is what the server says, not where it is.
    """
    served = metadata.get("checkpoint_id")
    if served not in (None, "none"):
        return str(served)
    blob = json.dumps(_plain(metadata), sort_keys=True, default=str)
    return "meta-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def _plain(obj: Any) -> Any:
    """``obj`` with numpy values as lists and numbers (JSON-able for the records)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    if isinstance(obj, bytes):
        return obj.decode(errors="replace")
    return obj
