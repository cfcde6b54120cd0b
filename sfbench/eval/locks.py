"""One writer per shard: an exclusive ``flock`` on the shard's records file.

A lock lives as long as its descriptor, so a crashed or killed process never leaves a stale one.
Locks are taken without blocking; a process never holds a lock while it waits for another, so
concurrent commands (or a resubmitted cluster job beside an old one) cannot deadlock.
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


def wait_until_free(path: Path) -> None:
    """Block until no other process holds the lock on ``path`` (without keeping it)."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)
