"""Env slots in worker processes, so that several simulators step at once.

Each worker is a ``spawn``-ed process (never ``fork``: EGL contexts do not survive it) that owns a
:class:`~sfbench.eval.rollout.LocalSlot`; its simulator is created inside the worker at the first reset.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np

from sfbench.core.logs import quiet_third_party_logs
from sfbench.core.protocol import Protocol
from sfbench.eval.rollout import INFRA_ERROR, Episode, EpisodeFailure, LocalSlot

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this worker when its parent dies, even by SIGKILL (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(0)


def _serve(conn: Connection, make_env: Callable[[int], gym.Env], protocol: Protocol, parent_pid: int) -> None:
    """Worker main loop: answer ``reset`` / ``step`` commands until ``close``.

    Ctrl-C reaches the whole process group; workers ignore it and let the parent stop them, so
    that episodes in flight are dropped (and rerun on resume) instead of recorded as crashes. A
    worker whose parent is gone exits at once and quietly.
    """
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_third_party_logs()
    slot = LocalSlot(make_env, protocol)
    try:
        while True:
            command, arg = conn.recv()
            if command == "close":
                break
            if command == "reset":
                slot.reset_async(arg)
            else:
                action, images, frame = arg
                slot.step_async(action, images=images, frame=frame)
            try:
                conn.send(("ok", slot.wait()))
            except EpisodeFailure as failure:
                conn.send(("failure", failure.reason))
    except (EOFError, BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass  # the parent is gone or stopping
    finally:
        slot.close()


class WorkerSlot:
    """An :class:`~sfbench.eval.rollout.EnvSlot` whose env lives in its own process."""

    def __init__(self, make_env: Callable[[int], gym.Env], protocol: Protocol):
        self.args = (make_env, protocol)
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, *self.args, os.getpid()), daemon=True)
        self.process.start()
        child.close()

    def reset_async(self, episode: Episode) -> None:
        """Ask the worker to reset to ``episode``."""
        self.conn.send(("reset", episode))

    def step_async(self, action: np.ndarray, *, images: bool = True, frame: bool = False) -> None:
        """Ask the worker to step (see :meth:`~sfbench.eval.rollout.LocalSlot.step_async`)."""
        self.conn.send(("step", (action, images, frame)))

    def wait(self) -> Any:
        """The worker's answer; a dead worker is reported as a simulator error."""
        try:
            status, payload = self.conn.recv()
        except (EOFError, ConnectionResetError) as e:
            self.process.join(timeout=5)
            reason = f"{INFRA_ERROR}: worker process died (exit code {self.process.exitcode})"
            self.conn.close()
            self._start()  # the next episode gets a fresh worker
            raise EpisodeFailure(reason) from e
        if status == "failure":
            raise EpisodeFailure(payload)
        return payload

    def close(self) -> None:
        """Stop the worker and its simulator."""
        try:
            self.conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()


def make_slots(make_env: Callable[[int], gym.Env], protocol: Protocol, num_workers: int) -> list[Any]:
    """``num_workers`` worker slots, or one in-process slot when ``num_workers <= 1``."""
    if num_workers <= 1:
        return [LocalSlot(make_env, protocol)]
    return [WorkerSlot(make_env, protocol) for _ in range(num_workers)]
