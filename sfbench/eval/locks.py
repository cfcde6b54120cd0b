"""One writer per shard (an exclusive ``flock`` on its records file), one starter per run.

A lock lives as long as its descriptor, so a crashed or killed process never leaves a stale one.
Shard locks are taken without blocking, and a process never holds one while it waits for another,
so concurrent commands (or a resubmitted cluster job beside an old one) cannot deadlock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _try_lock(path: Path) -> int | None:
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def locked(paths: Iterable[Path]) -> Iterator[set[Path]]:
    """Lock every free file of ``paths``; yields those locked here (the others are busy)."""
    fds = {p: fd for p in paths if (fd := _try_lock(p)) is not None}
    try:
        yield set(fds)
    finally:
        for fd in fds.values():
            os.close(fd)


@contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold the lock on ``path``, waiting for it as long as another process holds it."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
